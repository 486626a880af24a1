//! The guest kernel ends misbehaving user programs cleanly: four programs
//! run one after the other at CPL3; each does one forbidden thing. The
//! kernel reports it and goes on with the next program; the VM halts
//! normally at the end.
#![no_std]
#![no_main]

use guest_rt::{kernel, println, user};

guest_rt::entry!(main, cpuid);

fn port_io() -> i32 {
    println!("user: out to the debug port");
    // SAFETY: not safe at CPL3 on purpose: raises #GP, which the kernel
    // catches and ends this program for.
    unsafe { core::arch::asm!("out 0xe9, al", in("al") b'!') };
    0
}

fn halt() -> i32 {
    println!("user: hlt");
    // SAFETY: as above: #GP at CPL3.
    unsafe { core::arch::asm!("hlt") };
    0
}

fn kernel_page() -> i32 {
    println!(
        "user: write to the host's page tables at {:#x}",
        guest_rt::abi::layout::PAGE_TABLES
    );
    // SAFETY: as above: a kernel-only page, #PF at CPL3.
    unsafe { core::ptr::write_volatile(guest_rt::abi::layout::PAGE_TABLES as *mut u64, 0) };
    0
}

fn bad_pointer() -> i32 {
    let r = user::write_raw(1, guest_rt::abi::layout::GDT, 16);
    println!("user: write(1, GDT, 16) = {r}");
    let r = user::syscall(999, 0, 0, 0);
    println!("user: syscall 999 = {r}");
    7
}

fn main() -> u64 {
    for p in [port_io, halt, kernel_page, bad_pointer] {
        let status = kernel::run_user(p);
        println!("kernel: user program exited with status {status}");
    }
    kernel::report_entries();
    0
}
