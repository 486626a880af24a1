//! simvirtio_profile: the latencies of SIMVIRTIO's three modes, measured
//! by the guest in its own TSC (`host run simvirtio_profile [--polling |
//! --ioeventfd]`; `entry!(main, check_42, irq_kernel)`):
//!
//! - notify -> seen: from just before a notify write to the moment the
//!   guest sees the device took the byte (TX's tail moved): an exit in
//!   exit mode, the device thread's wake-up with `--ioeventfd`, the next
//!   poll with `--polling`;
//! - notify -> RX handler: from just before the notify of a line's `\n`
//!   to the device's interrupt handler running with the answer on RX: the
//!   same, plus the host's RX write and the interrupt's delivery.
//!
//! The TSC is calibrated against the local APIC timer (1 GHz in KVM) over
//! 10 ms. It prints the medians in microseconds, then passes the 42 check.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use guest_rt::abi::simvirtio::{self as sv, QueueControl};
use guest_rt::interrupts::{self, Frame, ioapic, lapic};
use guest_rt::println;
use guest_rt::simvirtio::{self, Device};

guest_rt::entry!(main, check_42, irq_kernel);

const ROUNDS: usize = 64;
const VECTOR: u8 = 0x31;
const TIMER: u8 = 0x32;

static HANDLER_TSC: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

fn on_irq(_: &mut Frame) {
    let t = lapic::rdtsc();
    let st = simvirtio::interrupt_status();
    simvirtio::ack(st);
    // the answer's interrupt: data on RX
    if st & sv::INT_USED != 0 && rx_pending() && HANDLER_TSC.load(Ordering::Relaxed) == 0 {
        HANDLER_TSC.store(t, Ordering::Relaxed);
    }
    lapic::eoi();
}

fn on_tick(_: &mut Frame) {
    TICKS.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn control(at: u64) -> QueueControl {
    // SAFETY: the queue control words are in identity-mapped RAM the ABI
    // reserves for the device.
    unsafe { core::ptr::read_volatile(at as *const QueueControl) }
}

fn rx_pending() -> bool {
    let c = control(sv::RX_CONTROL);
    c.head != c.tail
}

/// Empties RX (the answers are not read one by one).
fn drop_rx() {
    let c = control(sv::RX_CONTROL);
    // SAFETY: as in `control`: the guest owns RX's tail.
    unsafe { core::ptr::write_volatile((sv::RX_CONTROL + 4) as *mut u32, c.head) };
}

/// TSC ticks per microsecond, against 10 ticks of 1 ms of the APIC timer.
fn tsc_per_us() -> u64 {
    interrupts::set_handler(TIMER, on_tick);
    lapic::timer_periodic(TIMER, 1_000_000);
    while TICKS.load(Ordering::Relaxed) < 1 {
        interrupts::wait();
    }
    let t0 = lapic::rdtsc();
    while TICKS.load(Ordering::Relaxed) < 11 {
        interrupts::wait();
    }
    let t = lapic::rdtsc() - t0;
    lapic::timer_stop();
    (t / 10_000).max(1)
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() -> u64 {
    let Ok(dev) = Device::probe() else {
        println!("guest: no SIMVIRTIO device");
        return 1;
    };
    let Some(dev) = dev.with_interrupts() else {
        println!("guest: no interrupt line (run with --irqchip kernel)");
        return 1;
    };
    interrupts::set_handler(VECTOR, on_irq);
    interrupts::pic_mask_all();
    lapic::enable();
    ioapic::route(dev.line(), VECTOR, lapic::id() as u8);
    interrupts::enable();
    let per_us = tsc_per_us();
    if dev.init().is_err() {
        println!("guest: handshake failed");
        return 1;
    }
    let polling = dev.polling();
    let (mut seen, mut rx) = ([0u64; ROUNDS], [0u64; ROUNDS]);
    for i in 0..ROUNDS {
        // one data byte: notify -> TX's tail moves
        let before = control(sv::TX_CONTROL);
        let t0 = lapic::rdtsc();
        if dev.push(b'x').is_err() {
            return 1;
        }
        while control(sv::TX_CONTROL).tail == before.tail {
            core::hint::spin_loop();
        }
        seen[i] = lapic::rdtsc() - t0;
        // the line's end: notify -> the answer's interrupt handler
        drop_rx();
        HANDLER_TSC.store(0, Ordering::Relaxed);
        let t0 = lapic::rdtsc();
        if dev.push(b'\n').is_err() {
            return 1;
        }
        while HANDLER_TSC.load(Ordering::Relaxed) == 0 {
            core::hint::spin_loop();
        }
        rx[i] = HANDLER_TSC.load(Ordering::Relaxed).saturating_sub(t0);
        drop_rx();
    }
    interrupts::disable();
    // exit and ioeventfd mode look the same to the driver: it notifies
    let mode = if polling { "polling" } else { "notify" };
    println!(
        "profile ({mode}): notify->seen {} us, notify->rx handler {} us (medians of {ROUNDS}; TSC {per_us} MHz)",
        median(&mut seen) / per_us,
        median(&mut rx) / per_us
    );
    guest_rt::pass_check_42()
}
