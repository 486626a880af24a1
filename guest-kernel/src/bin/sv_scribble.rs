//! A hostile guest on several vCPUs: vCPU 0 drives the SIMVIRTIO device
//! (handshake, then lines) while every other vCPU scribbles over the
//! device's queues, their indices and the device table in guest memory.
//! The host must answer with device errors, never a crash or a jail trip.
#![no_std]
#![no_main]

use guest_rt::abi::simvirtio::{DEVICE_TABLE, QUEUE_LEN, RX_BUFFER};
use guest_rt::simvirtio::Device;
use guest_rt::{Cpu, println};

guest_rt::smp_entry!(main);

fn main(cpu: Cpu) -> u64 {
    if cpu.id == 0 {
        let Ok(dev) = Device::probe() else {
            return 1;
        };
        if dev.init().is_err() {
            println!("guest: handshake failed");
            return 1;
        }
        for _ in 0..20 {
            if dev.send(b"scribbled\n").is_err() {
                println!("guest: send failed");
                return 1;
            }
        }
        return 0;
    }
    // everything from the device table to the end of the RX buffer
    let (start, end) = (DEVICE_TABLE, RX_BUFFER + u64::from(QUEUE_LEN));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ cpu.id;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (start + (x % (end - start))) & !3;
        // SAFETY: guest memory of our own VM, identity-mapped; corrupting
        // the device's memory is the point.
        unsafe { core::ptr::write_volatile(at as *mut u32, x as u32) };
    }
    0
}
