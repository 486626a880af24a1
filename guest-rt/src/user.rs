//! The user-side runtime: system call wrappers for programs that run at
//! CPL3 under the guest kernel (`crate::kernel`). `print!`/`println!` work unchanged in user
//! mode: they detect CPL3 and use `write` instead of a hypercall.

use crate::sys::nr;

#[inline(always)]
fn syscall3(n: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: SYSCALL enters the guest kernel, which preserves every
    // register except RAX (result), RCX and R11 (used by SYSCALL/SYSRET) and
    // the argument registers it zeroes; it reads only the memory named by
    // the arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as i64 => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            lateout("rcx") _,
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
            lateout("r11") _,
            options(nostack),
        )
    }
    ret
}

/// `write(fd, buf)`: bytes written, or a negative errno.
pub fn write(fd: u64, buf: &[u8]) -> i64 {
    syscall3(nr::WRITE, fd, buf.as_ptr() as u64, buf.len() as u64)
}

/// `write` with a raw pointer and length, for programs that test the
/// kernel's checks.
pub fn write_raw(fd: u64, ptr: u64, len: u64) -> i64 {
    syscall3(nr::WRITE, fd, ptr, len)
}

/// `host_cpuid()` (system call 436): the host CPU running this vCPU.
pub fn host_cpuid() -> u32 {
    syscall3(nr::HOST_CPUID, 0, 0, 0) as u32
}

/// Any system call by number, for programs that test the kernel.
pub fn syscall(n: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    syscall3(n, a1, a2, a3)
}

/// `exit(status)`: ends the program; the kernel's `run_user` returns status.
pub fn exit(status: i32) -> ! {
    syscall3(nr::EXIT, status as u64, 0, 0);
    // exit does not return; if a kernel let it, stop here.
    loop {
        core::hint::spin_loop()
    }
}
