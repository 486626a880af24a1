//! A guest ELF started by Linux instead of by the host hands itself to the
//! host: `cargo run -p guest-kernel --bin NAME`, `cargo test -p guest-rt`
//! and `./target/x86_64-unknown-none/debug/NAME` all execute the guest ELF
//! as a Linux program (cargo ignores the runner of a `forced-target`
//! package: cargo issues #10779, #14291). No binfmt_misc entry, no root and
//! no state outside the clone are needed.
//!
//! `_start` tells the two apart by CS: the host enters at CPL0, Linux at
//! CPL3 with RSP at argc (`lib.rs`). Linux's path then runs here, in user
//! mode, with nothing but system calls, and `execve`s, in this order:
//!
//! 1. `$KVMWB_HOST cargo-runner ELF ARGS` when KVMWB_HOST is set;
//! 2. `$CARGO run -q -p host -- cargo-runner ELF ARGS` in
//!    `$CARGO_MANIFEST_DIR` when cargo started the ELF (cargo sets both
//!    for what it runs), so the host is built from the same clone first;
//! 3. the host beside the ELF: `T/PROFILE/host`, `T/debug/host`,
//!    `T/release/host` for an ELF in `T/x86_64-unknown-none/PROFILE/`.
//!
//! When none is there it prints one line that says what to do and exits
//! with [`NO_HOST`] (127, the shell's "command not found").

use core::arch::asm;

/// The exit code when no host can be started (documented in docs/guests.md).
pub const NO_HOST: u64 = 127;

const SYS_WRITE: u64 = 1;
const SYS_ACCESS: u64 = 21;
const SYS_EXECVE: u64 = 59;
const SYS_CHDIR: u64 = 80;
const SYS_READLINK: u64 = 89;
const SYS_EXIT_GROUP: u64 = 231;
const X_OK: u64 = 1;

/// Most arguments handed on (cargo test passes a few filters and flags).
const MAX_ARGS: usize = 1024;
const PATH_MAX: usize = 4096;
const TARGET_DIR: &[u8] = b"/x86_64-unknown-none/";

