//! crash_panic: indexes past the end of an array two calls deep. The panic
//! prints its message and location; the host then ends the run as a crash
//! with the call chain and no register dump (docs/guests.md "When a guest
//! crashes").
#![no_std]
#![no_main]

guest_rt::entry!(main);

#[inline(never)]
fn pick(v: &[u64], i: usize) -> u64 {
    v[i]
}

#[inline(never)]
fn last_of_three(i: usize) -> u64 {
    pick(&[1, 2, 3], i)
}

fn main() -> u64 {
    last_of_three(core::hint::black_box(7))
}
