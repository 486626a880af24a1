//! Runs on every vCPU (`host run smp --vcpus N`): each vCPU prints which
//! host CPU runs it, then all of them increment one shared counter with
//! atomic adds. vCPU 0 waits for the others, checks the total and stores 42
//! for the host's check.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use guest_rt::{Cpu, abi::layout, hc, println};

guest_rt::smp_entry!(main, check_42);

/// Increments per vCPU (ring-0 code is emulated on kvm-pvm: keep it small).
const ADDS: u64 = 2_000;

static COUNTER: AtomicU64 = AtomicU64::new(0);
/// The same count with a plain load and store: updates get lost when the
/// vCPUs really run at the same time.
static PLAIN: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);

fn main(cpu: Cpu) -> u64 {
    println!("vcpu {} on pcpu {}", cpu.id, hc::host_cpuid());
    for _ in 0..ADDS {
        COUNTER.fetch_add(1, Ordering::Relaxed);
        PLAIN.store(PLAIN.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    DONE.fetch_add(1, Ordering::Release);
    if cpu.id != 0 {
        return 0;
    }
    while DONE.load(Ordering::Acquire) < cpu.count {
        core::hint::spin_loop();
    }
    let total = COUNTER.load(Ordering::Relaxed);
    let want = ADDS * cpu.count;
    println!(
        "counter {total}, expected {want} ({} x {ADDS}): {}",
        cpu.count,
        if total == want { "exact" } else { "WRONG" }
    );
    let plain = PLAIN.load(Ordering::Relaxed);
    println!(
        "plain load+store counter {plain}: {} updates lost",
        want - plain
    );
    if total != want {
        return 1;
    }
    // SAFETY: CHECK_ADDR is the ABI's 42-check word in identity-mapped RAM.
    unsafe {
        core::ptr::write_volatile(layout::CHECK_ADDR as *mut u32, layout::CHECK_VALUE as u32)
    };
    layout::CHECK_VALUE
}
