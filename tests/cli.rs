//! The `host` binary: exit codes and one-line errors, no panics.

mod common;

use common::host;

use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One line on stderr, starting with "host: error: ", containing `want`,
/// and exit code 1 (a host error).
fn one_line_error(o: &Output, want: &str) {
    one_line_error_code(o, want, 1)
}

/// The same with exit code `code` (2: a usage error).
fn one_line_error_code(o: &Output, want: &str, code: i32) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("host: error: "), "{err}");
    assert!(err.contains(want), "want {want:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn run_hello_by_default() {
    let o = host(&["run"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), "Hello, world!\n");
    let err = text(&o.stderr);
    assert!(
        err.starts_with("host: hello halted after 15 exits in "),
        "{err}"
    );
    assert!(
        err.contains("host: check 42: pass (memory[0x400] = 42, RAX = 42)\n"),
        "{err}"
    );
    assert!(err.contains("    out port 0x00e9 print8bit"), "{err}");
}

#[test]
fn no_command_runs_hello() {
    let o = host(&[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), "Hello, world!\n");
}

#[test]
fn abi_prints_this_hosts_contract() {
    let out = text(&host(&["abi"]).stdout);
    let first = format!(
        "hypercall ABI v{}: {} hypercalls, fingerprint {:#018x} (base {:#018x})",
        hypercall_abi::ABI_VERSION,
        hypercall_abi::Hypercall::COUNT,
        hypercall_abi::FINGERPRINT,
        hypercall_abi::BASE_FINGERPRINT
    );
    assert_eq!(out.lines().next(), Some(first.as_str()));
    for hc in hypercall_abi::Hypercall::ALL {
        let row = format!("{:<3} {:<18} {:#06x}", hc.nr(), hc.name(), hc.port());
        assert!(out.contains(&row), "{row} in {out}");
    }
}

