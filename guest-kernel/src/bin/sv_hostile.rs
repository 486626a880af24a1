//! sv_hostile: SIMVIRTIO drivers that misbehave, for the hostile suite
//! (tests/hostile.rs, docs/security.md), meant for `--ioeventfd` (they run
//! in every mode). `host run sv_hostile --ioeventfd -- CASE`:
//!
//! - `storm`: after the handshake, notify writes in a loop with nothing
//!   in TX, until --timeout (each one wakes the device thread);
//! - `noack`: takes interrupts (DRIVER_IRQ), but its handler never writes
//!   `interrupt ack` (it still sends the APIC its EOI), and sends lines;
//! - `halt_mid`: pushes a line and notifies, then halts at once, before
//!   the device could have drained it: the host must print it, once.
//!
//! Without a case it lists them and passes the 42 check.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use guest_rt::abi::simvirtio::{self as sv, reg};
use guest_rt::interrupts::{self, Frame, ioapic, lapic};
use guest_rt::println;
use guest_rt::simvirtio::{self, Device};

guest_rt::entry!(main, check_42, irq_kernel);

static TAKEN: AtomicU32 = AtomicU32::new(0);

fn no_ack(_: &mut Frame) {
    TAKEN.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn ready(dev: &Device) -> bool {
    if let Err(e) = dev.init() {
        println!("guest: handshake failed: {e:?}");
        return false;
    }
    true
}

fn main() -> u64 {
    let case = guest_rt::args().first().copied().unwrap_or("");
    let Ok(dev) = Device::probe() else {
        println!("guest: no SIMVIRTIO device");
        return 1;
    };
    match case {
        "storm" => {
            if !ready(&dev) {
                return 1;
            }
            println!("guest: notify storm");
            loop {
                simvirtio::write8(reg::Q0_CTL, sv::CTL_NOTIFY);
            }
        }
        "noack" => {
            let Some(dev) = dev.with_interrupts() else {
                println!("guest: no interrupt line (run with --irqchip kernel)");
                return 1;
            };
            interrupts::set_handler(0x31, no_ack);
            interrupts::pic_mask_all();
            lapic::enable();
            ioapic::route(dev.line(), 0x31, lapic::id() as u8);
            interrupts::enable();
            if !ready(&dev) {
                return 1;
            }
            for _ in 0..20 {
                if dev.send(b"never acknowledged\n").is_err() {
                    println!("guest: send failed");
                    return 1;
                }
            }
            interrupts::disable();
            println!(
                "guest: {} interrupts taken, status {:#x} never acknowledged",
                TAKEN.load(Ordering::Relaxed),
                simvirtio::interrupt_status()
            );
            guest_rt::pass_check_42()
        }
        "halt_mid" => {
            if !ready(&dev) {
                return 1;
            }
            // one byte at a time, each notified, then halt at once
            for &b in b"the last line, sent just before HLT\n" {
                if dev.push(b).is_err() {
                    return 1;
                }
            }
            guest_rt::pass_check_42()
        }
        _ => {
            println!("sv_hostile -- CASE: storm, noack, halt_mid");
            guest_rt::pass_check_42()
        }
    }
}
