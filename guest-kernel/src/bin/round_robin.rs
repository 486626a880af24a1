//! round_robin: the matrix from inside a guest. The guest kernel runs two
//! user programs at once and preempts them on its local APIC timer (1 ms
//! quantum; `entry!(main, check_42, cpuid, irq_kernel)` asks for KVM's
//! in-kernel controller). Neither program ever yields: each prints a line,
//! then spins at CPL3 until three timer ticks have passed, five times. The
//! kernel saves the interrupted program's registers and resumes the other
//! one's, so their lines interleave.
//!
//! `host run round_robin -- fault`: beta does port I/O at CPL3 after its
//! second line; the kernel ends it (#GP, status 141) and alpha runs on.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};
use guest_rt::kernel::{self, run_round_robin};
use guest_rt::println;

guest_rt::entry!(main, check_42, cpuid, irq_kernel);

/// 1 ms at the APIC timer's 1 GHz.
const QUANTUM: u32 = 1_000_000;
const LINES: u32 = 5;
/// Ticks each program spins between its lines.
const SPIN_TICKS: u64 = 3;

fn spin_for_ticks(n: u64) {
    let t = kernel::ticks();
    while kernel::ticks() < t + n {
        core::hint::spin_loop();
    }
}

fn program(name: &str, fault_after: Option<u32>) -> i32 {
    for i in 1..=LINES {
        println!("{name}: line {i} of {LINES}");
        if fault_after == Some(i) {
            // SAFETY: none: port I/O at CPL3 raises #GP, which the kernel
            // turns into this program's end (the point of the demo).
            unsafe { core::arch::asm!("out 0x80, al", in("al") 0u8) };
        }
        spin_for_ticks(SPIN_TICKS);
    }
    0
}

fn alpha() -> i32 {
    program("alpha", None)
}

/// `-- fault`, read by the kernel (the arguments' page is kernel-only).
static FAULT: AtomicBool = AtomicBool::new(false);

fn beta() -> i32 {
    program("beta", FAULT.load(Ordering::Relaxed).then_some(2))
}

fn main() -> u64 {
    let fault = guest_rt::args().first() == Some(&"fault");
    FAULT.store(fault, Ordering::Relaxed);
    let r = run_round_robin(&[alpha, beta], QUANTUM);
    kernel::report_entries();
    println!(
        "kernel: 2 programs round-robin on the LAPIC timer (1 ms quantum): {} ticks, {} switches, quanta {} and {}, exit statuses {} and {}",
        r.ticks, r.switches, r.slices[0], r.slices[1], r.status[0], r.status[1]
    );
    let want_beta = if fault { 141 } else { 0 };
    if r.status[..2] != [0, want_beta] {
        return 1;
    }
    guest_rt::pass_check_42()
}
