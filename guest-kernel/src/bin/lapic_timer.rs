//! lapic_timer: the local APIC timer in long mode, with KVM's in-kernel
//! controller (`host run lapic_timer`; `entry!(main, check_42,
//! irq_kernel)` asks for it), in its three modes. A handler on vector 0x30
//! counts and sends the end of interrupt; `main` sleeps in
//! `interrupts::wait()` between ticks.
//!
//! 1. periodic: a tick every 2 ms (KVM's APIC timer counts at 1 GHz), ten
//!    of them, which also measure the TSC's frequency;
//! 2. one-shot: 1 ms, re-armed after each tick, three times;
//! 3. TSC-deadline (where CPUID offers it): a deadline 1 ms of TSC ahead,
//!    three times.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use guest_rt::interrupts::{self, Frame, lapic};
use guest_rt::println;

guest_rt::entry!(main, check_42, irq_kernel);

const VECTOR: u8 = 0x30;
/// 2 ms and 1 ms at the APIC timer's 1 GHz.
const PERIOD: u32 = 2_000_000;
const ONE_MS: u32 = 1_000_000;

static COUNT: AtomicU32 = AtomicU32::new(0);

fn tick(_: &mut Frame) {
    COUNT.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

/// Sleeps until COUNT reaches `n`.
fn wait_for(n: u32) {
    while COUNT.load(Ordering::Relaxed) < n {
        interrupts::wait();
    }
}

fn main() -> u64 {
    interrupts::set_handler(VECTOR, tick);
    lapic::enable();

    let t0 = lapic::rdtsc();
    lapic::timer_periodic(VECTOR, PERIOD);
    wait_for(10);
    lapic::timer_stop();
    let tsc_per_ms = (lapic::rdtsc() - t0) / 20;
    println!(
        "periodic: {} ticks every 2 ms on vector {VECTOR:#x} (APIC id {})",
        COUNT.load(Ordering::Relaxed),
        lapic::id()
    );

    COUNT.store(0, Ordering::Relaxed);
    for i in 1..=3 {
        lapic::timer_oneshot(VECTOR, ONE_MS);
        wait_for(i);
    }
    let left = lapic::timer_current();
    println!(
        "one-shot: {} ticks, 1 ms each, re-armed; count left {left}",
        COUNT.load(Ordering::Relaxed)
    );

    if lapic::has_tsc_deadline() {
        COUNT.store(0, Ordering::Relaxed);
        lapic::timer_deadline(VECTOR);
        for i in 1..=3 {
            lapic::set_deadline(lapic::rdtsc() + tsc_per_ms);
            wait_for(i);
        }
        println!(
            "TSC-deadline: {} ticks, each 1 ms of TSC ahead",
            COUNT.load(Ordering::Relaxed)
        );
    } else {
        println!("TSC-deadline: this CPU does not offer it (CPUID.1:ECX[24] clear)");
    }
    interrupts::disable();
    lapic::timer_stop();
    guest_rt::pass_check_42()
}
