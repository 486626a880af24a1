//! The same CPU-bound loop at ring 0 (in the guest kernel) and at ring 3
//! (as a user program), timed with RDTSC. Under kvm-pvm ring-0 code is
//! emulated instruction by instruction while ring-3 code runs natively, so
//! the user loop is far faster per iteration there; on VT-x/AMD-V both run
//! natively at about the same speed.
#![no_std]
#![no_main]

use guest_rt::{kernel, println};

guest_rt::entry!(main, cpuid);

const RING0_ITERS: u64 = 100_000;
const RING3_ITERS: u64 = 100_000_000;

fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads the time-stamp counter (allowed at CPL3: CR4.TSD is clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[inline(never)]
fn busy(n: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..core::hint::black_box(n) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    x
}

fn timed(n: u64) -> u64 {
    let t = rdtsc();
    core::hint::black_box(busy(n));
    rdtsc() - t
}

static mut RING3_TICKS: u64 = 0;

fn user() -> i32 {
    let t = timed(RING3_ITERS);
    // SAFETY: one program, one vCPU; .bss is user-writable.
    unsafe { RING3_TICKS = t };
    0
}

fn main() -> u64 {
    let r0 = timed(RING0_ITERS);
    kernel::run_user(user);
    // SAFETY: written by the user program, which has ended.
    let r3 = unsafe { RING3_TICKS };
    // per-iteration cost in hundredths of a TSC tick
    let per0 = r0 * 100 / RING0_ITERS;
    let per3 = (r3 * 100 / RING3_ITERS).max(1);
    println!(
        "ring 0: {RING0_ITERS} iterations, {r0} TSC ticks, {}.{:02} ticks/iteration",
        per0 / 100,
        per0 % 100
    );
    println!(
        "ring 3: {RING3_ITERS} iterations, {r3} TSC ticks, {}.{:02} ticks/iteration",
        per3 / 100,
        per3 % 100
    );
    println!(
        "ring 3 is {}x faster per iteration than ring 0",
        per0 / per3
    );
    0
}
