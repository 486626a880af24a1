//! crash_gp: writes through a non-canonical pointer (bits 63..48 not a
//! copy of bit 47): #GP, vector 13, reported by the host's IDT with its
//! error code (docs/guests.md "When a guest crashes").
#![no_std]
#![no_main]

guest_rt::entry!(main);

fn main() -> u64 {
    guest_rt::println!("writing through a non-canonical pointer");
    let p = core::hint::black_box(0x8000_0000_0000_0000u64) as *mut u64;
    // SAFETY: not safe on purpose: a non-canonical address raises #GP.
    unsafe { p.write_volatile(42) };
    0
}
