//! cargo-binutils in daily use (the Makefile installs it): `make size`,
//! `make disasm` and `make flat` for a guest, and the flat image running
//! with `host run --flat`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn make(args: &[&str]) -> String {
    let o = Command::new("make")
        .arg("-s")
        .args(args)
        .current_dir(root())
        .output()
        .expect("make");
    assert!(
        o.status.success(),
        "make {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn make_size_lists_the_sections_at_their_addresses() {
    let out = make(&["size", "GUEST=hello"]);
    let text = out.lines().find(|l| l.starts_with(".text")).expect(".text");
    assert!(text.ends_with("0x100000"), "linked at 1 MiB: {text}");
    assert!(out.contains(".note.kvmwb.abi"), "{out}");
    assert!(out.contains(".kvmwb.real"));
}

#[test]
fn make_disasm_shows_start_and_main() {
    let out = make(&["disasm", "GUEST=hello"]);
    assert!(out.contains("0000000000100000 <_start>:"), "{out}");
    assert!(out.contains("<__guest_rt_main>"));
    assert!(out.contains("hlt"));
    // Rust names demangled, the source lines interleaved
    let out = make(&["disasm", "GUEST=crash"]);
    assert!(out.contains("<crash::deep>:"), "{out}");
    assert!(out.contains("core::arch::asm!(\"ud2\")"), "{out}");
}

#[test]
fn make_flat_gives_an_image_that_runs_with_flat() {
    let out = make(&["flat", "GUEST=hello_str"]);
    assert!(
        out.contains("target/flat/hello_str.bin: run it with"),
        "{out}"
    );
    let img = root().join("target/flat/hello_str.bin");
    let o = Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("run")
        .arg(&img)
        .args(["--flat", "0x100000"])
        .output()
        .expect("host");
    let _ = std::fs::remove_file(&img);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Hello, world!\n");
}
