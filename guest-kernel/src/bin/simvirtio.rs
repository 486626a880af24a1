//! The SIMVIRTIO protocol end to end (../shared/spec/001): the driver
//! resets and configures the device, sends "Ana are mere" on TX (the host
//! prints it), receives the host's answer on RX, and passes the 42 check.
//! `host run simvirtio` notifies at every byte; `--polling` makes the host
//! poll instead.
#![no_std]
#![no_main]

use guest_rt::abi::layout;
use guest_rt::println;
use guest_rt::simvirtio::Device;

guest_rt::entry!(main, check_42);

fn main() -> u64 {
    let dev = match Device::probe() {
        Ok(d) => d,
        Err(e) => {
            println!("guest: no SIMVIRTIO device: {e:?}");
            return 1;
        }
    };
    let mode = if dev.polling() { "polling" } else { "exit" };
    println!("guest: SIMVIRTIO device found, {mode} mode");
    if let Err(e) = dev.init() {
        println!("guest: handshake failed: {e:?}");
        return 1;
    }
    println!(
        "guest: device ready, {} device(s) in the table",
        dev.table_count()
    );
    if let Err(e) = dev.send(b"Ana are mere\n") {
        println!("guest: send failed: {e:?}");
        return 1;
    }
    let mut buf = [0u8; 64];
    match dev.recv_line(&mut buf) {
        Ok(n) => println!(
            "guest: rx: {}",
            core::str::from_utf8(&buf[..n]).unwrap_or("(not UTF-8)")
        ),
        Err(e) => {
            println!("guest: receive failed: {e:?}");
            return 1;
        }
    }
    // SAFETY: CHECK_ADDR is the ABI's 42-check word in identity-mapped RAM.
    unsafe {
        core::ptr::write_volatile(layout::CHECK_ADDR as *mut u32, layout::CHECK_VALUE as u32)
    };
    layout::CHECK_VALUE
}
