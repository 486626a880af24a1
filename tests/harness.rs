//! Guests as ordinary Rust: `cargo run` and `cargo test` of guest crates
//! (cargo executes the guest ELF, which hands itself to `host cargo-runner`
//! through `cargo run -p host`: guest_rt::launch, no binfmt_misc entry),
//! the guest test harness (one VM per test, libtest's output), and a guest
//! built after the host.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run cargo")
}

/// The test build of `bin` (guest-kernel), built now.
fn test_elf(bin: &str) -> String {
    let o = cargo(&[
        "test",
        "-p",
        "guest-kernel",
        "--bin",
        bin,
        "--no-run",
        "--message-format=json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == bin && v["profile"]["test"] == true)
        .find_map(|v| v["executable"].as_str().map(str::to_string))
        .expect("the test executable")
}

#[test]
fn each_guest_test_runs_in_its_own_vm_and_is_reported_by_name() {
    let elf = test_elf("harness_demo");
    let o = common::host(&["cargo-runner", &elf]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("running 9 tests\n"), "{out}");
    assert!(out.contains("test tests::passes ... ok\n"));
    assert!(out.contains("test tests::divides_by_zero - should panic ... ok\n"));
    assert!(out.contains("test tests::panics ... ignored\n"));
    assert!(out.contains("test tests::faults ... ignored, an invalid opcode, on purpose\n"));
    assert!(out.contains("test tests::does_not_panic - should panic ... ignored\n"));
    assert!(
        out.contains("test result: ok. 3 passed; 0 failed; 6 ignored; 0 measured; 0 filtered out;"),
        "{out}"
    );

    // the failing ones: a panic, a triple fault, a timeout, no panic where
    // one should be, the wrong panic; each by name with its output, and
    // the tests after them still run
    let o = common::host(&["cargo-runner", &elf, "--include-ignored", "--timeout", "1s"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(101), "libtest's code: {out}");
    for t in [
        "never_returns ...",
        "panics ...",
        "faults ...",
        "does_not_panic - should panic ...",
        "panics_with_another_message - should panic ...",
        "returns_an_error ...",
    ] {
        assert!(out.contains(&format!("test tests::{t} FAILED\n")), "{out}");
        let name = t.split(' ').next().unwrap_or(t);
        assert!(
            out.contains(&format!("---- tests::{name} stdout ----\n")),
            "{out}"
        );
    }
    assert!(out.contains("test tests::passes ... ok\n"));
    assert!(out.contains("test tests::returns_ok ... ok\n"));
    assert!(out.contains("test tests::divides_by_zero - should panic ... ok\n"));
    assert!(out.contains("---- tests::returns_an_error stdout ----\nError: \"no such file\"\nhost: the test failed: it panicked, or returned an Err (its output says which)\n"), "{out}");
    assert!(
        out.contains("about to fail\nguest panic: assertion `left == right` failed: arithmetic")
    );
    assert!(out.contains(
        "host: the test failed: it panicked, or returned an Err (its output says which)\n"
    ));
    assert!(out.contains("host: the test stopped: #UD invalid opcode (exception 6)"));
    assert!(out.contains("host: the test stopped: timeout after 1.000 s"));
    assert!(out.contains(
        "---- tests::does_not_panic stdout ----\nnote: test did not panic as expected\nhost: the test did not panic as its #[should_panic] expects (the note above says how)\n"
    ), "{out}");
    assert!(
        out.contains("guest panic: overflow at guest-kernel/src/bin/harness_demo.rs:"),
        "{out}"
    );
    assert!(out.contains(
        "note: panic did not contain expected string\n      panic message: \"overflow\",\n expected substring: \"out of range\"\n"
    ), "{out}");
    assert!(
        out.contains(
            "test result: FAILED. 3 passed; 6 failed; 0 ignored; 0 measured; 0 filtered out;"
        ),
        "{out}"
    );

    // a filter, and --list
    let o = common::host(&["cargo-runner", &elf, "pass", "--list"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out, "tests::passes: test\n\n1 tests, 0 benchmarks\n");
    let o = common::host(&["cargo-runner", &elf, "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Nothing outside the clone takes part: an old binfmt_misc entry would
/// hand the ELF to whatever clone registered it.
fn no_binfmt_entry() {
    assert!(
        !Path::new("/proc/sys/fs/binfmt_misc/kvmwb-guest").exists(),
        "an old binfmt_misc entry kvmwb-guest intercepts guest ELFs: `make binfmt-clean` removes it"
    );
}

#[test]
fn cargo_run_runs_a_guest_in_a_vm() {
    no_binfmt_entry();
    let o = cargo(&["run", "-q", "-p", "guest-kernel", "--bin", "hello"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Hello, world!\n");
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hello halted after 15 exits"), "{err}");
    // host flags after `--`, and the host's exit code
    let o = cargo(&[
        "run",
        "-q",
        "-p",
        "guest-kernel",
        "--bin",
        "debugme",
        "--",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json");
    assert_eq!(v["output"], "shout 6\n");
    // the guest's arguments: words after `--`, or after the host's flags
    // and a second `--`
    let o = cargo(&[
        "run",
        "-q",
        "-p",
        "guest-kernel",
        "--bin",
        "primes",
        "--",
        "30",
        "4",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "2 3 5 7\n11 13 17 19\n23 29\n10 primes below 30\n"
    );
    let o = cargo(&[
        "run",
        "-q",
        "-p",
        "guest-kernel",
        "--bin",
        "primes",
        "--",
        "--json",
        "--",
        "10",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json");
    assert_eq!(v["output"], "2 3 5 7\n4 primes below 10\n");
}

#[test]
fn a_guest_built_after_the_host_runs_by_name() {
    // what `cargo build -p guest-kernel` does for a new program file: an
    // ELF in target/x86_64-unknown-none/debug/, unknown to this host's build
    let exe = Path::new(env!("CARGO_BIN_EXE_host"));
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("x86_64-unknown-none/debug");
    std::fs::create_dir_all(&dir).expect("guest output folder");
    let name = format!("late{}", std::process::id());
    let path = dir.join(&name);
    std::fs::write(&path, common::guest_elf("hello")).expect("copy a guest");
    let run = common::host(&["run", &name]);
    let typo = common::host(&["run", &name[..name.len() - 1]]);
    let list = common::host(&["list"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "Hello, world!\n");
    assert_eq!(run.status.code(), Some(0));
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(err.contains(&format!("did you mean '{name}'?")), "{err}");
    // its source file is not in guest-kernel/src/bin/: `host list` says so
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let line = list
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} listed: {list}"));
    assert!(
        line.ends_with(&format!(
            "  (stale: guest-kernel/src/bin/{name}.rs is gone; `cargo clean` removes it)"
        )),
        "{line}"
    );
    assert!(
        !list
            .lines()
            .any(|l| l.starts_with("hello ") && l.contains("stale")),
        "{list}"
    );
}

/// libtest's output options: --format terse (and -q), --show-output,
/// --nocapture, --test-threads; what is not supported is refused in one
/// line, never ignored.
#[test]
fn libtest_output_options_work_or_are_refused() {
    let elf = test_elf("harness_demo");
    let run = |args: &[&str]| {
        let mut a = vec!["cargo-runner", elf.as_str()];
        a.extend_from_slice(args);
        let o = common::host(&a);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["--format", "terse"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\nrunning 9 tests\n.iiiii.i.\n"), "{out}");
    // each test has a VM of its own; they run one after another
    let (code, out, _) = run(&["-q", "--test-threads=4"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\nrunning 9 tests\n.iiiii.i.\n"), "{out}");
    let (code, out, _) = run(&["--show-output", "passes"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("\nsuccesses:\n\n---- tests::passes stdout ----\nthis one passes\n\nsuccesses:\n    tests::passes\n"),
        "{out}"
    );
    let (code, out, _) = run(&["--nocapture", "passes"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("this one passes\ntest tests::passes ... ok\n"),
        "{out}"
    );
    assert!(!out.contains("successes:"), "{out}");
    let (code, _, err) = run(&["--format", "json"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--format json is not supported (pretty and terse are)"),
        "{err}"
    );
    let (code, _, err) = run(&["--test-threads", "0"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--test-threads wants a number of at least 1, not 0"),
        "{err}"
    );
}
