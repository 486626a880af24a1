//! Defence in depth: once a VM is set up, the vCPU thread runs under a
//! seccomp filter (rust-vmm's seccompiler) that allows only the system calls
//! the run loop and the final report need. If a guest ever found a bug that
//! let it steer the host, the host still could not open files, create
//! processes or sockets, or issue other KVM ioctls.
//!
//! A blocked call raises SIGSYS. The handler prints one line naming the call
//! and exits with [`SECCOMP_EXIT`].

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Process exit code after a blocked system call (SIGSYS is 31).
pub const SECCOMP_EXIT: i32 = 31;

/// The KVM ioctls the run loop makes: `_IO(0xAE, 0x80)`,
/// `_IOR(0xAE, 0x81, struct kvm_regs)`, `_IOR(0xAE, 0x83, struct kvm_sregs)`.
pub const ALLOWED_IOCTLS: [(u64, &str); 3] = [
    (0xae80, "KVM_RUN"),
    (0x8090_ae81, "KVM_GET_REGS"),
    (0x8138_ae83, "KVM_GET_SREGS"),
];

/// System calls allowed with any arguments. The vCPU threads allocate (the
/// exit statistics' first sight of a port, guest output lines, device
/// lines), and glibc's malloc grows its heaps with brk, mmap, mprotect,
/// madvise and munmap: those are allowed, mmap and mprotect only without
/// PROT_EXEC (see `program`).
pub const ALLOWED_SYSCALLS: [(libc::c_long, &str); 21] = [
    (libc::SYS_write, "write"),
    (libc::SYS_writev, "writev"),
    (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
    (libc::SYS_rt_sigreturn, "rt_sigreturn"),
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
    (libc::SYS_sigaltstack, "sigaltstack"),
    (libc::SYS_futex, "futex"),
    (libc::SYS_brk, "brk"),
    (libc::SYS_munmap, "munmap"),
    (libc::SYS_mremap, "mremap"),
    (libc::SYS_madvise, "madvise"),
    (libc::SYS_close, "close"),
    (libc::SYS_timer_settime, "timer_settime"),
    (libc::SYS_timer_delete, "timer_delete"),
    (libc::SYS_clock_gettime, "clock_gettime"),
    (libc::SYS_sched_yield, "sched_yield"),
    // waiting for room in a full stdout pipe (the CLI's patient writer)
    (libc::SYS_poll, "poll"),
    (libc::SYS_exit, "exit"),
    (libc::SYS_exit_group, "exit_group"),
    (libc::SYS_getrandom, "getrandom"),
    (libc::SYS_getcpu, "getcpu"),
];

/// What a debugger on the vCPU thread (`host run --gdb`) adds to the
/// filter: KVM_SET_REGS, KVM_SET_SREGS and KVM_SET_GUEST_DEBUG
/// (`_IOW(0xAE, 0x82 / 0x84 / 0x9b, ...)`), ppoll to wait for gdb, and read
/// on gdb's socket only (write is allowed already).
pub const DEBUGGER_IOCTLS: [(u64, &str); 3] = [
    (0x4090_ae82, "KVM_SET_REGS"),
    (0x4138_ae84, "KVM_SET_SREGS"),
    (0x4048_ae9b, "KVM_SET_GUEST_DEBUG"),
];

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Building the BPF program failed.
    #[error("cannot build the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// Installing it failed.
    #[error("cannot install the seccomp filter: {0}")]
    Apply(#[from] seccompiler::Error),
    /// Installing the SIGSYS handler failed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

/// The filter as a BPF program; with `debugger` (the fd of gdb's
/// connection), also what the debugger needs ([`DEBUGGER_IOCTLS`]).
pub fn program(debugger: Option<i32>) -> Result<BpfProgram, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED_SYSCALLS
        .iter()
        .map(|&(nr, _)| (nr, vec![]))
        .collect();
    let debugger_ioctls = debugger.map_or(&[][..], |_| &DEBUGGER_IOCTLS[..]);
    let ioctl_rules = ALLOWED_IOCTLS
        .iter()
        .chain(debugger_ioctls)
        .map(|&(req, _)| {
            SeccompRule::new(vec![SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                req,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    // A vCPU that ends a multi-vCPU VM kicks its siblings: the kick signal,
    // to threads of this process only.
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(std::process::id()),
            )?,
            SeccompCondition::new(
                2,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                crate::signals::kick_signal() as u64,
            )?,
        ])?],
    );
    // Memory for malloc, never executable.
    let no_exec = || {
        SeccompRule::new(vec![SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])
    };
    rules.insert(libc::SYS_mmap, vec![no_exec()?]);
    rules.insert(libc::SYS_mprotect, vec![no_exec()?]);
    // Rust's std checks with F_GETFD that an fd is open when it drops it
    // (debug builds); the CLI's patient stdout writer gives stdout its
    // flags back with F_SETFL when the run ends.
    let fcntl = |cmd: libc::c_int| {
        SeccompRule::new(vec![SeccompCondition::new(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            cmd as u64,
        )?])
    };
    rules.insert(
        libc::SYS_fcntl,
        vec![fcntl(libc::F_GETFD)?, fcntl(libc::F_SETFL)?],
    );
    if let Some(fd) = debugger {
        rules.insert(libc::SYS_ppoll, vec![]);
        rules.insert(
            libc::SYS_read,
            vec![SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                fd as u64,
            )?])?],
        );
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    Ok(filter.try_into()?)
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // siginfo_t for SIGSYS: the syscall number is the int at offset 24
    // (after signo, errno, code, padding and the 8-byte call address).
    // SAFETY: the kernel passes a valid siginfo_t of at least 128 bytes.
    let nr = unsafe { std::ptr::read_unaligned((info as *const u8).add(24).cast::<i32>()) };
    let head = b"host: seccomp: the vCPU thread made a blocked system call (number ";
    let tail = b"): stopping\n";
    let mut msg = [0u8; 96];
    msg[..head.len()].copy_from_slice(head);
    let mut len = head.len();
    let mut digits = [0u8; 10];
    let (mut n, mut d) = (nr.unsigned_abs(), 0);
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..d).rev() {
        msg[len] = digits[i];
        len += 1;
    }
    msg[len..len + tail.len()].copy_from_slice(tail);
    len += tail.len();
    // SAFETY: write and _exit are async-signal-safe; `msg` is a local buffer.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), len);
        libc::_exit(SECCOMP_EXIT);
    }
}

