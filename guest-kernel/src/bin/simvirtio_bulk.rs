//! A 4 KiB SIMVIRTIO message: 4095 bytes and a newline through a 256-byte
//! TX queue, so the indices wrap 16 times, sent 256 bytes at a time.
//! Compare the exits of `host run simvirtio_bulk` (a notify per byte),
//! `--polling` (none) and `--ioeventfd` (one per 256-byte send, caught by
//! KVM).
#![no_std]
#![no_main]

use guest_rt::println;
use guest_rt::simvirtio::Device;

guest_rt::entry!(main);

/// Bytes sent, newline included.
const LEN: usize = 4096;
/// Bytes per `send` (LEN is a multiple).
const CHUNK: usize = 256;

fn main() -> u64 {
    let Ok(dev) = Device::probe() else {
        println!("guest: no SIMVIRTIO device");
        return 1;
    };
    if let Err(e) = dev.init() {
        println!("guest: handshake failed: {e:?}");
        return 1;
    }
    // the host prints the message: the alphabet over and over, then '\n'
    let mut chunk = [0u8; CHUNK];
    for start in (0..LEN).step_by(CHUNK) {
        for (k, b) in chunk.iter_mut().enumerate() {
            let i = start + k;
            *b = if i == LEN - 1 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            };
        }
        if let Err(e) = dev.send(&chunk) {
            println!("guest: send failed in bytes {start}..: {e:?}");
            return 1;
        }
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
