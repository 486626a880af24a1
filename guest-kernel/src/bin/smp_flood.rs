//! A hostile guest on any number of vCPUs: every vCPU writes to thousands
//! of distinct ports that have no device, then to thousands of distinct
//! guest-physical addresses with nothing behind them (in the 2 MiB page the
//! host maps for the SIMVIRTIO window, past the window), then halts. The
//! host must count all of it in bounded time and memory, report each kind
//! once, and never trip its own seccomp filter.
#![no_std]
#![no_main]

use guest_rt::Cpu;
use guest_rt::abi::simvirtio::{MMIO_BASE, MMIO_SIZE};

guest_rt::smp_entry!(main);

/// Distinct ports and addresses per vCPU.
const N: u16 = 3000;

fn main(cpu: Cpu) -> u64 {
    for i in 0..N {
        // ports 0x1000.. (no hypercall, no device); each vCPU its own range
        let port = 0x1000 + (cpu.id as u16) * N + i;
        // SAFETY: port I/O only causes a VM exit to the host.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") 0u8, options(nomem, nostack))
        };
    }
    for i in 0..u64::from(N) {
        let gpa = MMIO_BASE + MMIO_SIZE + (cpu.id * u64::from(N) + i) * 8;
        // SAFETY: the host maps this page (uncached) but has no memory
        // behind it: the write is an MMIO exit, which the host ignores.
        unsafe { core::ptr::write_volatile(gpa as *mut u64, i) };
    }
    0
}
