//! A guest to step through with gdb (`host run debugme --gdb`,
//! docs/debugging.md): a static counter, a short call chain for `step` and
//! `backtrace`, a value that travels in a register to `shout`, and two
//! switches gdb can flip with `set var`: SPIN (loop until gdb's Ctrl-C)
//! and CRASH (a triple fault, for the post-mortem). Without gdb it prints
//! "shout 6" and halts with RAX = 6.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut};
use guest_rt::println;

guest_rt::entry!(main);

/// Counts `bump` calls (`print debugme::COUNTER`).
static mut COUNTER: u64 = 0;
/// Set to 1 from gdb: spin until interrupted.
static mut SPIN: u64 = 0;
/// Set to 1 from gdb: crash after the shout.
static mut CRASH: u64 = 0;

#[inline(never)]
fn bump() {
    // SAFETY: one vCPU; COUNTER is only touched here and by the debugger.
    unsafe { addr_of_mut!(COUNTER).write_volatile(addr_of!(COUNTER).read_volatile() + 1) };
}

#[inline(never)]
fn add_up(n: u64) -> u64 {
    let mut sum = 0;
    for i in 1..=n {
        bump();
        sum += i;
    }
    sum
}

#[inline(never)]
fn shout(x: u64) {
    println!("shout {}", x);
}

fn main() -> u64 {
    let total = add_up(core::hint::black_box(3));
    shout(total);
    // SAFETY: plain reads of statics that only the debugger writes.
    while unsafe { addr_of!(SPIN).read_volatile() } != 0 {
        core::hint::spin_loop();
    }
    // SAFETY: as above.
    if unsafe { addr_of!(CRASH).read_volatile() } != 0 {
        // SAFETY: ud2 raises #UD; with no IDT it escalates to a triple
        // fault, which is the point.
        unsafe { core::arch::asm!("ud2") };
    }
    total
}
