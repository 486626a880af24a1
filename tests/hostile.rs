//! The hostile-guest suite: every case has ONE expected verdict, checked
//! through the `host` binary as a user would see it: the exit code, the one
//! line that says what happened (with the exit reason and RIP where the
//! guest died), no panic. README "Hostile guests" has the same table.
//! Library-level checks of the same cases (exact output, registers, which
//! port was reported) are in tests/guests.rs.

mod common;

use common::host;

/// A flat image in a temp file.
fn flat(tag: &str, code: &[u8]) -> String {
    common::temp_file(tag, code).to_str().unwrap().to_string()
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    code: i32,
    /// Each must appear in stderr.
    lines: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let long =
        |tag: &str, code: &[u8], extra: &[&str]| common::flat_run(false, flat(tag, code), extra);
    let real =
        |tag: &str, code: &[u8], extra: &[&str]| common::flat_run(true, flat(tag, code), extra);
    vec![
        Case {
            name: "an exception with no handler (ud2; the host's IDT reports it)",
            args: long("ud2", &[0x0f, 0x0b], &[]),
            code: 3,
            lines: &["stopped: #UD invalid opcode (exception 6) at RIP 0x100000"],
        },
        Case {
            name: "jump to unmapped memory",
            // mov rax, 0x40_0000_0000; jmp rax
            args: long(
                "jmp",
                &[0x48, 0xb8, 0, 0, 0, 0, 0x40, 0, 0, 0, 0xff, 0xe0],
                &[],
            ),
            code: 3,
            lines: &[
                "stopped: #PF page fault (exception 14, error code 0x",
                "address 0x4000000000 in CR2) at RIP 0x4000000000",
            ],
        },
        Case {
            name: "write to guest-physical space with nothing behind it",
            // real mode, 1 MiB: mov $0xffff, %ax; mov %ax, %ds; movb $1, 0x10 (GPA 0x100000); hlt
            args: real(
                "mmio",
                &[
                    0xb8, 0xff, 0xff, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0x01, 0xf4,
                ],
                &["--mem", "1M"],
            ),
            code: 0,
            lines: &[
                "host: guest wrote GPA 0x100000, which has no memory or device: ignored",
                "halted after 2 exits",
            ],
        },
        Case {
            name: "read from guest-physical space with nothing behind it",
            // mov $0xffff, %ax; mov %ax, %ds; mov 0x10, %al; hlt
            args: real(
                "mmio-rd",
                &[0xb8, 0xff, 0xff, 0x8e, 0xd8, 0xa0, 0x10, 0x00, 0xf4],
                &["--mem", "1M"],
            ),
            code: 0,
            lines: &[
                "host: guest read GPA 0x100000, which has no memory or device: it reads as all ones",
            ],
        },
        Case {
            name: "hypercalls with pointers outside memory, straddling its end, unterminated",
            args: s(&["run", "badptr"]),
            code: 0,
            lines: &[
                "host: guest error: print_str: string at 0xffff0000 is outside guest memory",
                "host: guest error: print_str: string at 0x1ffffd runs past the end of guest memory without a NUL",
                "has no NUL within 4096 bytes",
                "host: guest error: gva_to_hva: argument block at 0xfffffff0 (24 bytes) is outside guest memory",
                "host: badptr halted after 9 exits",
            ],
        },
        Case {
            name: "unknown hypercall port (out) and `in` from an unknown port",
            // mov dx, 0x5ff; out dx, eax; in eax, dx; hlt
            args: long("ports", &[0x66, 0xba, 0xff, 0x05, 0xef, 0xed, 0xf4], &[]),
            code: 0,
            lines: &[
                "host: guest wrote 0x0 to port 0x5ff, which has no device: ignored",
                "host: guest read port 0x5ff, which has no device: it reads as all ones",
            ],
        },
        Case {
            name: "page tables rewritten into a loop and out of memory, then gva_to_hva",
            args: s(&["run", "hostile_pt"]),
            code: 0,
            lines: &["halted after"],
        },
        Case {
            name: "tight loop with no exits",
            args: long("spin", &[0xeb, 0xfe], &["--timeout", "200ms"]),
            code: 5,
            lines: &["stopped: timeout after 0.200 s, guest still running at RIP 0x100000"],
        },
        Case {
            name: "HLT forever (cli; 1: hlt; jmp 1b)",
            args: long("hlt", &[0xfa, 0xf4, 0xeb, 0xfd], &[]),
            code: 0,
            lines: &["halted after 1 exits"],
        },
        Case {
            name: "a flood of exits",
            // 1: out %al, $0x80; jmp 1b
            args: long("flood", &[0xe6, 0x80, 0xeb, 0xfc], &["--timeout", "200ms"]),
            code: 5,
            lines: &[
                "host: guest wrote 0x0 to port 0x80, which has no device: ignored",
                "stopped: timeout after 0.200 s",
            ],
        },
        Case {
            name: "under matrix: a VM that crashes, next to one that runs",
            args: {
                let mut a = s(&[
                    "matrix",
                    "--quiet",
                    "--quantum",
                    "3ms",
                    "--quanta",
                    "6",
                    "--vm",
                ]);
                a.push(flat("crash", common::CRASH16));
                a.extend(s(&["--vm", "guest2_silent"]));
                a
            },
            code: 3,
            lines: &["crashed: ", " at RIP 0xa00e", "guest2_silent"],
        },
        Case {
            name: "one vCPU of three crashes, the others spin",
            args: s(&["run", "smp_crash", "--vcpus", "3", "--timeout", "20s"]),
            code: 3,
            lines: &[
                "smp_crash (vcpu 2) stopped: #UD invalid opcode (exception 6)",
                "vcpu 0: stopped by another vCPU",
                "vcpu 1: stopped by another vCPU",
            ],
        },
        Case {
            name: "user program does port I/O, hlt, writes kernel pages",
            args: s(&["run", "user_faults"]),
            code: 0,
            lines: &["user_faults halted after"],
        },
        Case {
            name: "SIMVIRTIO driver breaks the protocol",
            args: s(&["run", "simvirtio_bad"]),
            code: 0,
            lines: &[
                "simvirtio: device error: TX queue indices are corrupt: head 9999 tail 0",
                "6 device errors",
            ],
        },
        // interrupts (irq_hostile; docs/security.md, docs/interrupts.md)
        Case {
            name: "an interrupt storm: the LAPIC timer at count 1",
            args: s(&["run", "irq_hostile", "--timeout", "1s", "--", "storm"]),
            code: 5,
            lines: &["stopped: timeout after 1.000 s, guest still running"],
        },
        Case {
            name: "an interrupt storm: self-IPIs from the handler",
            args: s(&["run", "irq_hostile", "--timeout", "1s", "--", "self_ipi"]),
            code: 5,
            lines: &["stopped: timeout after 1.000 s, guest still running"],
        },
        Case {
            name: "a handler that never sends its end of interrupt",
            args: s(&["run", "irq_hostile", "--timeout", "500ms", "--", "no_eoi"]),
            code: 5,
            lines: &["stopped: timeout after 0.500 s, guest still running"],
        },
        Case {
            name: "a handler that faults",
            args: s(&["run", "irq_hostile", "--timeout", "20s", "--", "fault"]),
            code: 3,
            lines: &[
                "stopped: #PF page fault (exception 14, error code 0x2: not present, write, kernel, address 0x4000000000 in CR2)",
            ],
        },
        Case {
            name: "an interrupt on a vector with no handler",
            args: s(&["run", "irq_hostile", "--timeout", "20s", "--", "unhandled"]),
            code: 3,
            lines: &[
                "stopped: interrupt vector 0x31 with no handler (guest_rt::interrupts::set_handler installs one)",
            ],
        },
        Case {
            name: "an IDT in unmapped memory, then an interrupt",
            args: s(&["run", "irq_hostile", "--timeout", "20s", "--", "bad_idt"]),
            code: 3,
            lines: &["stopped: triple fault (KVM_EXIT_SHUTDOWN, exit reason 8)"],
        },
        Case {
            name: "IPIs to vCPUs that do not exist",
            args: s(&[
                "run",
                "irq_hostile",
                "--timeout",
                "20s",
                "--",
                "ipi_nowhere",
            ]),
            code: 0,
            lines: &["check 42: pass"],
        },
        Case {
            name: "--inject-every faster than the guest takes them (interrupts off)",
            args: s(&[
                "run",
                "irq_hostile",
                "--irqchip",
                "user",
                "--inject-every",
                "100us",
                "--timeout",
                "1s",
                "--",
                "cli_spin",
            ]),
            code: 5,
            lines: &["stopped: timeout after 1.000 s, guest still running"],
        },
        Case {
            name: "a device interrupt on an exception's vector",
            args: s(&[
                "run",
                "irq_hostile",
                "--irqchip",
                "user",
                "--inject-every",
                "1ms:14",
                "--",
                "wait",
            ]),
            code: 2,
            lines: &["--inject-every ...:14: vectors 0-31 are the CPU's exceptions in long mode"],
        },
    ]
}

