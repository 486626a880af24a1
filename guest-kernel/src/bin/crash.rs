//! Crashes on purpose three calls deep (`ud2`, no IDT: a triple fault), so
//! that `host run crash` shows a crash explained: mode, control registers,
//! `crash::deep+0x..` and the instruction there, the page walks of RIP and
//! RSP, and the last exits (docs/guests.md).
#![no_std]
#![no_main]

guest_rt::entry!(main);

#[inline(never)]
fn deep(n: u64) -> u64 {
    if n == 0 {
        // SAFETY: not safe on purpose: #UD with no IDT is a triple fault.
        unsafe { core::arch::asm!("ud2") };
        return 0;
    }
    deep(core::hint::black_box(n - 1)) + 1
}

fn main() -> u64 {
    guest_rt::println!("about to crash");
    deep(core::hint::black_box(3))
}
