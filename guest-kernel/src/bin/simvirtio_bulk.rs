//! A 4 KiB SIMVIRTIO message: 4095 bytes and a newline through a 256-byte
//! TX queue, so the indices wrap 16 times. Compare the exits of
//! `host run simvirtio_bulk` (a notify per byte) and `--polling`.
#![no_std]
#![no_main]

use guest_rt::println;
use guest_rt::simvirtio::Device;

guest_rt::entry!(main);

/// Bytes sent, newline included.
const LEN: usize = 4096;

fn main() -> u64 {
    let Ok(dev) = Device::probe() else {
        println!("guest: no SIMVIRTIO device");
        return 1;
    };
    if let Err(e) = dev.init() {
        println!("guest: handshake failed: {e:?}");
        return 1;
    }
    // the host prints the message: the alphabet over and over
    for i in 0..LEN - 1 {
        if let Err(e) = dev.push(b'a' + (i % 26) as u8) {
            println!("guest: send failed at byte {i}: {e:?}");
            return 1;
        }
    }
    if let Err(e) = dev.push(b'\n') {
        println!("guest: send failed: {e:?}");
        return 1;
    }
    let mut buf = [0u8; 32];
    match dev.recv_line(&mut buf) {
        Ok(n) => println!(
            "guest: rx: {}",
            core::str::from_utf8(&buf[..n]).unwrap_or("?")
        ),
        Err(e) => {
            println!("guest: receive failed: {e:?}");
            return 1;
        }
    }
    0
}