/// `--ioeventfd`: six vCPUs rewrite the queues while the device thread
/// reads them, and Ctrl-C in the middle of a transfer: the device thread
/// never trips its filter or outlives the run.
#[test]
fn the_ioeventfd_device_thread_survives_scribblers_and_ctrl_c() {
    let (code, err, took) = measured(
        &[
            "run",
            "sv_scribble",
            "--vcpus",
            "7",
            "--ioeventfd",
            "--timeout",
            "5s",
        ],
        None,
    );
    assert!(code == 0 || code == 5, "exit {code}: {err}");
    assert!(
        !err.contains("seccomp") && !err.contains("panicked"),
        "{err}"
    );
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    let m = measured_with(
        &["run", "simvirtio_bulk", "--ioeventfd"],
        Some((std::time::Duration::from_millis(100), libc::SIGINT)),
    );
    assert!(m.code == 130 || m.code == 0, "exit {}: {}", m.code, m.err);
    assert!(!m.err.contains("seccomp"), "{}", m.err);
    assert!(m.took < std::time::Duration::from_secs(5), "{:?}", m.took);
    // a crash ends the device thread too
    let m = measured_with(&["run", "crash", "--ioeventfd"], None);
    assert_eq!(m.code, 3, "{}", m.err);
    assert!(m.took < std::time::Duration::from_secs(10), "{:?}", m.took);
}

