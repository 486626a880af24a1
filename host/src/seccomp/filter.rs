//! Defence in depth: once a VM is set up, the vCPU thread runs under a
//! seccomp filter (assembled in `bpf.rs`) that allows only the system calls
//! the run loop and the final report need. If a guest ever found a bug that
//! let it steer the host, the host still could not open files, create
//! processes or sockets, or issue other KVM ioctls.
//!
//! A blocked call raises SIGSYS. The handler prints one line naming the call
//! and exits with [`SECCOMP_EXIT`].

use super::bpf::{self, BpfError, Insn, Rule};
use std::collections::BTreeMap;

/// Process exit code after a blocked system call (SIGSYS is 31).
pub const SECCOMP_EXIT: i32 = 31;

/// The KVM ioctls the run loop makes: `_IO(0xAE, 0x80)`,
/// `_IOR(0xAE, 0x81, struct kvm_regs)`, `_IOR(0xAE, 0x83, struct kvm_sregs)`,
/// and for interrupts `_IOW(0xAE, 0x86, struct kvm_interrupt)` (the
/// user-space controller), `_IOR(0xAE, 0x98, struct kvm_mp_state)` (a
/// HLT with interrupts off under the in-kernel one), `_IOW(0xAE, 0x61,
/// struct kvm_irq_level)` (`--raise-with irq-line`) and `_IOR(0xAE, 0x8e,
/// struct kvm_lapic_state)` (the vector in service, for a crash report).
pub const ALLOWED_IOCTLS: [(u64, &str); 7] = [
    (0xae80, "KVM_RUN"),
    (0x8090_ae81, "KVM_GET_REGS"),
    (0x8138_ae83, "KVM_GET_SREGS"),
    (0x4004_ae86, "KVM_INTERRUPT"),
    (0x8004_ae98, "KVM_GET_MP_STATE"),
    (0x4008_ae61, "KVM_IRQ_LINE"),
    (0x8400_ae8e, "KVM_GET_LAPIC"),
];

/// System calls allowed with any arguments. The vCPU threads allocate (the
/// exit statistics' first sight of a port, guest output lines, device
/// lines), and glibc's malloc grows its heaps with brk, mmap, mprotect,
/// madvise and munmap: those are allowed, mmap and mprotect only without
/// PROT_EXEC (see `program`).
pub const ALLOWED_SYSCALLS: [(libc::c_long, &str); 22] = [
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
    // a crash report checks that the guest file it mapped before the jail
    // still has its length before it reads the DWARF (loader::FileMap)
    (libc::SYS_fstat, "fstat"),
];

/// What a debugger on the vCPU thread (`host run --gdb`) adds to the
/// filter: KVM_SET_REGS, KVM_SET_SREGS and KVM_SET_GUEST_DEBUG
/// (`_IOW(0xAE, 0x82 / 0x84 / 0x9b, ...)`), KVM_GET_IRQCHIP and
/// KVM_GET_PIT2 (`monitor irq`), ppoll to wait for gdb, and read
/// on gdb's socket only (write is allowed already).
pub const DEBUGGER_IOCTLS: [(u64, &str); 5] = [
    (0x4090_ae82, "KVM_SET_REGS"),
    (0x4138_ae84, "KVM_SET_SREGS"),
    (0x4048_ae9b, "KVM_SET_GUEST_DEBUG"),
    // `monitor irq`: the VM's PICs, IOAPIC and PIT
    (0xc208_ae62, "KVM_GET_IRQCHIP"),
    (0x8070_ae9f, "KVM_GET_PIT2"),
];

