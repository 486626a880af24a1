//! A small guest kernel that runs user programs at CPL3 (long mode, one
//! vCPU).
//!
//! [`boot`] sets up, at ring 0:
//! - a GDT with kernel code/data (0x08/0x10), user data/code (0x1b/0x23) and
//!   a TSS (0x28) whose RSP0 is the kernel stack for traps from user mode and
//!   whose I/O map is empty, so port I/O at CPL3 raises #GP;
//! - an IDT whose 32 exception vectors go to [`trap`];
//! - SYSCALL: EFER.SCE, STAR, LSTAR = the syscall entry, SFMASK = IF|TF|DF|AC;
//! - user pages: the host's identity map with the first 2 MiB split into
//!   4 KiB pages. The program image's code and read-only data are user
//!   read-only, its data and bss user read-write; everything else (the
//!   host's structures, the kernel stack, this kernel's own tables in
//!   `.kvmwb.kernel`, memory above 2 MiB) is kernel-only.
//!
//! [`run_user`] then enters a function at CPL3 and returns its exit status
//! when it calls `exit`, or when the kernel ends it for a fault (reported as
//! "user program: #GP at RIP ..., port I/O is not allowed in user mode").
//!
//! [`run_round_robin`] runs up to [`MAX_TASKS`] user programs at once,
//! preempting them on the local APIC timer (the program declares
//! `irq_kernel`: KVM's in-kernel controller): each gets a quantum, then the
//! next ready one runs; a program that exits or faults leaves the others
//! running.
//!
//! System calls (Linux numbering and convention: RAX = number, RDI, RSI, RDX
//! = arguments, RAX = result, negative errno on error) are in [`crate::sys::nr`].

mod boot;
mod entry;
mod frame;
mod syscalls;
mod tasks;
mod traps;

pub use crate::cpu::cpl;
pub use crate::sys::{FAULT_STATUS_BASE, errno, nr};
pub use boot::{boot, run_user};
pub use frame::TrapFrame;
pub use syscalls::{
    VIA_FORWARD, VIA_FORWARD_UD, VIA_INT80, VIA_INT80_UD, VIA_SYSCALL, report_entries,
    syscall_entries,
};
pub use tasks::{MAX_TASKS, RoundRobin, TIMER_VECTOR, run_round_robin, ticks};