/// SIMVIRTIO drivers that misbehave in `--ioeventfd` mode (sv_hostile):
/// a notify storm wakes the device thread without end (bounded by
/// --timeout, memory bounded, no jail trip); a driver that never
/// acknowledges interrupts still gets every line through; a guest that
/// halts right after its last notify loses nothing and duplicates nothing
/// (the device thread's last drain).
#[test]
fn hostile_simvirtio_drivers_in_ioeventfd_mode() {
    let args = [
        "run",
        "sv_hostile",
        "--ioeventfd",
        "--timeout",
        "1s",
        "--",
        "storm",
    ];
    let m = measured_with(&args, None);
    assert_eq!(m.code, 5, "{}", m.err);
    assert!(
        !m.err.contains("seccomp") && !m.err.contains("panicked"),
        "{}",
        m.err
    );
    assert!(m.took < std::time::Duration::from_secs(10), "{:?}", m.took);
    let (rss, code) = own_rss_kib(&args);
    assert_eq!(code, 5);
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");

    let m = measured_with(
        &[
            "run",
            "sv_hostile",
            "--ioeventfd",
            "--timeout",
            "20s",
            "--",
            "noack",
        ],
        None,
    );
    assert_eq!(m.code, 0, "{}", m.err);
    assert_eq!(
        m.out.matches("never acknowledged\n").count(),
        21,
        "{}",
        m.out
    );
    assert!(m.out.contains(" interrupts taken, status 0x"), "{}", m.out);

    for mode in ["--ioeventfd", "--stats"] {
        let m = measured_with(&["run", "sv_hostile", mode, "--", "halt_mid"], None);
        assert_eq!(m.code, 0, "{mode}: {}", m.err);
        assert_eq!(
            m.out
                .matches("the last line, sent just before HLT\n")
                .count(),
            1,
            "{mode}: {}",
            m.out
        );
    }
}

/// Interrupt storms take bounded memory and time, and Ctrl-C ends them at
/// once with the summary. Bounds: runs of 1 s given 10 s (a busy
/// machine); RSS 64 MiB, as the other hostile cases (a run takes ~5 MiB),
/// measured as the host's own VmHWM (`peak_rss_kib`: a child's wait4
/// maxrss also counts this test process's memory, which other tests
/// running beside it grow).
#[test]
fn interrupt_storms_are_bounded_and_ctrl_c_wins() {
    for case in ["storm", "self_ipi"] {
        let (code, err, took) =
            measured(&["run", "irq_hostile", "--timeout", "1s", "--", case], None);
        assert_eq!(code, 5, "{case}: {err}");
        assert!(
            took < std::time::Duration::from_secs(10),
            "{case}: {took:?}"
        );
        let (rss, code) = own_rss_kib(&["run", "irq_hostile", "--timeout", "1s", "--", case]);
        assert_eq!(code, 5, "{case}");
        assert!(rss < 64 * 1024, "{case}: peak RSS {rss} KiB");
        let m = measured_with(
            &["run", "irq_hostile", "--", case],
            Some((std::time::Duration::from_millis(300), libc::SIGINT)),
        );
        assert_eq!(m.code, 130, "{case}: {}", m.err);
        assert!(
            m.err.contains("stopped: interrupted (SIGINT/SIGTERM)"),
            "{case}: {}",
            m.err
        );
        assert!(
            m.took < std::time::Duration::from_secs(5),
            "{case}: {:?}",
            m.took
        );
    }
}

