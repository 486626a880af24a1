//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_dir() {
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// This test process's own folder in the temp dir, removed when the
/// process exits (the test harness ends with `exit`, which runs atexit
/// handlers), so no test leaves files behind.
pub fn temp_dir() -> &'static Path {
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("kvmwb-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the test folder");
        // SAFETY: registers a plain function with no arguments; it only
        // reads a static that is set before it can run.
        unsafe { libc::atexit(remove_dir) };
        d
    })
}

/// A fresh file with `bytes` in this process's temp folder.
pub fn temp_file(tag: &str, bytes: &[u8]) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = temp_dir().join(format!("{n}-{tag}"));
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

/// The built ELF of a guest program.
pub fn guest_elf(name: &str) -> Vec<u8> {
    let p = host::guests::resolve(name).expect("guest is built");
    std::fs::read(p).expect("read guest")
}

/// Runs the `host` binary with `args`.
pub fn host(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .args(args)
        .output()
        .expect("spawn host")
}

/// `host` arguments that run the flat image at `path` in long mode at
/// 0x100000 (`real`: in real mode at 0xa000), with `extra` flags.
pub fn flat_run(real: bool, path: String, extra: &[&str]) -> Vec<String> {
    let head: &[&str] = if real {
        &["run", "--mode", "real", "--flat", "0xa000"]
    } else {
        &["run", "--flat", "0x100000"]
    };
    let mut a: Vec<String> = head.iter().chain(extra).map(|x| x.to_string()).collect();
    a.push(path);
    a
}

/// A gdb remote-protocol packet: `$data#checksum`.
pub fn gdb_packet(data: &str) -> String {
    let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    format!("${data}#{sum:02x}")
}

/// A real-mode program that cannot go on: `cli; xor %si,%si; lidt (%si)`
/// (IDT limit 0), set CR0.PE, `int3`. VT-x/AMD-V: #GP, #DF, triple fault.
/// kvm-pvm: KVM_EXIT_INTERNAL_ERROR (emulation failed). Either way a crash.
/// (Without the switch to protected mode kvm-pvm keeps running the guest
/// through the zeroed IVT instead of faulting.)
pub const CRASH16: &[u8] = &[
    0xfa, 0x31, 0xf6, 0x0f, 0x01, 0x1c, 0x0f, 0x20, 0xc0, 0x0c, 0x01, 0x0f, 0x22, 0xc0, 0xcc,
];
