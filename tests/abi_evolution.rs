//! docs/abi.md, "Adding a hypercall", followed literally: on a scratch
//! copy of the workspace, every `<!-- step: ... -->` of that section is
//! applied or run in order (edits with the code block that follows them,
//! commands with the outcome they promise), so the compile errors and the
//! output the section shows are the real ones. Then guests built before the
//! change (this workspace's own ELFs) run on the new host unchanged.
//!
//! The scratch copy and its build live under `target/abi-scratch/` (a build
//! cache like the rest of `target/`; the copy is replaced on every run).
//! The first build there compiles the host's dependencies (about a minute
//! on two cores); later runs reuse them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What the workspace's crates need to build, copied. Not `.cargo`: the
/// scratch copy lives under this workspace's `target/`, so cargo finds
/// this workspace's `.cargo/config.toml` above it, and a second copy would
/// repeat its rustflags (twice `-Zcrate-attr=test_runner(...)` is an error).
const COPY: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain.toml",
    "Makefile",
    "hypercall-abi",
    "guest-rt",
    "guest-rt-macros",
    "guest-kernel",
    "host",
    "linker",
    "tests",
    "docs",
];

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir").flatten() {
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::copy(from, to).expect("copy");
    }
}

/// One step of the section.
#[derive(Debug)]
enum Step {
    /// Insert `code` on the lines after (or before) the line containing `anchor`.
    Insert {
        file: String,
        after: bool,
        anchor: String,
        code: String,
    },
    /// Replace the line containing `anchor` by `code`.
    Replace {
        file: String,
        anchor: String,
        code: String,
    },
    /// A new file.
    New { file: String, code: String },
    /// A command and what it must do.
    Run { cmd: String, expect: Expect },
}

#[derive(Debug)]
enum Expect {
    Success,
    Failure(String),
    Output(String),
}