fn syscall3(n: u64, a: u64, b: u64, c: u64) -> i64 {
    let r: i64;
    // SAFETY: a Linux system call from user mode (this path only runs when
    // Linux started the ELF at CPL3); the callers pass pointers to live,
    // NUL-terminated buffers and arrays, which the kernel checks anyway.
    unsafe {
        asm!("syscall", inlateout("rax") n as i64 => r, in("rdi") a, in("rsi") b,
             in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

fn write_err(s: &[u8]) {
    syscall3(SYS_WRITE, 2, s.as_ptr() as u64, s.len() as u64);
}

fn exit(code: u64) -> ! {
    syscall3(SYS_EXIT_GROUP, code, 0, 0);
    // exit_group does not return
    loop {
        core::hint::spin_loop();
    }
}

/// A NUL-terminated C string's bytes, without the NUL.
///
/// # Safety
/// `p` points to a NUL-terminated string (argv, envp and our own buffers).
unsafe fn cstr<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated, as the caller promises.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the n bytes before the NUL are readable.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// A path or string built in a fixed buffer, NUL-terminated.
struct Buf {
    b: [u8; PATH_MAX],
    n: usize,
    overflow: bool,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            b: [0; PATH_MAX],
            n: 0,
            overflow: false,
        }
    }
    fn push(&mut self, s: &[u8]) -> &mut Buf {
        if self.overflow || self.n + s.len() + 1 > PATH_MAX {
            self.overflow = true;
        } else {
            self.b[self.n..self.n + s.len()].copy_from_slice(s);
            self.n += s.len();
            self.b[self.n] = 0;
        }
        self
    }
    fn bytes(&self) -> &[u8] {
        &self.b[..self.n]
    }
    fn ptr(&self) -> *const u8 {
        self.b.as_ptr()
    }
    fn executable(&self) -> bool {
        !self.overflow && self.n > 0 && syscall3(SYS_ACCESS, self.ptr() as u64, X_OK, 0) == 0
    }
}

/// The value of `name` (with its `=`) in the environment.
///
/// # Safety
/// `envp` is the NULL-terminated environment Linux gave the program.
unsafe fn getenv(envp: *const *const u8, name: &[u8]) -> Option<*const u8> {
    let mut i = 0;
    loop {
        // SAFETY: envp is NULL-terminated; i stops at the NULL.
        let e = unsafe { *envp.add(i) };
        if e.is_null() {
            return None;
        }
        // SAFETY: every entry is a NUL-terminated string.
        let s = unsafe { cstr(e) };
        if s.len() >= name.len() && &s[..name.len()] == name {
            // SAFETY: the value starts right after the name and its '='.
            return Some(unsafe { e.add(name.len()) });
        }
        i += 1;
    }
}

/// `argv` for the host: `lead` (the command that starts it), then `ELF`,
/// then the program's own arguments after argv[0]; NULL-terminated.
struct Argv {
    v: [*const u8; MAX_ARGS],
    n: usize,
}

impl Argv {
    fn push(&mut self, p: *const u8) -> bool {
        if self.n + 1 >= MAX_ARGS {
            return false;
        }
        self.v[self.n] = p;
        self.n += 1;
        self.v[self.n] = core::ptr::null();
        true
    }
}

/// Where Linux's `_start` path continues (`lib.rs`): `sp` is the stack
/// pointer Linux gave the program (argc, argv..., NULL, envp..., NULL).
///
/// # Safety
/// Only `_start` calls it, with Linux's initial stack pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __guest_rt_from_linux(sp: *const u64) -> ! {
    // SAFETY: Linux's initial stack: argc, then argc pointers and a NULL,
    // then the environment's pointers and a NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp as usize;
        let argv = sp.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    let mut exe = Buf::new();
    let n = syscall3(
        SYS_READLINK,
        c"/proc/self/exe".as_ptr() as u64,
        exe.b.as_mut_ptr() as u64,
        (PATH_MAX - 1) as u64,
    );
    if n > 0 && (n as usize) < PATH_MAX - 1 {
        exe.n = n as usize;
        exe.b[exe.n] = 0;
    } else if argc > 0 {
        // SAFETY: argv[0] is a NUL-terminated string.
        exe.push(unsafe { cstr(*argv) });
    }
    let mut args = Argv {
        v: [core::ptr::null(); MAX_ARGS],
        n: 0,
    };
    // SAFETY: envp is Linux's environment array.
    let (host_env, cargo, manifest) = unsafe {
        (
            getenv(envp, b"KVMWB_HOST="),
            getenv(envp, b"CARGO="),
            getenv(envp, b"CARGO_MANIFEST_DIR="),
        )
    };
    let mut host = Buf::new();
    if let Some(h) = host_env {
        // SAFETY: an environment value is NUL-terminated.
        host.push(unsafe { cstr(h) });
        args.push(c"host".as_ptr().cast());
    } else if let (Some(c), Some(m)) = (cargo, manifest) {
        // SAFETY: environment values are NUL-terminated.
        host.push(unsafe { cstr(c) });
        // cargo finds the workspace's .cargo/config.toml from its folder
        syscall3(SYS_CHDIR, m as u64, 0, 0);
        for a in [c"cargo", c"run", c"-q", c"-p", c"host", c"--"] {
            args.push(a.as_ptr().cast());
        }
    } else {
        beside(&exe, &mut host);
        args.push(c"host".as_ptr().cast());
    }
    if !host.executable() {
        no_host(&exe, &host, host_env.is_some());
    }
    let mut fits = args.push(c"cargo-runner".as_ptr().cast()) && args.push(exe.ptr());
    for i in 1..argc {
        // SAFETY: i < argc indexes argv.
        fits = fits && args.push(unsafe { *argv.add(i) });
    }
    if !fits {
        write_err(b"guest: too many arguments to hand to the host (at most 1000)\n");
        exit(2);
    }
    let r = syscall3(
        SYS_EXECVE,
        host.ptr() as u64,
        args.v.as_ptr() as u64,
        envp as u64,
    );
    let mut e = Buf::new();
    e.push(b"guest: cannot start the host ")
        .push(host.bytes())
        .push(b" to run ")
        .push(exe.bytes())
        .push(b" in a VM: execve failed with errno ");
    push_num(&mut e, (-r) as u64);
    e.push(b"\n");
    write_err(e.bytes());
    exit(NO_HOST)
}

/// The host binary beside `exe` in cargo's target folder.
fn beside(exe: &Buf, host: &mut Buf) {
    let p = exe.bytes();
    let Some(at) = p.windows(TARGET_DIR.len()).rposition(|w| w == TARGET_DIR) else {
        return;
    };
    let target = &p[..at];
    let rest = &p[at + TARGET_DIR.len()..];
    let profile = &rest[..rest.iter().position(|&c| c == b'/').unwrap_or(rest.len())];
    for prof in [profile, b"debug", b"release"] {
        *host = Buf::new();
        host.push(target).push(b"/").push(prof).push(b"/host");
        if host.executable() {
            return;
        }
    }
    *host = Buf::new();
}

fn no_host(exe: &Buf, host: &Buf, from_env: bool) -> ! {
    let mut e = Buf::new();
    e.push(exe.bytes())
        .push(b": a guest program of the KVM workbench: it runs in a VM, not on Linux; ");
    if from_env {
        e.push(b"KVMWB_HOST=")
            .push(host.bytes())
            .push(b" is not an executable host");
    } else {
        e.push(b"no host was found beside it (build one: cargo build -p host), or run it with `host run ")
            .push(exe.bytes())
            .push(b"`");
    }
    e.push(b"\n");
    write_err(e.bytes());
    exit(NO_HOST)
}

fn push_num(b: &mut Buf, mut v: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    b.push(&d[i..]);
}