#[test]
fn every_hostile_case_gets_its_verdict() {
    let mut failures = Vec::new();
    for c in cases() {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let o = host(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        let ok = o.status.code() == Some(c.code)
            && !err.contains("panicked")
            && c.lines.iter().all(|l| err.contains(l));
        if !ok {
            failures.push(format!(
                "{}: exit {:?} (want {}), stderr:\n{err}",
                c.name,
                o.status.code(),
                c.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// In the matrix, the VM that crashed is reported and the other ran all
/// the turns that were left.
#[test]
fn a_crashing_vm_does_not_stop_the_matrix() {
    let crash = flat("crash2", common::CRASH16);
    let o = host(&[
        "matrix",
        "--json",
        "--quantum",
        "3ms",
        "--quanta",
        "6",
        "--vm",
        &crash,
        "--vm",
        "guest2_silent",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["vms"][0]["state"], "faulted");
    assert_eq!(v["vms"][0]["quanta"], 1);
    assert_eq!(v["vms"][1]["state"], "running");
    assert_eq!(v["vms"][1]["quanta"], 5);
    assert!(v["vms"][1]["counter"].as_u64().unwrap() > 0);
}

/// How a measured host ended.
struct Measured {
    code: i32,
    out: String,
    err: String,
    took: std::time::Duration,
}

// The child is reaped by libc::waitpid after its pipes are read, not by
// Child::wait.
#[allow(clippy::zombie_processes)]
/// Runs `host args` with the seccomp filter on (the default) and measures
/// it. `signal`: send this signal after that long; `took` then counts from
/// the signal.
fn measured_with(args: &[&str], signal: Option<(std::time::Duration, libc::c_int)>) -> Measured {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    let mut t0 = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn host");
    let mut o = child.stdout.take().expect("stdout");
    // keep the first 4 MiB of stdout: a guest that prints forever must
    // not grow this process (a child's maxrss counts it: see below)
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = o.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = (4usize << 20).saturating_sub(s.len());
            s.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&s).into_owned()
    });
    if let Some((d, sig)) = signal {
        std::thread::sleep(d);
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        t0 = std::time::Instant::now();
    }
    let mut err = String::new();
    if let Some(e) = &mut child.stderr {
        let _ = e.read_to_string(&mut err);
    }
    let mut status = 0;
    // SAFETY: waits for our own child and writes `status`.
    let pid = unsafe { libc::waitpid(child.id() as libc::pid_t, &mut status, 0) };
    assert!(pid > 0, "wait4");
    let took = t0.elapsed();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Measured {
        code,
        out: out.join().expect("stdout reader"),
        err,
        took,
    }
}

/// [`measured_with`] SIGTERM: the exit code, stderr and wall time (peak
/// memory: [`own_rss_kib`]).
fn measured(
    args: &[&str],
    signal_after: Option<std::time::Duration>,
) -> (i32, String, std::time::Duration) {
    let m = measured_with(args, signal_after.map(|d| (d, libc::SIGTERM)));
    (m.code, m.err, m.took)
}

/// The host's own peak resident set for `host args` (a run of its own,
/// under ptrace: `host::bench::peak_rss_kib`), and its exit code. A
/// child's wait4 maxrss is not used for bounds: after vfork/exec it also
/// counts this test process's high-water mark, which other tests running
/// beside it grow.
fn own_rss_kib(args: &[&str]) -> (u64, i32) {
    let host = std::path::Path::new(env!("CARGO_BIN_EXE_host"));
    let os: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    host::bench::peak_rss_kib(host, &os).expect("measure the host")
}

/// The hand-written test program of guest-kernel (tests_hostile,
/// tests_spin_list): `host cargo-runner` runs it as `cargo test` would.
fn test_program(name: &str) -> String {
    host::guests::resolve(name)
        .expect("guest is built")
        .to_str()
        .expect("a UTF-8 path")
        .to_string()
}

/// Ctrl-C ends the test harness at once, with libtest's summary of what
/// ran and exit 130; no test starts after it. tests_hostile's 200 passing
/// tests take ~0.1-0.4 s each here (ring 0 is emulated), so without the fix
/// the harness would go on for a minute. Bound: 10 s from the signal, for
/// a busy machine (here it takes milliseconds).
#[test]
fn ctrl_c_ends_the_test_harness_at_once_with_its_summary() {
    let elf = test_program("tests_hostile");
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let m = measured_with(
            &["cargo-runner", &elf, "pass_"],
            Some((std::time::Duration::from_millis(1500), sig)),
        );
        assert_eq!(m.code, 130, "{}{}", m.out, m.err);
        assert!(m.took < std::time::Duration::from_secs(10), "{:?}", m.took);
        let ran = m.out.matches(" ... ok\n").count();
        assert!(ran < 200, "{}", m.out);
        assert!(
            m.out.contains(&format!(
                "host: interrupted (SIGINT/SIGTERM) at pass_{ran:03}: {ran} of 200 tests ran"
            )),
            "{}",
            m.out
        );
        assert!(
            m.out.contains(&format!("test result: FAILED. {ran} passed; 0 failed; 0 ignored; 0 measured; 41 filtered out")),
            "{}",
            m.out
        );
    }
}

/// 40 failing tests that print 1 MiB each: the harness keeps the last
/// 64 KiB of each (and 16 MiB in all, whatever the number of tests) and
/// says how much it dropped. Before, it held all 40 MiB to the end. Bound:
/// 32 MiB of RSS at any time (polled), under the 40 MiB the output alone
/// would take by the end (the host's own peak here is ~13 MiB).
#[test]
fn failing_tests_output_is_bounded_and_what_is_dropped_is_said() {
    let elf = test_program("tests_hostile");
    let m = measured_with(&["cargo-runner", &elf, "loud_"], None);
    assert_eq!(m.code, 101, "{}", m.err);
    let rss = host::bench::peak_rss_kib(
        std::path::Path::new(env!("CARGO_BIN_EXE_host")),
        &["cargo-runner".as_ref(), elf.as_ref(), "loud_".as_ref()],
    )
    .expect("measure the host")
    .0;
    assert!(rss > 0 && rss < 32 << 10, "peak RSS {rss} KiB");
    assert_eq!(m.out.matches(" ... FAILED\n").count(), 40);
    // 256 x 4095 bytes printed, the last 64 KiB kept
    let dropped = 256 * 4095 - 65536;
    assert_eq!(
        m.out
            .matches(&format!("host: {dropped} bytes of this test's output dropped: the harness keeps the last 64 KiB of a failing test\n"))
            .count(),
        40,
        "{}",
        &m.out[..m.out.len().min(2000)]
    );
    assert!(m.out.contains("test result: FAILED. 0 passed; 40 failed;"));
}

/// A test program that spins while listing its tests obeys --timeout and
/// is a test failure (101), with the host's lines on lines of their own
/// after the guest's partial output. Bound: 20 s for a 1 s timeout.
#[test]
fn the_listing_run_obeys_the_timeout_and_fails_as_a_test() {
    let m = measured_with(
        &[
            "cargo-runner",
            &test_program("tests_spin_list"),
            "--timeout",
            "1s",
        ],
        None,
    );
    assert_eq!(m.code, 101, "{}{}", m.out, m.err);
    assert!(m.took < std::time::Duration::from_secs(20), "{:?}", m.took);
    assert!(m.out.starts_with("listing\nhost: "), "{}", m.out);
    assert!(
        m.out
            .contains("the test program did not list its tests: stopped: timeout after 1.000 s"),
        "{}",
        m.out
    );
}

/// A test's name is the guest's text: in the host's `test ... ok` line its
/// terminal escapes are shown, not obeyed.
#[test]
fn test_names_are_escaped_in_the_harness_lines() {
    let m = measured_with(
        &["cargo-runner", &test_program("tests_hostile"), "esc_"],
        None,
    );
    assert_eq!(m.code, 0, "{}", m.err);
    assert!(
        m.out.contains(
            "test esc_\\x1b]0;owned\\x07\\x1b[2J\\x0dhost: hello halted after 15 exits ... ok\n"
        ),
        "{}",
        m.out
    );
    assert!(
        !m.out.contains('\x1b') && !m.out.contains('\r'),
        "{:?}",
        m.out
    );
    let m = measured_with(
        &[
            "cargo-runner",
            &test_program("tests_hostile"),
            "--list",
            "esc_",
        ],
        None,
    );
    assert!(
        !m.out.contains('\x1b') && !m.out.contains('\r'),
        "{:?}",
        m.out
    );
}

/// A guest on several vCPUs that writes to thousands of distinct unknown
/// ports and unbacked addresses: with the seccomp filter on, the host counts
/// it all (no jail trip: the allocator's system calls are allowed), reports
/// 16 of each kind per vCPU and then one line, keeps at most 256 rows per
/// kind, and does so in bounded time and memory. Bounds: 30 s is ~100x
/// what it takes here (a busy machine is slower, not 100x), 64 MiB is ~10x
/// the peak RSS measured.
#[test]
fn a_port_and_address_flood_on_several_vcpus_is_bounded_and_never_trips_the_jail() {
    for vcpus in ["1", "2", "7"] {
        let (code, err, took) = measured(&["run", "smp_flood", "--vcpus", vcpus], None);
        assert_eq!(code, 0, "--vcpus {vcpus}: {err}");
        assert!(!err.contains("seccomp"), "{err}");
        let n: usize = vcpus.parse().unwrap();
        assert_eq!(
            err.matches("guest used more than 16 ports with nothing behind them")
                .count(),
            n,
            "{err}"
        );
        assert_eq!(
            err.matches("guest used more than 16 addresses with nothing behind them")
                .count(),
            n,
            "{err}"
        );
        assert!(
            err.matches("which has no device: ignored").count() <= 16 * n,
            "{err}"
        );
        assert!(err.contains(&format!("{} exits", 6000 * n + n)), "{err}");
        assert!(err.contains("other ports ("), "{err}");
        assert!(took < std::time::Duration::from_secs(30), "{took:?}");
        let (rss_kib, code) = own_rss_kib(&["run", "smp_flood", "--vcpus", vcpus]);
        assert_eq!(code, 0);
        assert!(rss_kib < 64 * 1024, "peak RSS {rss_kib} KiB");
    }
}

/// SIGTERM ends a run on several vCPUs with the summary and exit 130, and
/// so does one that arrives right at the start of the process (10 ms after
/// spawning: the CLI handles SIGINT/SIGTERM from its first instructions, so
/// even a slow start has them handled by then).
#[test]
fn sigterm_ends_a_multi_vcpu_run_with_its_summary() {
    for (after, vcpus) in [(300, "2"), (300, "1"), (10, "2")] {
        let d = std::time::Duration::from_millis(after);
        let (code, err, took) = measured(&["run", "smp_spin", "--vcpus", vcpus], Some(d));
        assert_eq!(
            code, 130,
            "SIGTERM after {after} ms, --vcpus {vcpus}: {err}"
        );
        if after >= 300 {
            assert!(
                err.contains("stopped: interrupted (SIGINT/SIGTERM)"),
                "after {after} ms: {err}"
            );
        }
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }
}

/// Guest output is the guest's, byte for byte: bytes that are not UTF-8 go
/// into --json as base64 (named in `output_encoding`), not replaced.
#[test]
fn json_carries_guest_bytes_losslessly() {
    // xor eax, eax; 1: out 0xe9, al; inc al; jnz 1b; hlt: bytes 0..=255
    let p = flat(
        "bytes",
        &[0x31, 0xc0, 0xe6, 0xe9, 0xfe, 0xc0, 0x75, 0xfa, 0xf4],
    );
    let o = host(&["run", "--flat", "0x100000", &p, "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["output_encoding"], "base64");
    let text = v["output"].as_str().expect("output");
    let want: Vec<u8> = (0..=255u8).collect();
    assert_eq!(decode64(text), want);
    // UTF-8 output stays a plain string
    let o = host(&["run", "hello", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        (v["output_encoding"].as_str(), v["output"].as_str()),
        (Some("utf-8"), Some("Hello, world!\n"))
    );
}

fn decode64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    for q in s.as_bytes().chunks(4) {
        let n = q
            .iter()
            .take_while(|&&c| c != b'=')
            .fold(0u32, |n, &c| n << 6 | u32::from(val(c)));
        let k = q.iter().filter(|&&c| c != b'=').count();
        let n = n << (6 * (4 - k));
        out.extend_from_slice(&n.to_be_bytes()[1..k]);
    }
    out
}

/// A guest that prints forever, with --json and on several vCPUs: the host
/// keeps at most 16 MiB of it for --json (says how much it dropped), the
/// vCPU threads' lines wait in a bounded queue, and --timeout ends it on
/// time. Bounds: peak RSS under 128 MiB (the capture, its JSON string and
/// serde's copy: about 65 MiB measured), 10 s for a 2 s timeout.
#[test]
fn a_guest_that_prints_forever_is_bounded_in_memory_and_time() {
    let (code, err, took) = measured(&["run", "chatty", "--json", "--timeout", "2s"], None);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("host: --json keeps the first 16 MiB of guest output: "),
        "{err}"
    );
    let (rss, _) = own_rss_kib(&["run", "chatty", "--json", "--timeout", "2s"]);
    assert!(rss < 128 * 1024, "peak RSS {rss} KiB");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    let (code, err, took) = measured(&["run", "chatty", "--vcpus", "2", "--timeout", "2s"], None);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("stopped: timeout after 2.000 s"), "{err}");
    let (rss, _) = own_rss_kib(&["run", "chatty", "--vcpus", "2", "--timeout", "2s"]);
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

/// A guest printing into a pipe nobody reads: --timeout still ends the run
/// on time with exit 5 and says so, and the host says how much output it
/// dropped (on one vCPU and on two). Bound: 10 s for a 2 s timeout.
#[test]
fn the_watchdog_wins_over_a_full_stdout_pipe() {
    use std::io::Read as _;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    for vcpus in ["1", "2"] {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two new fds into `fds`.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both fds are ours; the read end is kept open, never read.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let t0 = std::time::Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["run", "chatty", "--vcpus", vcpus, "--timeout", "2s"])
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn host");
        let mut err = String::new();
        if let Some(e) = &mut child.stderr {
            let _ = e.read_to_string(&mut err);
        }
        let st = child.wait().expect("wait");
        let took = t0.elapsed();
        drop(read_end);
        assert_eq!(st.code(), Some(5), "--vcpus {vcpus}: {err}");
        assert!(err.contains("stopped: timeout after 2.000 s"), "{err}");
        assert!(err.contains("bytes of guest output were dropped"), "{err}");
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }
}

/// Every built guest, demo or hostile, with the seccomp filter on (the
/// default): none makes the host trip its own filter, panic or abort, on
/// one vCPU or, for the guests that run on several, on 2 and 7. Guests that
/// never halt get a 3 s timeout. Wall time bound: 20 s a run.
#[test]
fn every_guest_runs_under_the_jail_on_one_vcpu_and_several() {
    let list = host(&["list"]);
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    assert!(names.len() > 15, "{names:?}");
    let smp = [
        "ipi",
        "irq_user",
        "smp",
        "smp_crash",
        "smp_flood",
        "smp_spin",
        "chatty",
        "sv_scribble",
    ];
    let mut bad = Vec::new();
    for name in &names {
        let counts: &[&str] = if smp.contains(&name.as_str()) {
            &["1", "2", "7"]
        } else {
            &["1"]
        };
        for n in counts {
            let args = ["run", name.as_str(), "--vcpus", n, "--timeout", "3s"];
            let (code, err, took) = measured(&args, None);
            if [31, 70, 101, 134, 139].contains(&code)
                || err.contains("seccomp")
                || took > std::time::Duration::from_secs(20)
            {
                bad.push(format!("{args:?}: exit {code} after {took:?}: {err}"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n---\n"));
}

#[test]
fn a_simvirtio_driver_with_six_vcpus_scribbling_over_its_queues() {
    let args = ["run", "sv_scribble", "--vcpus", "7", "--timeout", "10s"];
    let (code, err, took) = measured(&args, None);
    assert!([0, 5].contains(&code), "exit {code}: {err}");
    assert!(!err.contains("seccomp"), "{err}");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    let (rss, _) = own_rss_kib(&args);
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
}

/// The `crash` guest with its symbol table replaced by `count` function
/// symbols that all cover RIP and all name one `name_len`-byte string
/// (with terminal escapes in it): a small file whose naive reading copies
/// the name `count` times.
fn crash_with_symbols(count: usize, name_len: usize) -> String {
    let mut elf = common::guest_elf("crash");
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let shoff = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap()) as usize;
    let (shentsize, shnum) = (u16_at(&elf, 0x3a), u16_at(&elf, 0x3c));
    let sh = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum)
        .find(|&i| u32_at(&elf, sh(i) + 4) == 2)
        .expect("a symbol table");
    let strtab = u32_at(&elf, sh(symtab) + 0x28);
    // the string table: "\0", then the name
    let mut strings = vec![0u8];
    let mut name = b"\x1b]0;owned\x07\x1b[2J\r\nhost: forged ".to_vec();
    name.resize(name_len, b'A');
    strings.extend_from_slice(&name);
    strings.push(0);
    // the symbols: a null one, then `count` FUNC symbols over the code
    let mut syms = vec![0u8; 24];
    for _ in 0..count {
        let mut s = [0u8; 24];
        s[0..4].copy_from_slice(&1u32.to_le_bytes()); // st_name
        s[4] = 0x12; // STB_GLOBAL, STT_FUNC
        s[6..8].copy_from_slice(&1u16.to_le_bytes()); // st_shndx
        s[8..16].copy_from_slice(&0x100000u64.to_le_bytes()); // st_value
        s[16..24].copy_from_slice(&0x100000u64.to_le_bytes()); // st_size
        syms.extend_from_slice(&s);
    }
    for (index, bytes) in [(strtab, strings), (symtab, syms)] {
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let at = elf.len() as u64;
        let h = sh(index);
        elf[h + 0x18..h + 0x20].copy_from_slice(&at.to_le_bytes());
        elf[h + 0x20..h + 0x28].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        elf.extend_from_slice(&bytes);
    }
    flat("symbols", &elf)
}

/// A crash report of a guest whose 65,536 function symbols all name one
/// 1 MiB string (a 2.5 MiB file): names are cut (240 bytes) and escaped,
/// so the report takes megabytes, not the 64 GiB of 65,536 copies (which
/// would end in an allocation failure, exit 70), and reading them does not
/// scan the 1 MiB string each time (64 GiB of scanning: minutes). Bound:
/// 30 s, for a busy machine (under a second here), and 128 MiB peak RSS
/// (the child's own VmHWM; ~25 MiB here).
#[test]
fn a_symbol_table_of_huge_names_takes_bounded_memory_in_the_crash_report() {
    let f = crash_with_symbols(1 << 16, 1 << 20);
    let (code, err, took) = measured(&["run", &f], None);
    assert_eq!(code, 3, "{err}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    let host = std::path::Path::new(env!("CARGO_BIN_EXE_host"));
    let (rss, code) =
        host::bench::peak_rss_kib(host, &["run".as_ref(), f.as_ref()]).expect("measure the host");
    assert_eq!(code, 3);
    assert!(rss < 128 << 10, "peak RSS {rss} KiB");
    assert!(
        err.contains("instruction at RIP (\\x1b]0;owned\\x07\\x1b[2J\\x0d\\x0ahost: forged AAAA"),
        "{err}"
    );
    assert!(
        // the ud2's offset in the image (0x43 today) moves with guest-rt
        err.contains("AAA...+0x") && err.contains(" at guest-kernel/src/bin/crash.rs:"),
        "{err}"
    );
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(!err.contains("\nhost: forged"), "{err}");
}

/// Whatever the address-space limit (RLIMIT_AS), the host ends with a
/// documented code: set-up refused (1), the crash reported (3), or an
/// allocation that failed reported in one line (70); never a seccomp trip
/// (31) or an abort (134). Some limit in the sweep hits the allocation
/// failure while the crash report is built, on the jailed vCPU thread.
#[test]
fn an_allocation_failure_is_one_line_and_exit_70_never_a_jail_trip() {
    use std::os::unix::process::CommandExt;
    let f = crash_with_symbols(1 << 16, 1 << 20);
    let mut seen = std::collections::BTreeSet::new();
    // (below ~12 MiB the kernel cannot even map the static binary: exec
    // fails before the host runs, which is no outcome of the host's)
    for mib in (12..=76u64).step_by(8) {
        let limit = mib << 20;
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_host"));
        c.args(["run", &f]);
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            c.pre_exec(move || {
                let r = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &r) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            })
        };
        let o = c.output().expect("spawn host");
        let err = String::from_utf8_lossy(&o.stderr);
        let code = o.status.code().unwrap_or(-1);
        assert!([1, 3, 70].contains(&code), "{mib} MiB: exit {code}: {err}");
        if code == 70 {
            assert!(
                err.contains("host: internal error: out of memory: an allocation of "),
                "{mib} MiB: {err}"
            );
            assert_eq!(err.matches("host: internal error").count(), 1, "{err}");
            assert!(!err.contains("seccomp"), "{err}");
        }
        seen.insert(code);
    }
    assert!(seen.contains(&70) && seen.contains(&3), "{seen:?}");
}

/// A guest file's name is the file system's text: `host list`, the
/// unknown-guest line and the run report show its control characters
/// escaped.
#[test]
fn file_names_with_terminal_escapes_are_escaped_in_host_lines() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_host"));
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target dir")
        .join("x86_64-unknown-none/debug");
    std::fs::create_dir_all(&dir).expect("guest output folder");
    let name = format!("esc\x1b[2J\r{}", std::process::id());
    let path = dir.join(&name);
    std::fs::write(&path, common::guest_elf("hello")).expect("copy a guest");
    let list = host(&["list"]);
    let typo = host(&["run", &format!("{name}x")]);
    let run = host(&["run", path.to_str().expect("UTF-8")]);
    let _ = std::fs::remove_file(&path);
    let shown = format!("esc\\x1b[2J\\x0d{}", std::process::id());
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains(&shown), "{list}");
    let typo = String::from_utf8_lossy(&typo.stderr).into_owned();
    assert!(
        typo.contains(&format!(
            "unknown guest '{shown}x': did you mean '{shown}'?"
        )),
        "{typo}"
    );
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{shown} halted after 15 exits")),
        "{err}"
    );
    for text in [&list, &typo, &err] {
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }
}