/// Makes glibc's malloc keep every thread on its main arena. A thread with
/// an arena of its own makes malloc read files under the filter: the CPU
/// count from /sys when the arena is made, /proc/sys/vm/overcommit_memory
/// when its heap shrinks (both openat, which the filter blocks: seen with
/// `host run chatty --vcpus 2`). The main arena grows and shrinks with brk.
/// The CLI calls this before it starts any thread; `apply` calls it too.
pub fn one_arena() {
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

thread_local! {
    /// Whether the filter is on this thread already (it cannot come off).
    static APPLIED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs the SIGSYS reporter and the filter on the calling thread, once:
/// a thread that has it already keeps it, and this returns `Ok(false)`.
/// `debugger`: see [`program`].
pub fn apply(debugger: Option<i32>) -> Result<bool, SeccompError> {
    if APPLIED.get() {
        return Ok(false);
    }
    one_arena();
    let prog = program(debugger)?;
    // SAFETY: a zeroed sigaction is valid; the handler only uses
    // async-signal-safe calls (write, _exit).
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(SeccompError::Handler(std::io::Error::last_os_error()));
    }
    seccompiler::apply_filter(&prog)?;
    APPLIED.set(true);
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filter_builds() {
        let p = super::program(None).unwrap();
        assert!(p.len() > 20);
        let d = super::program(Some(5)).unwrap();
        assert!(d.len() > p.len(), "the debugger's rules are added");
    }
}
