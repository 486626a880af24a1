//! irq_hostile: guests that misuse interrupts, for the hostile suite
//! (tests/hostile.rs, docs/security.md). `host run irq_hostile -- CASE`:
//!
//! - `storm`: the LAPIC timer at its smallest period (count 1), a handler
//!   that sends its end of interrupt; runs until --timeout;
//! - `self_ipi`: a handler that sends itself the next IPI; until --timeout;
//! - `no_eoi`: a handler that never sends its end of interrupt: the local
//!   APIC holds every later tick back, and the guest sleeps until --timeout;
//! - `fault`: a handler that writes to unmapped memory;
//! - `unhandled`: the timer on a vector with no handler;
//! - `bad_idt`: an IDT in unmapped memory, then an interrupt;
//! - `ipi_nowhere`: IPIs to APIC ids 7 and 0xfe, which no vCPU has;
//! - `cli_spin`: interrupts off and a loop (for `--irqchip user
//!   --inject-every 100us`: every tick stays pending);
//! - `wait`: guest-rt's IDT, interrupts on, `hlt` until --timeout (for
//!   `--irqchip user --inject-every 1ms:14`, an exception's vector).
//!
//! Without a case it lists them and passes the 42 check.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use guest_rt::interrupts::{self, Frame, lapic};
use guest_rt::println;

guest_rt::entry!(main, check_42, irq_kernel);

const VECTOR: u8 = 0x30;
static COUNT: AtomicU32 = AtomicU32::new(0);

fn count_eoi(_: &mut Frame) {
    COUNT.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn count_only(_: &mut Frame) {
    COUNT.fetch_add(1, Ordering::Relaxed);
}

fn self_ipi(_: &mut Frame) {
    COUNT.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
    lapic::send_ipi(lapic::id(), VECTOR);
}

fn write_unmapped(_: &mut Frame) {
    // SAFETY: none: the write faults (#PF), which is the case's point.
    unsafe { core::ptr::write_volatile(0x40_0000_0000 as *mut u64, 1) };
}

fn sleep_forever() -> ! {
    loop {
        interrupts::wait();
    }
}

fn main() -> u64 {
    let case = guest_rt::args().first().copied().unwrap_or("");
    match case {
        "storm" => {
            interrupts::set_handler(VECTOR, count_eoi);
            lapic::enable();
            lapic::timer_periodic(VECTOR, 1);
            sleep_forever()
        }
        "self_ipi" => {
            interrupts::set_handler(VECTOR, self_ipi);
            lapic::enable();
            lapic::send_ipi(lapic::id(), VECTOR);
            sleep_forever()
        }
        "no_eoi" => {
            interrupts::set_handler(VECTOR, count_only);
            lapic::enable();
            lapic::timer_periodic(VECTOR, 1_000_000);
            interrupts::wait();
            println!("no_eoi: 1 tick taken, no end of interrupt sent; waiting for the next");
            sleep_forever()
        }
        "fault" => {
            interrupts::set_handler(VECTOR, write_unmapped);
            lapic::enable();
            lapic::timer_oneshot(VECTOR, 1_000_000);
            sleep_forever()
        }
        "unhandled" => {
            interrupts::load();
            lapic::enable();
            lapic::timer_oneshot(VECTOR + 1, 1_000_000);
            sleep_forever()
        }
        "bad_idt" => {
            let idtr = [0x0fffu16, 0, 0, 0x40, 0];
            lapic::enable();
            lapic::timer_oneshot(VECTOR, 1_000_000);
            // SAFETY: none: loads an IDT no page maps (the case's point).
            unsafe { core::arch::asm!("lidt [{}]", in(reg) &idtr) };
            sleep_forever()
        }
        "ipi_nowhere" => {
            interrupts::set_handler(VECTOR, count_eoi);
            lapic::enable();
            interrupts::enable();
            lapic::send_ipi(7, VECTOR);
            lapic::send_ipi(0xfe, VECTOR);
            interrupts::disable();
            println!(
                "ipi_nowhere: IPIs to APIC ids 7 and 0xfe sent, {} taken here",
                COUNT.load(Ordering::Relaxed)
            );
            guest_rt::pass_check_42()
        }
        "cli_spin" => {
            interrupts::disable();
            loop {
                core::hint::spin_loop();
            }
        }
        "wait" => {
            interrupts::load();
            sleep_forever()
        }
        _ => {
            println!(
                "irq_hostile -- CASE: storm, self_ipi, no_eoi, fault, unhandled, bad_idt, ipi_nowhere, cli_spin, wait"
            );
            guest_rt::pass_check_42()
        }
    }
}
