//! crash_overflow: recurses with 4 KiB frames until its 64 KiB stack runs
//! into the unmapped guard page below it: a page fault there is reported as
//! a stack overflow, not as memory it ran over (docs/guests.md "When a
//! guest crashes").
#![no_std]
#![no_main]

guest_rt::entry!(main);

#[inline(never)]
fn deep(n: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[0] = n as u8;
    let frame = core::hint::black_box(frame);
    if n == 0 {
        return u64::from(frame[0]);
    }
    deep(n - 1) + u64::from(frame[4095])
}

fn main() -> u64 {
    guest_rt::println!("recursing 200 frames of 4 KiB");
    deep(core::hint::black_box(200))
}
