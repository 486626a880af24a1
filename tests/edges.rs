//! Every user-facing edge keeps its promise, through the `host` binary:
//! closed and full output streams, panics, odd files, usage errors and
//! flat images each end with one line and a documented exit code, never a
//! panic, a jail trip, an abort or a hang.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a stream of the child goes.
#[derive(Clone, Copy, Debug)]
enum Sink {
    /// A pipe we read.
    Read,
    /// /dev/full: every write fails with ENOSPC.
    Full,
    /// A pipe whose read end is closed: every write fails with EPIPE.
    Closed,
}

fn stdio(s: Sink) -> Stdio {
    match s {
        Sink::Read => Stdio::piped(),
        Sink::Full => Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full"),
        ),
        Sink::Closed => {
            let mut fds = [0; 2];
            // SAFETY: pipe writes two new fds into `fds`.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            // SAFETY: both fds are ours and open; the read end is closed
            // at once, the write end handed to the child.
            unsafe {
                libc::close(fds[0]);
                Stdio::from(OwnedFd::from_raw_fd(fds[1]))
            }
        }
    }
}

/// Runs `host args` with both streams read and asserts that it exits with
/// `code` and that stderr contains `says`; returns stderr for more checks.
fn fails(args: &[&str], code: i32, says: &str) -> String {
    let (got, _, err) = run(args, Sink::Read, Sink::Read, &[]);
    assert_eq!(got, code, "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    err
}

/// Runs `host args` with its streams sent to `out` and `err`; returns the
/// exit code and what it wrote where it could be read. A child that is
/// still running after 60 s is killed and the test fails.
fn run(args: &[&str], out: Sink, err: Sink, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_host"));
    c.args(args).stdout(stdio(out)).stderr(stdio(err));
    c.stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn host");
    let start = Instant::now();
    let (mut so, mut se) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        use std::io::Read as _;
        let mut s = String::new();
        if let Some(o) = &mut so {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let mut e = String::new();
    if let Some(x) = &mut se {
        use std::io::Read as _;
        let _ = x.read_to_string(&mut e);
    }
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let o = reader.join().unwrap_or_default();
            return (st.code().unwrap_or(-1), o, e);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("host {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A bench that takes a fraction of a second.
const BENCH_QUICK: &[&str] = &[
    "bench",
    "--exits",
    "100",
    "--vm-iters",
    "1",
    "--process-iters",
    "0",
    "--preempt-quanta",
    "0",
    "--simvirtio-runs",
    "0",
    "--matrix-vms",
    "0",
    "--irq-injections",
    "50",
];

/// Codes that mean a panic, a jail trip or an abort: never for bad output.
const BUGS: [i32; 5] = [31, 70, 101, 134, 139];

#[test]
fn every_command_survives_a_full_or_closed_stdout() {
    let commands: &[&[&str]] = &[
        &["run", "hello"],
        &["run", "hello", "--json"],
        &["run", "hello", "--trace-kvm"],
        &["run", "smp", "--vcpus", "2"],
        &["layout", "hello"],
        &["layout", "hello", "--json"],
        &["abi"],
        &["abi", "--markdown"],
        &["list"],
        &["matrix", "--quanta", "20", "--quantum", "10ms"],
        &["matrix", "--quanta", "4", "--quantum", "10ms", "--json"],
        BENCH_QUICK,
    ];
    for args in commands {
        for (sink, why) in [
            (Sink::Full, "No space left on device"),
            (Sink::Closed, "Broken pipe"),
        ] {
            let (code, _, err) = run(args, sink, Sink::Read, &[]);
            assert_eq!(code, 1, "{args:?} with stdout {sink:?}: {err}");
            assert_eq!(
                err.lines()
                    .filter(|l| l.starts_with("host: error: "))
                    .count(),
                1,
                "{args:?} {sink:?}: {err}"
            );
            let last = err.lines().last().unwrap_or("");
            assert!(
                last.starts_with("host: error: cannot write") && last.contains(why),
                "{args:?} {sink:?}: {err}"
            );
        }
    }
}

#[test]
fn every_command_survives_a_full_or_closed_stderr() {
    // (args, exit code when stderr cannot be written): commands that report
    // on stderr fail with 1; the others never write there.
    let bench: &[&str] = BENCH_QUICK;
    let commands: &[(&[&str], i32)] = &[
        (&["run", "hello"], 1),
        (&["run", "hello", "--json"], 0),
        (&["run", "smp", "--vcpus", "2"], 1),
        (&["layout", "hello", "--json"], 0),
        (&["abi", "--markdown"], 0),
        (&["list"], 0),
        (bench, 0),
        (&["run", "hello", "--trace-kvm"], 1),
        (&["run", "badptr"], 1),
        (&["run", "nope"], 1),
        (&["run", "hello", "--mem", "100"], 2),
        (&["layout", "hello"], 0),
        (&["abi"], 0),
        (&["matrix", "--quanta", "4", "--quantum", "10ms"], 1),
    ];
    for (args, want) in commands {
        for sink in [Sink::Full, Sink::Closed] {
            let (code, _, _) = run(args, Sink::Read, sink, &[]);
            assert!(
                !BUGS.contains(&code),
                "{args:?} with stderr {sink:?}: {code}"
            );
            assert_eq!(code, *want, "{args:?} with stderr {sink:?}");
        }
    }
    // both closed at once (`2>&1 | head -1` after head exits)
    let (code, _, _) = run(
        &["run", "hello", "--trace-kvm"],
        Sink::Closed,
        Sink::Closed,
        &[],
    );
    assert_eq!(code, 1);
}

#[test]
fn a_panic_on_a_vcpu_thread_is_reported_as_a_panic() {
    if !cfg!(debug_assertions) {
        return; // the injection point exists in debug builds only
    }
    for args in [&["run", "hello"][..], &["run", "smp", "--vcpus", "2"]] {
        let (code, _, err) = run(
            args,
            Sink::Read,
            Sink::Read,
            &[("KVMWB_TEST_PANIC", "vcpu")],
        );
        assert_eq!(code, 70, "{args:?}: {err}");
        let line = err.lines().last().unwrap_or("");
        assert!(
            line.starts_with("host: internal error: injected by KVMWB_TEST_PANIC=vcpu at host/src/vcpu/thread.rs:"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("seccomp"), "{err}");
    }
}

#[test]
fn odd_files_are_refused_before_they_are_read() {
    let dir = common::temp_dir();
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let f = fifo.to_str().unwrap();
    for args in [
        &["run", f][..],
        &["layout", f],
        &["run", f, "--flat", "0x100000", "--timeout", "1s"],
        &["matrix", "--vm", f, "--quanta", "1"],
    ] {
        fails(args, 1, "is a FIFO, not a regular file");
    }
    for (dev, kind) in [
        ("/dev/zero", "a device"),
        ("/dev/urandom", "a device"),
        ("/", "a folder"),
    ] {
        fails(&["run", dev], 1, &format!("{dev} is {kind}"));
    }
    // a 2 GiB sparse file: refused from its first bytes, or from its size
    let big = dir.join("big");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(2 << 30))
        .expect("sparse file");
    let b = big.to_str().unwrap();
    fails(&["run", b], 1, "is not an ELF file");
    fails(
        &["run", b, "--flat", "0x100000"],
        1,
        "is 2 GiB, more than the 2 MiB it could be loaded into",
    );
}

#[test]
fn usage_errors_exit_2_and_say_what_would_be_right() {
    for (args, says) in [
        (
            &["run", "hello", "--mem", "100"][..],
            "it must be a multiple of 4 KiB",
        ),
        (&["run", "hello", "--mem", "1.5M"], "is not a size"),
        (
            &["run", "smp", "--vcpus", "0"],
            "a VM has 1 to 7 vCPUs, not 0",
        ),
        (&["run", "hello", "--pin", "0,1"], "give one CPU per vCPU"),
        (
            &["run", "hello", "--polling", "--poll-interval", "0s"],
            "must be longer than zero",
        ),
        (
            &["run", "hello", "--timeout", "0s"],
            "must be longer than zero",
        ),
        (&["matrix", "--quantum", "0s"], "must be longer than zero"),
        (&["matrix", "--weights", "1:2:3"], "3 weights for 2 VMs"),
        (&["runn"], "a similar subcommand exists: 'run'"),
        (
            &["run", "--flat", "0x100000"],
            "--flat loads a raw binary: name the file",
        ),
    ] {
        fails(args, 2, says);
    }
    fails(
        &["run", "helo"],
        1,
        "unknown guest 'helo': did you mean 'hello'?",
    );
}

#[test]
fn bench_with_no_exits_measures_none() {
    let (code, out, err) = run(
        &[
            "bench",
            "--exits",
            "0",
            "--vm-iters",
            "1",
            "--process-iters",
            "0",
            "--preempt-quanta",
            "0",
            "--simvirtio-runs",
            "0",
            "--matrix-vms",
            "3",
        ],
        Sink::Read,
        Sink::Read,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("long_pio_exit_ns"), "{out}");
    assert!(out.contains("vm_create_us "), "{out}");
    // three VMs in one matrix: their set-up time and memory per VM
    assert!(out.contains("matrix_vm_setup_us "), "{out}");
    assert!(out.contains("matrix_rss_kib_per_vm "), "{out}");
}

#[test]
fn a_raw_binary_without_flat_gets_a_hint() {
    let p = common::temp_file("raw.bin", &[0xf4]);
    let err = fails(&["run", p.to_str().unwrap()], 1, "is not an ELF file");
    assert!(err.contains("--flat ADDR"), "{err}");
    let (code, _, err) = run(
        &["run", p.to_str().unwrap(), "--flat", "0x100000"],
        Sink::Read,
        Sink::Read,
        &[],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn layout_and_the_trace_state_what_is_true() {
    let (code, out, err) = run(
        &["layout", "hello", "--translate", "0x100000"],
        Sink::Read,
        Sink::Read,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // the first 2 MiB in 4 KiB pages, the page below the stack (its guard)
    // left out; the rest of memory in 2 MiB pages
    assert!(
        out.contains("page tables: 4-level paging, 48-bit GVAs: 1 PML4, 1 PDPT, 2 PD, 1 PT (5 table pages), mapping 4 KiB and 2 MiB pages"),
        "{out}"
    );
    assert!(
        out.contains("splits into PML4 0 | PDPT 0 | PD 0 | PT 256 | offset 0x0 (a 4 KiB page)"),
        "{out}"
    );
    assert!(out.contains("PT[0..=111] at GPA 0xb000"), "{out}");
    assert!(out.contains("PT[113..=511] at GPA 0xb388"), "{out}");
    assert!(
        out.contains("its guard page 0x70000..0x71000 is not mapped"),
        "{out}"
    );
    // a walk that fails shows only the levels it reached
    let (_, out, _) = run(
        &["layout", "hello", "--translate", "0x40000000"],
        Sink::Read,
        Sink::Read,
        &[],
    );
    assert!(
        out.contains("splits into PML4 0 | PDPT 1 | (the walk stops there)"),
        "{out}"
    );
    // JSON uses the text's notation for addresses
    let (_, out, _) = run(&["layout", "hello", "--json"], Sink::Read, Sink::Read, &[]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["regs"]["rip"], "0x100000");
    assert_eq!(v["sregs"]["cr3"], "0x3000");
    // the trace says where an I/O exit's data is in kvm_run
    let (_, _, err) = run(
        &["run", "hello_str", "--trace-kvm"],
        Sink::Read,
        Sink::Read,
        &[],
    );
    let io = err
        .lines()
        .find(|l| l.contains("KVM_EXIT_IO out port 0x503"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        io.contains(" at kvm_run + 0x") && io.ends_with("(data_offset)"),
        "{io}"
    );
}

#[test]
fn the_matrix_through_the_cli_alternates_warns_and_draws() {
    let (code, out, err) = run(
        &["matrix", "--policy", "on-exit", "--quanta", "4"],
        Sink::Read,
        Sink::Read,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let fds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_suffix(" started running"))
        .collect();
    assert_eq!(fds.len(), 4, "{out}");
    assert!(
        fds[0] != fds[1] && fds[0] == fds[2] && fds[1] == fds[3],
        "{out}"
    );
    assert!(err.contains("weights 1:1"), "{err}");
    let svg = common::temp_dir().join("cli-timeline.svg");
    let s = svg.to_str().unwrap();
    let (code, _, err) = run(
        &[
            "matrix",
            "--quanta",
            "5",
            "--quantum",
            "10ms",
            "--quiet",
            "--timeline",
            s,
        ],
        Sink::Read,
        Sink::Read,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("host: note: 5 turns were handed out, fewer than one weight cycle (10 turns)"),
        "{err}"
    );
    assert!(err.contains("  70.0% "), "{err}");
    let text = std::fs::read_to_string(&svg).expect("timeline");
    assert!(text.contains("(5 turns, "), "{text}");
    assert!(text.contains(">0 ms</text>"), "{text}");
}

/// Tests leave nothing behind: a test process's temp folder is gone when
/// it exits (this runs one test of this binary as a child and looks).
#[test]
fn a_test_process_removes_its_temp_folder() {
    if std::env::var_os("KVMWB_CHILD_TEST").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("this test binary");
    let mut child = Command::new(exe)
        .args([
            "a_raw_binary_without_flat_gets_a_hint",
            "--exact",
            "--quiet",
        ])
        .env("KVMWB_CHILD_TEST", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child test");
    let dir = std::env::temp_dir().join(format!("kvmwb-test-{}", child.id()));
    assert!(child.wait().expect("wait").success());
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

#[test]
fn host_side_failures_say_what_failed() {
    // a trace file that cannot be written is named as that
    fails(
        &["run", "hello", "--trace-kvm", "--trace-file", "/dev/full"],
        1,
        "host: error: cannot write the KVM trace to /dev/full: No space left on device",
    );
    // the --mem suggestion never exceeds the largest guest memory
    let p = common::temp_file("high.bin", &[0xf4]);
    let err = fails(
        &["run", p.to_str().unwrap(), "--flat", "0xd0000000"],
        1,
        "no guest memory fits it: the largest is 3 GiB",
    );
    assert!(!err.contains("try --mem"), "{err}");
    // a vCPU thread that cannot start is named as that: a stack no mmap can
    // give (RUST_MIN_STACK sizes the vCPU threads; the signal thread has a
    // fixed small stack) makes the spawn fail with EAGAIN, even as root,
    // where RLIMIT_NPROC would not
    let (code, out, err) = run(
        &["run", "smp", "--vcpus", "2"],
        Sink::Read,
        Sink::Read,
        &[("RUST_MIN_STACK", "1099511627776000")],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim_end(),
        "host: error: cannot start a vCPU thread: Resource temporarily unavailable (os error 11)",
        "{out}"
    );
    // timer periods the host cannot serve are refused, naming the minimum
    for args in [
        &["run", "simvirtio", "--polling", "--poll-interval", "1us"][..],
        &["matrix", "--quantum", "2us"],
    ] {
        fails(args, 2, "shorter than the 100µs this host can serve");
    }
}
