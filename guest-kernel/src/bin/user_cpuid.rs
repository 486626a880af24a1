//! A user program (CPL3): asks for the host CPU through system call 436
//! (sys_host_cpuid) eight times with busy work in between, then exits.
//! The guest kernel's handler makes the host_cpuid hypercall for it, since
//! port I/O is not allowed in user mode. `host run user_cpuid --pin 1`
//! prints 1 every time.
#![no_std]
#![no_main]

use guest_rt::{print, println, user};

guest_rt::user_program!(main);

fn main() -> i32 {
    print!("user mode, sys_host_cpuid:");
    for _ in 0..8 {
        for i in 0..200_000u32 {
            core::hint::black_box(i);
        }
        print!(" {}", user::host_cpuid());
    }
    println!();
    0
}
