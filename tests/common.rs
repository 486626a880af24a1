//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh path in the temp dir for this test process.
pub fn temp_file(tag: &str, bytes: &[u8]) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("kvmwb-{}-{n}-{tag}", std::process::id()));
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