/// docs/abi.md's tables are generated from hypercall-abi (`make abi-doc`);
/// this fails with one clear line when someone changes the ABI and not the
/// document, or edits a generated table by hand.
#[test]
fn the_abi_doc_is_generated_from_the_crate() {
    let doc = include_str!("../docs/abi.md");
    if let Err(e) = host::abi::check_doc(doc) {
        panic!("{e}");
    }
    let o = host(&["abi", "--check-doc", "../docs/abi.md"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stale = common::temp_file("abi.md", doc.replace("0x0503", "0x0504").as_bytes());
    let o = host(&["abi", "--check-doc", stale.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "host: error: docs/abi.md is stale: run `make abi-doc`\n"
    );
}

/// The assembly guest in docs/abi.md, assembled and run: the document
/// is precise enough to write a guest from, and stays true.
#[test]
fn the_assembly_guest_in_the_abi_doc_runs() {
    let have = |t: &str| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("as") || !have("ld") {
        use std::io::Write as _;
        // straight to the stderr handle: libtest captures eprintln! of passing tests
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: GNU as/ld (binutils) not installed"
        );
        return;
    }
    let doc = include_str!("../docs/abi.md");
    let start = doc.find("```asm\n").expect("asm block") + 7;
    let len = doc[start..].find("```").expect("end of asm block");
    let src = common::temp_file("guest.s", &doc.as_bytes()[start..start + len]);
    let (obj, elf) = (src.with_extension("o"), src.with_extension("elf"));
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    assert!(ok(Command::new("as").arg(&src).arg("-o").arg(&obj)));
    assert!(ok(Command::new("ld")
        .args([
            "-nostdlib",
            "-static",
            "-Ttext-segment=0x100000",
            "-z",
            "max-page-size=4096",
            "-e",
            "_start"
        ])
        .arg(&obj)
        .arg("-o")
        .arg(&elf)));
    let o = host(&["run", elf.to_str().unwrap()]);
    assert_eq!(
        text(&o.stdout),
        "Hello from assembly!\nand from print_str\n"
    );
    assert!(
        text(&o.stderr).contains("check 42: pass"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn run_json() {
    let o = host(&["run", "hypercalls", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert!(v["output"].as_str().unwrap().contains("difference 2"));
    assert_eq!(v["exits"]["total"], 30);
    assert_eq!(v["exit_code"], 0);
}

#[test]
fn list_shows_the_built_guests() {
    let o = host(&["list"]);
    let out = text(&o.stdout);
    for g in ["hello", "hypercalls", "badptr"] {
        assert!(out.lines().any(|l| l.starts_with(g)), "{out}");
    }
}

#[test]
fn errors_are_one_line_and_exit_1() {
    one_line_error(
        &host(&["run", "--kvm-device", "/nonexistent/kvm"]),
        "cannot open /nonexistent/kvm: no such device",
    );
    one_line_error(
        &host(&["run", "/nonexistent/guest.elf"]),
        "cannot read /nonexistent/guest.elf",
    );
    one_line_error(
        &host(&["run", "no-such-guest"]),
        "unknown guest 'no-such-guest'",
    );
    one_line_error(&host(&["run", "hello", "--mem", "1M"]), "too little memory");
    one_line_error_code(&host(&["run", "hello", "--mem", "64G"]), "is not usable", 2);
    let junk = common::temp_file("junk", b"junk");
    one_line_error(
        &host(&["run", junk.to_str().unwrap()]),
        "is not an ELF file (it does not start with 0x7f 'E' 'L' 'F'): for a raw binary, give the address it is linked to run at with --flat ADDR",
    );
}

#[test]
fn a_kvm_device_without_permission_is_explained() {
    // a file we may open but that is not KVM: the ioctl fails cleanly
    let f = common::temp_file("notkvm", b"");
    let o = host(&["run", "--kvm-device", f.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("host: error: "), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let o = host(&["run", "--mem", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("'lots' is not a size"));
    assert_eq!(host(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_crashing_guest_exits_3() {
    let p = common::temp_file("ud2", &[0x0f, 0x0b]);
    let o = host(&["run", p.to_str().unwrap(), "--flat", "0x100000"]);
    assert_eq!(o.status.code(), Some(3));
    // the host's IDT reports it before it becomes a triple fault
    assert!(text(&o.stderr).contains("#UD invalid opcode (exception 6)"));
}

#[test]
fn a_failed_check_exits_4() {
    let p = common::temp_file("hlt", &[0xf4]);
    let o = host(&[
        "run",
        p.to_str().unwrap(),
        "--flat",
        "0x100000",
        "--check-42",
    ]);
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o.stderr).contains("check 42: FAIL (memory[0x400] = 0, RAX = 0)"));
    assert!(text(&o.stderr).contains(
        "host: the 42 check wants 42 in the 32-bit word at GPA 0x400 and in RAX when the guest halts (guest_rt::pass_check_42() does both; docs/abi.md section 5)"
    ));
}

/// Ctrl-C (SIGINT) and SIGTERM stop a guest that never exits, cleanly: the
/// summary is printed and the exit code is 130.
#[test]
fn sigint_and_sigterm_stop_a_spinning_guest_with_a_summary() {
    let spin = common::temp_file("spin", &[0xeb, 0xfe]);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let child = Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["run", spin.to_str().unwrap(), "--flat", "0x80000"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
        let o = child.wait_with_output().expect("wait");
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(130), "signal {sig}: {err}");
        assert!(
            err.contains("stopped: interrupted (SIGINT/SIGTERM) at RIP 0x80000"),
            "{err}"
        );
        assert!(err.contains("exits: "), "{err}");
    }
}

#[test]
fn timeout_exits_5() {
    let spin = common::temp_file("spin", &[0xeb, 0xfe]);
    let o = host(&[
        "run",
        spin.to_str().unwrap(),
        "--flat",
        "0x80000",
        "--timeout",
        "100ms",
    ]);
    assert_eq!(o.status.code(), Some(5));
    assert!(text(&o.stderr).starts_with("host: "));
    let o = host(&["run", "--timeout", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("'soon' is not a duration"));
}

/// Every other CLI test runs under the seccomp filter (the default); this one
/// checks the switch that turns it off.
#[test]
fn no_seccomp_runs_the_same() {
    let o = host(&["run", "hypercalls", "--no-seccomp"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("difference 2"));
}

/// host_cpuid: a CPU this host has; pinned, the pinned CPU on every call.
#[test]
fn host_cpuid_reports_the_cpu_and_follows_pin() {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let values = |o: &Output| -> Vec<usize> {
        let out = text(&o.stdout);
        let line = out.strip_prefix("host_cpuid:").expect("the guest's line");
        line.split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let o = host(&["run", "cpuid"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v = values(&o);
    assert_eq!(v.len(), 8);
    assert!(v.iter().all(|&c| c < ncpu), "{v:?} on {ncpu} CPUs");
    for cpu in 0..ncpu.min(4) {
        let o = host(&["run", "cpuid", "--pin", &cpu.to_string()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert_eq!(values(&o), vec![cpu; 8]);
    }
    one_line_error(
        &host(&["run", "cpuid", "--pin", "4096"]),
        "cannot pin the vCPU thread to CPU 4096",
    );
    one_line_error_code(
        &host(&["run", "cpuid", "--pin", "0,1"]),
        "--pin names 2 CPUs, but the VM has 1 vCPU",
        2,
    );
}

/// `host run GUEST -- ARGS`: the guest reads them as `&[&str]`
/// (guest_rt::args); too many bytes, or bytes that are not UTF-8, are
/// refused before the VM starts.
#[test]
fn guest_arguments_reach_the_guest() {
    let o = host(&["run", "primes", "--", "100", "7"]);
    assert_eq!(
        text(&o.stdout),
        "2 3 5 7 11 13 17\n19 23 29 31 37 41 43\n47 53 59 61 67 71 73\n79 83 89 97\n25 primes below 100\n"
    );
    assert_eq!(o.status.code(), Some(0));
    // none: the program's defaults; a bad one: the program says so
    let o = host(&["run", "primes"]);
    assert!(
        text(&o.stdout).ends_with("\n15 primes below 50\n"),
        "{}",
        text(&o.stdout)
    );
    let o = host(&["run", "primes", "--", "ab c"]);
    assert_eq!(
        text(&o.stdout),
        "primes: LIMIT must be a positive number, not \"ab c\" (usage: primes [LIMIT [PER_LINE]])\n"
    );
    // the area's 3 KiB: 8 + 16 + 3047 + 1 bytes fit, one more does not
    let fits = "x".repeat(3047);
    let o = host(&["run", "primes", "--", &fits]);
    assert!(
        text(&o.stdout).contains("not \"xxxx"),
        "{}",
        text(&o.stderr)
    );
    let over = "x".repeat(3048);
    one_line_error_code(
        &host(&["run", "primes", "--", &over]),
        "the guest's 1 argument takes 3073 bytes in guest memory, more than the 3072 the ABI has room for (docs/abi.md, \"Arguments\")",
        2,
    );
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["run", "primes", "--"])
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .expect("spawn host");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("invalid UTF-8"),
        "{}",
        text(&o.stderr)
    );
}
