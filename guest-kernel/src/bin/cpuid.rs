//! host_cpuid, eight times, with busy work in between: which host CPU ran
//! this vCPU at each call. Unpinned the value may change as Linux moves the
//! vCPU thread; with `host run cpuid --pin N` it is N every time.
#![no_std]
#![no_main]

use guest_rt::{hc, print, println};

guest_rt::entry!(main);

fn main() -> u64 {
    print!("host_cpuid:");
    for _ in 0..8 {
        for i in 0..5_000u32 {
            core::hint::black_box(i);
        }
        print!(" {}", hc::host_cpuid());
    }
    println!();
    0
}
