//! crash_div: divides by zero two calls deep. With no IDT of its own the
//! guest has the host's, which reports the exception before it could
//! become a triple fault: `host run crash_div` names it (#DE, vector 0),
//! the function and the call chain (docs/guests.md "When a guest crashes").
#![no_std]
#![no_main]

guest_rt::entry!(main);

#[inline(never)]
fn divide(a: u64, b: u64) -> u64 {
    let q: u64;
    // SAFETY: not safe on purpose: `div` by zero raises #DE (Rust's own
    // `/` would check and panic first).
    unsafe {
        core::arch::asm!("div {b}", b = in(reg) b, inout("rax") a => q, inout("rdx") 0u64 => _)
    };
    q
}

#[inline(never)]
fn average(sum: u64, count: u64) -> u64 {
    divide(sum, core::hint::black_box(count))
}

fn main() -> u64 {
    guest_rt::println!("dividing by zero");
    average(10, 0)
}