/// The steps of "## 9. Adding a hypercall", in order.
fn steps(doc: &str) -> Vec<Step> {
    let start = doc
        .find("## 9. Adding a hypercall")
        .expect("docs/abi.md has the section \"## 9. Adding a hypercall\"");
    let section = &doc[start..];
    let section = match section[3..].find("\n## ") {
        Some(e) => &section[..e + 3],
        None => section,
    };
    let lines: Vec<&str> = section.lines().collect();
    let code_after = |i: usize| -> String {
        let open = (i + 1..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .expect("a code block after the step");
        let close = (open + 1..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .expect("the end of that code block");
        lines[open + 1..close]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(s) = l
            .strip_prefix("<!-- step: ")
            .and_then(|s| s.strip_suffix(" -->"))
        else {
            continue;
        };
        let step = if let Some(r) = s.strip_prefix("insert into ") {
            let (file, rest) = r
                .split_once(' ')
                .expect("insert into FILE after|before: TEXT");
            let (pos, anchor) = rest.split_once(": ").expect("after: or before:");
            Step::Insert {
                file: file.into(),
                after: pos == "after",
                anchor: anchor.into(),
                code: code_after(i),
            }
        } else if let Some(r) = s.strip_prefix("replace in ") {
            let (file, anchor) = r.split_once(": ").expect("replace in FILE: TEXT");
            Step::Replace {
                file: file.into(),
                anchor: anchor.into(),
                code: code_after(i),
            }
        } else if let Some(file) = s.strip_prefix("new file ") {
            Step::New {
                file: file.into(),
                code: code_after(i),
            }
        } else if let Some(r) = s.strip_prefix("run ") {
            let (cmd, e) = r.split_once("; expect ").expect("run CMD; expect ...");
            let expect = if e == "success" {
                Expect::Success
            } else if let Some(t) = e.strip_prefix("failure: ") {
                Expect::Failure(t.into())
            } else if let Some(t) = e.strip_prefix("output: ") {
                Expect::Output(t.into())
            } else {
                panic!("unknown expectation `{e}`")
            };
            Step::Run {
                cmd: cmd.into(),
                expect,
            }
        } else {
            panic!("unknown step `{s}`");
        };
        out.push(step);
    }
    out
}

fn edit(ws: &Path, file: &str, anchor: &str, f: impl FnOnce(&mut Vec<String>, usize)) {
    let p = ws.join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| l.contains(anchor))
        .unwrap_or_else(|| panic!("{file} has no line containing `{anchor}`"));
    f(&mut lines, at);
    std::fs::write(&p, lines.join("\n") + "\n").expect("write");
}

fn code_lines(code: &str) -> Vec<String> {
    code.lines().map(String::from).collect()
}

#[test]
fn adding_a_hypercall_as_the_abi_doc_says() {
    let root = root();
    let base = root.join("target/abi-scratch");
    let ws = base.join("ws");
    let target = base.join("target");
    let _ = std::fs::remove_dir_all(&ws);
    for c in COPY {
        copy(&root.join(c), &ws.join(c));
    }
    let doc = std::fs::read_to_string(root.join("docs/abi.md")).expect("docs/abi.md");
    let steps = steps(&doc);
    assert!(steps.len() >= 8, "{steps:#?}");
    let mut log = String::new();
    for step in &steps {
        match step {
            Step::Insert {
                file,
                after,
                anchor,
                code,
            } => edit(&ws, file, anchor, |l, at| {
                let at = if *after { at + 1 } else { at };
                l.splice(at..at, code_lines(code));
            }),
            Step::Replace { file, anchor, code } => edit(&ws, file, anchor, |l, at| {
                l.splice(at..=at, code_lines(code));
            }),
            Step::New { file, code } => std::fs::write(ws.join(file), code).expect("new file"),
            Step::Run { cmd, expect } => {
                let words: Vec<&str> = cmd.split(' ').collect();
                let program = match words[0] {
                    w if w.starts_with("target/") => target.join(&w["target/".len()..]),
                    w => PathBuf::from(w),
                };
                let o = Command::new(program)
                    .args(&words[1..])
                    .current_dir(&ws)
                    .env("CARGO_TARGET_DIR", &target)
                    .output()
                    .unwrap_or_else(|e| panic!("{cmd}: {e}"));
                let (out, err) = (
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr),
                );
                log.push_str(&format!("$ {cmd}\n"));
                match expect {
                    Expect::Success => assert!(o.status.success(), "{cmd}:\n{err}"),
                    Expect::Failure(t) => {
                        assert!(!o.status.success(), "{cmd} should fail");
                        assert!(err.contains(t.as_str()), "{cmd}: no `{t}` in:\n{err}");
                    }
                    Expect::Output(t) => {
                        assert!(o.status.success(), "{cmd}:\n{err}");
                        assert!(out.contains(t.as_str()), "{cmd}: no `{t}` in:\n{out}");
                    }
                }
            }
        }
    }
    let host = target.join("debug/host");
    // the regenerated document lists the new hypercall and is fresh
    let abi = std::fs::read_to_string(ws.join("docs/abi.md")).expect("abi.md");
    assert!(abi.contains("| 8 | `add` | 0x508 |"), "{abi}");
    let o = Command::new(&host)
        .args(["abi", "--check-doc", "docs/abi.md"])
        .current_dir(&ws)
        .output()
        .expect("host abi");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // guests built before the change (by this workspace) run unchanged
    for (guest, want) in [
        ("hello_str", "Hello, world!\n"),
        ("hypercalls", "print_str: this line is one exit\n"),
    ] {
        let elf = host::guests::resolve(guest).expect("built guest");
        let o = Command::new(&host)
            .arg("run")
            .arg(&elf)
            .output()
            .expect("run old guest");
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{guest}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains(want), "{guest}: {out}");
    }
    assert!(log.contains("$ make abi-doc"), "{log}");

    // The other way: guests built after the change, on this workspace's
    // host (built before it). `hello` does not call `add`, so its note
    // does not list it and it runs; `add` is refused naming what is true.
    let old_host = env!("CARGO_BIN_EXE_host");
    let o = Command::new("cargo")
        .args([
            "build",
            "-p",
            "guest-kernel",
            "--bin",
            "hello",
            "--bin",
            "add",
        ])
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let new_guest = |name: &str| target.join("x86_64-unknown-none/debug").join(name);
    let o = Command::new(old_host)
        .arg("run")
        .arg(new_guest("hello"))
        .output()
        .expect("run new hello");
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()),
        (Some(0), "Hello, world!\n"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(old_host)
        .arg("run")
        .arg(new_guest("add"))
        .output()
        .expect("run new add");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the guest's hypercall ABI differs from this host's: hypercall add (nr 8, port 0x508): the guest calls it and this host does not have it"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // A guest file that forgets `guest_rt::entry!` is told so by name
    // (linker/guest.ld's ASSERT), not with rust-lld's undefined symbol.
    std::fs::write(
        ws.join("guest-kernel/src/bin/noentry.rs"),
        "#![no_std]\n#![no_main]\nuse guest_rt::println;\nfn main() -> u64 {\n    println!(\"hi\");\n    0\n}\n",
    )
    .expect("noentry.rs");
    let o = Command::new("cargo")
        .args(["build", "-p", "guest-kernel", "--bin", "noentry"])
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo build");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(
            "this guest program has no entry point: declare its main with guest_rt::entry!(main)"
        ),
        "{err}"
    );
    assert!(!err.contains("undefined symbol"), "{err}");
    let _ = std::fs::remove_file(ws.join("guest-kernel/src/bin/noentry.rs"));

    // guest_rt::test refuses what libtest would, at the spot, in one error
    std::fs::write(
        ws.join("guest-kernel/src/bin/badtest.rs"),
        "#![no_std]\n#![no_main]\nguest_rt::entry!(main);\nfn main() -> u64 {\n    0\n}\n#[cfg(test)]\nmod tests {\n    use guest_rt::test;\n    #[test]\n    fn takes(x: u32) {\n        assert_eq!(x, 1);\n    }\n    #[test]\n    #[should_panic(wanted = \"x\")]\n    fn misspelt() {}\n}\n",
    )
    .expect("badtest.rs");
    let o = Command::new("cargo")
        .args(["test", "-p", "guest-kernel", "--bin", "badtest", "--no-run"])
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo test");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("error: a #[test] function takes no arguments"),
        "{err}"
    );
    assert!(
        err.contains("error: write #[should_panic], #[should_panic = \"text\"] or #[should_panic(expected = \"text\")]"),
        "{err}"
    );
}