/// What a run that saves a snapshot (`host run --snapshot`) adds: the
/// reads of a vCPU's and the VM's state (`kvm::state`), mincore (which
/// guest pages the kernel has given memory), pwrite64 and ftruncate (the
/// file was opened before the jail; its memory image ends in a hole).
pub const SNAPSHOT_IOCTLS: [(u64, &str); 7] = [
    (0x9000_aea4, "KVM_GET_XSAVE"),
    (0x8188_aea6, "KVM_GET_XCRS"),
    (0x8080_aea1, "KVM_GET_DEBUGREGS"),
    (0x8040_ae9f, "KVM_GET_VCPU_EVENTS"),
    (0xc008_ae88, "KVM_GET_MSRS"),
    (0xc208_ae62, "KVM_GET_IRQCHIP"),
    (0x8070_ae9f, "KVM_GET_PIT2"),
];

/// What a debugger that may save the VM adds (`host run --gdb --record`:
/// time travel puts its checkpoints back on the vCPU thread): the writes
/// of the state [`SNAPSHOT_IOCTLS`] reads (KVM_SET_REGS and KVM_SET_SREGS
/// are the debugger's already).
pub const RESTORE_IOCTLS: [(u64, &str); 6] = [
    (0x5000_aea5, "KVM_SET_XSAVE"),
    (0x4188_aea7, "KVM_SET_XCRS"),
    (0x4080_aea2, "KVM_SET_DEBUGREGS"),
    (0x4040_aea0, "KVM_SET_VCPU_EVENTS"),
    (0x4008_ae89, "KVM_SET_MSRS"),
    (0x4004_ae99, "KVM_SET_MP_STATE"),
];

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Assembling the BPF program failed.
    #[error("cannot build the seccomp filter: {0}")]
    Build(#[from] BpfError),
    /// prctl(PR_SET_NO_NEW_PRIVS) or seccomp(SECCOMP_SET_MODE_FILTER) failed.
    #[error("cannot install the seccomp filter: {0} failed: {1}")]
    Apply(&'static str, std::io::Error),
    /// Installing the SIGSYS handler failed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

/// Every allowed system call and what it may be called with; with
/// `debugger` (the fd of gdb's connection), also what the debugger needs
/// ([`DEBUGGER_IOCTLS`]).
pub fn rules(debugger: Option<i32>) -> BTreeMap<u32, Rule> {
    rules_with(debugger, false, &[])
}

/// [`rules`], and with `snapshot` what saving one needs
/// ([`SNAPSHOT_IOCTLS`], mincore, pwrite64, ftruncate); `reads`: fds the
/// thread may `pread64` (KVM's statistics fds of `--kvm-stats`).
pub fn rules_with(debugger: Option<i32>, snapshot: bool, reads: &[i32]) -> BTreeMap<u32, Rule> {
    let nr = |n: libc::c_long| n as u32;
    let mut rules: BTreeMap<u32, Rule> = ALLOWED_SYSCALLS
        .iter()
        .map(|&(n, _)| (nr(n), Rule::Any))
        .collect();
    let debugger_ioctls = debugger.map_or(&[][..], |_| &DEBUGGER_IOCTLS[..]);
    let snapshot_ioctls = if snapshot {
        &SNAPSHOT_IOCTLS[..]
    } else {
        &[][..]
    };
    let restore_ioctls = match (snapshot, debugger) {
        (true, Some(_)) => &RESTORE_IOCTLS[..],
        _ => &[][..],
    };
    let mut ioctls: Vec<u32> = ALLOWED_IOCTLS
        .iter()
        .chain(debugger_ioctls)
        .chain(snapshot_ioctls)
        .chain(restore_ioctls)
        .map(|&(req, _)| req as u32)
        .collect();
    ioctls.sort_unstable();
    ioctls.dedup();
    if !reads.is_empty() {
        rules.insert(
            nr(libc::SYS_pread64),
            Rule::OneOf {
                arg: 0,
                values: reads.iter().map(|&fd| fd as u32).collect(),
            },
        );
    }
    if snapshot {
        rules.insert(nr(libc::SYS_mincore), Rule::Any);
        rules.insert(nr(libc::SYS_pwrite64), Rule::Any);
        rules.insert(nr(libc::SYS_ftruncate), Rule::Any);
    }
    rules.insert(
        nr(libc::SYS_ioctl),
        Rule::OneOf {
            arg: 1,
            values: ioctls,
        },
    );
    // A vCPU that ends a multi-vCPU VM kicks its siblings, and the
    // SIGINT/SIGTERM handler may run on a vCPU thread: the kick signal, to
    // threads of this process only.
    rules.insert(
        nr(libc::SYS_tgkill),
        Rule::All(vec![
            (0, std::process::id()),
            (2, crate::signals::kick_signal() as u32),
        ]),
    );
    // Memory for malloc, never executable.
    let no_exec = Rule::Clear {
        arg: 2,
        mask: libc::PROT_EXEC as u32,
    };
    rules.insert(nr(libc::SYS_mmap), no_exec.clone());
    rules.insert(nr(libc::SYS_mprotect), no_exec);
    // Rust's std checks with F_GETFD that an fd is open when it drops it
    // (debug builds); the CLI's patient stdout writer gives stdout its
    // flags back with F_SETFL when the run ends.
    rules.insert(
        nr(libc::SYS_fcntl),
        Rule::OneOf {
            arg: 1,
            values: vec![libc::F_GETFD as u32, libc::F_SETFL as u32],
        },
    );
    if let Some(fd) = debugger {
        rules.insert(nr(libc::SYS_ppoll), Rule::Any);
        rules.insert(
            nr(libc::SYS_read),
            Rule::OneOf {
                arg: 0,
                values: vec![fd as u32],
            },
        );
    }
    rules
}

/// The filter as a BPF program (see [`rules`]).
pub fn program(debugger: Option<i32>) -> Result<Vec<Insn>, SeccompError> {
    program_with(debugger, false, &[])
}

/// The filter as a BPF program (see [`rules_with`]).
pub fn program_with(
    debugger: Option<i32>,
    snapshot: bool,
    reads: &[i32],
) -> Result<Vec<Insn>, SeccompError> {
    Ok(bpf::program(&rules_with(debugger, snapshot, reads))?)
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
    apply_with(debugger, false, &[])
}

/// [`apply`], with `snapshot` and `reads`: see [`rules_with`].
pub fn apply_with(
    debugger: Option<i32>,
    snapshot: bool,
    reads: &[i32],
) -> Result<bool, SeccompError> {
    if APPLIED.get() {
        return Ok(false);
    }
    install(&program_with(debugger, snapshot, reads)?)
}

/// Installs the SIGSYS reporter and `prog` on the calling thread, which
/// has no filter yet ([`apply`], `super::device::apply_device`).
pub(super) fn install(prog: &[Insn]) -> Result<bool, SeccompError> {
    one_arena();
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
    // SAFETY: prctl with these arguments only sets a flag of this thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SeccompError::Apply(
            "prctl(PR_SET_NO_NEW_PRIVS)",
            std::io::Error::last_os_error(),
        ));
    }
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`, which lives across the call; the
    // kernel copies the program and does not write through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(SeccompError::Apply(
            "seccomp(SECCOMP_SET_MODE_FILTER)",
            std::io::Error::last_os_error(),
        ));
    }
    APPLIED.set(true);
    Ok(true)
}

#[cfg(test)]
mod tests {
    /// The snapshot's ioctl numbers are _IOR/_IOWR(KVMIO, nr, the
    /// kvm_bindings structure) for this build's structure sizes.
    #[test]
    fn snapshot_ioctl_numbers_match_the_structures() {
        use kvm_bindings as k;
        let io =
            |dir: u64, nr: u64, size: usize| (dir << 30) | ((size as u64) << 16) | (0xae << 8) | nr;
        let want = [
            io(2, 0xa4, size_of::<k::kvm_xsave>()),
            io(2, 0xa6, size_of::<k::kvm_xcrs>()),
            io(2, 0xa1, size_of::<k::kvm_debugregs>()),
            io(2, 0x9f, size_of::<k::kvm_vcpu_events>()),
            io(3, 0x88, size_of::<k::kvm_msrs>()),
            io(3, 0x62, size_of::<k::kvm_irqchip>()),
            io(2, 0x9f, size_of::<k::kvm_pit_state2>()),
        ];
        let have: Vec<u64> = SNAPSHOT_IOCTLS.iter().map(|&(n, _)| n).collect();
        assert_eq!(have, want);
        let r = rules_with(None, true, &[]);
        assert!(r.contains_key(&(libc::SYS_mincore as u32)));
        assert!(!rules(None).contains_key(&(libc::SYS_mincore as u32)));
        // time travel's writes back: only a debugger that may save
        let want = [
            io(1, 0xa5, size_of::<k::kvm_xsave>()),
            io(1, 0xa7, size_of::<k::kvm_xcrs>()),
            io(1, 0xa2, size_of::<k::kvm_debugregs>()),
            io(1, 0xa0, size_of::<k::kvm_vcpu_events>()),
            io(1, 0x89, size_of::<k::kvm_msrs>()),
            io(1, 0x99, size_of::<k::kvm_mp_state>()),
        ];
        let have: Vec<u64> = RESTORE_IOCTLS.iter().map(|&(n, _)| n).collect();
        assert_eq!(have, want);
        let allowed = |r: &BTreeMap<u32, Rule>, n: u64| match &r[&(libc::SYS_ioctl as u32)] {
            Rule::OneOf { values, .. } => values.contains(&(n as u32)),
            _ => false,
        };
        assert!(!allowed(&rules_with(None, true, &[]), 0x4008_ae89));
        assert!(!allowed(&rules_with(Some(3), false, &[]), 0x4008_ae89));
        assert!(allowed(&rules_with(Some(3), true, &[]), 0x4008_ae89));
    }

    use super::*;
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    /// The filter as seccompiler built it until 2026-12 (a chain of
    /// comparisons): the reference that `bpf::program` must agree with.
    fn reference(debugger: Option<i32>) -> Vec<(u16, u8, u8, u32)> {
        let eq = |arg: u8, v: u64| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v).unwrap()
        };
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED_SYSCALLS
            .iter()
            .map(|&(nr, _)| (nr, vec![]))
            .collect();
        let debugger_ioctls = debugger.map_or(&[][..], |_| &DEBUGGER_IOCTLS[..]);
        let ioctl: Vec<SeccompRule> = ALLOWED_IOCTLS
            .iter()
            .chain(debugger_ioctls)
            .map(|&(req, _)| SeccompRule::new(vec![eq(1, req)]).unwrap())
            .collect();
        rules.insert(libc::SYS_ioctl, ioctl);
        let tgkill = vec![
            eq(0, u64::from(std::process::id())),
            eq(2, crate::signals::kick_signal() as u64),
        ];
        rules.insert(libc::SYS_tgkill, vec![SeccompRule::new(tgkill).unwrap()]);
        let no_exec = || {
            let op = SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64);
            let c = SeccompCondition::new(2, SeccompCmpArgLen::Dword, op, 0).unwrap();
            SeccompRule::new(vec![c]).unwrap()
        };
        rules.insert(libc::SYS_mmap, vec![no_exec()]);
        rules.insert(libc::SYS_mprotect, vec![no_exec()]);
        let fcntl = |cmd: libc::c_int| SeccompRule::new(vec![eq(1, cmd as u64)]).unwrap();
        rules.insert(
            libc::SYS_fcntl,
            vec![fcntl(libc::F_GETFD), fcntl(libc::F_SETFL)],
        );
        if let Some(fd) = debugger {
            rules.insert(libc::SYS_ppoll, vec![]);
            let read = SeccompRule::new(vec![eq(0, fd as u64)]).unwrap();
            rules.insert(libc::SYS_read, vec![read]);
        }
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Trap,
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .unwrap();
        let prog: seccompiler::BpfProgram = f.try_into().unwrap();
        prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    /// Runs a classic BPF program over `struct seccomp_data` (the subset
    /// both programs use: loads, ALU AND, jumps, returns).
    /// Returns the action and how many instructions ran before the number
    /// was decided: up to the first argument load, or to the return.
    fn run(prog: &[(u16, u8, u8, u32)], data: &[u8; 64]) -> (u32, usize) {
        let word = |off: u32| {
            let o = off as usize;
            u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
        };
        let (mut pc, mut acc, mut steps, mut decided) = (0usize, 0u32, 0, None);
        loop {
            let (code, jt, jf, k) = prog[pc];
            pc += 1;
            steps += 1;
            let jump = |cond: bool| if cond { jt as usize } else { jf as usize };
            match code {
                0x20 => {
                    if k >= 16 {
                        decided.get_or_insert(steps);
                    }
                    acc = word(k)
                }
                0x54 => acc &= k,
                0x05 => pc += k as usize,
                0x15 => pc += jump(acc == k),
                0x25 => pc += jump(acc > k),
                0x35 => pc += jump(acc >= k),
                0x45 => pc += jump(acc & k != 0),
                0x06 => return (k, decided.unwrap_or(steps)),
                other => panic!("opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    /// This module's program, as (code, jt, jf, k).
    fn mine(debugger: Option<i32>) -> Vec<(u16, u8, u8, u32)> {
        let prog = program(debugger).unwrap();
        prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_le_bytes());
        d[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        d
    }

    /// The tree decides every system call number (x86-64, x32, with every
    /// interesting argument) exactly as seccompiler's chain did, for the
    /// filter without and with the debugger's rules.
    #[test]
    fn the_tree_decides_every_call_as_seccompiler_did() {
        let pid = u64::from(std::process::id());
        let kick = crate::signals::kick_signal() as u64;
        let mut values: Vec<u64> = vec![0, 1, 2, 3, 5, 7, pid, kick, pid + 1, u64::MAX];
        for &(req, _) in ALLOWED_IOCTLS.iter().chain(&DEBUGGER_IOCTLS) {
            values.extend([req, req + 1, req | 1 << 32, req ^ 0x100]);
        }
        for v in [libc::F_GETFD, libc::F_SETFL, libc::F_SETFD, libc::F_DUPFD] {
            values.push(v as u64);
        }
        for prot in 0..8u64 {
            values.extend([prot, prot | 1 << 40]);
        }
        for debugger in [None, Some(5)] {
            let mine = mine(debugger);
            let theirs = reference(debugger);
            assert!(
                mine.len() < theirs.len(),
                "{} vs {}",
                mine.len(),
                theirs.len()
            );
            let mut checked = 0u64;
            for nr in (0..480u32).chain((0..480).map(|n| n | 0x4000_0000)) {
                let rule = rules(debugger).get(&nr).cloned();
                // arguments matter only for calls with a rule on them
                let vals: &[u64] = match rule {
                    Some(Rule::Any) | None => &[0],
                    Some(_) => &values,
                };
                for &a in vals {
                    for &b in vals {
                        for arch in [0xc000_003e, 0x4000_0003] {
                            let d = data(arch, nr, [a, a, b, b, 0, 0]);
                            assert_eq!(
                                run(&mine, &d).0,
                                run(&theirs, &d).0,
                                "nr {nr} arch {arch:#x} args {a:#x} {b:#x}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
            assert!(checked > 10_000);
        }
    }

    /// What the tree buys: the longest path a system call number takes
    /// through it (the kernel walks every number once when the filter is
    /// installed) is a handful of comparisons, not one per allowed call.
    #[test]
    fn numbers_are_found_in_a_few_comparisons() {
        let prog = mine(Some(5));
        for nr in 0..480u32 {
            let (_, steps) = run(&prog, &data(0xc000_003e, nr, [0; 6]));
            assert!(steps <= 12, "nr {nr}: {steps} instructions");
        }
    }
}
