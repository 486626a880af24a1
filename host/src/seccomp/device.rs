//! The SIMVIRTIO device thread's filter (`--ioeventfd`): it waits on two
//! eventfds, reads guest memory (no system call), writes the guest's
//! output into a channel and raises an irqfd (write), and allocates. No
//! ioctl at all: a device thread steered by a guest could not even touch
//! KVM.

use super::bpf::{self, Rule};
use super::filter::{SeccompError, install};
use std::collections::BTreeMap;

/// System calls the device thread may make, with any arguments (mmap and
/// mprotect never executable).
pub const DEVICE_SYSCALLS: [(libc::c_long, &str); 17] = [
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_poll, "poll"),
    (libc::SYS_ppoll, "ppoll"),
    (libc::SYS_futex, "futex"),
    (libc::SYS_brk, "brk"),
    (libc::SYS_munmap, "munmap"),
    (libc::SYS_mremap, "mremap"),
    (libc::SYS_madvise, "madvise"),
    (libc::SYS_close, "close"),
    (libc::SYS_rt_sigreturn, "rt_sigreturn"),
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
    (libc::SYS_sigaltstack, "sigaltstack"),
    (libc::SYS_sched_yield, "sched_yield"),
    (libc::SYS_clock_gettime, "clock_gettime"),
    (libc::SYS_exit, "exit"),
    (libc::SYS_exit_group, "exit_group"),
];

/// The device thread's rules: [`DEVICE_SYSCALLS`], mmap and mprotect
/// without PROT_EXEC, nothing else.
pub fn device_rules() -> BTreeMap<u32, Rule> {
    let mut rules: BTreeMap<u32, Rule> = DEVICE_SYSCALLS
        .iter()
        .map(|&(n, _)| (n as u32, Rule::Any))
        .collect();
    let no_exec = Rule::Clear {
        arg: 2,
        mask: libc::PROT_EXEC as u32,
    };
    rules.insert(libc::SYS_mmap as u32, no_exec.clone());
    rules.insert(libc::SYS_mprotect as u32, no_exec);
    rules
}

/// Puts the calling thread (the device thread) under [`device_rules`].
pub fn apply_device() -> Result<bool, SeccompError> {
    install(&bpf::program(&device_rules())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_thread_may_not_ioctl_or_open() {
        let r = device_rules();
        for nr in [
            libc::SYS_ioctl,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_socket,
        ] {
            assert!(!r.contains_key(&(nr as u32)), "{nr}");
        }
        assert!(bpf::program(&r).is_ok());
    }
}
