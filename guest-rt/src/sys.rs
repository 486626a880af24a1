//! The system call interface between user programs and the guest kernel:
//! numbers, errno values, and the exit status of a program ended for a fault.

/// System call numbers (Linux's where Linux has one).
pub mod nr {
    /// `write(fd, buf, len) -> bytes written`: fd 1 and 2 go to the host's
    /// stdout through `print_str`.
    pub const WRITE: u64 = 1;
    /// `exit(status) -> !`: ends the user program.
    pub const EXIT: u64 = 60;
    /// `host_cpuid() -> cpu`: the host CPU running this vCPU (the kernel
    /// makes the `host_cpuid` hypercall for the program).
    pub const HOST_CPUID: u64 = 436;
}

/// errno values returned (negated) by system calls.
pub mod errno {
    /// Bad file descriptor.
    pub const EBADF: i64 = 9;
    /// A pointer outside the program's memory.
    pub const EFAULT: i64 = 14;
    /// Unknown system call.
    pub const ENOSYS: i64 = 38;
}

/// Exit status of a program the kernel ended for a fault: 128 + vector,
/// as shells report a signal.
pub const FAULT_STATUS_BASE: i64 = 128;
