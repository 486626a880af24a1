//! A fault in the guest kernel itself: a user program runs at CPL3 and
//! exits, then the kernel (ring 0) writes to an address no page table
//! maps. Its #PF handler reports it and halts the VM with a triple fault,
//! which the host explains (tests/crash.rs).
#![no_std]
#![no_main]

use guest_rt::{kernel, println};

guest_rt::entry!(main, cpuid);

fn user_main() -> i32 {
    println!("user: hello from CPL3");
    0
}

fn main() -> u64 {
    let status = kernel::run_user(user_main);
    println!("kernel: user program exited with {status}; now a kernel bug");
    // SAFETY: not safe on purpose: 4 TiB is mapped by no page table.
    unsafe { core::ptr::write_volatile(0x400_0000_0000 as *mut u64, 1) };
    0
}
