//! Issue 6: user programs under the guest kernel (system call 436, faults
//! caught at CPL3) and several vCPUs per VM. Through the CLI, so the
//! seccomp filter is on as for users.

mod common;

use common::host;
use std::process::Output;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ncpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    text(&o.stdout)
}

/// A usage error: one line, exit code 2.
fn one_line_error(o: &Output, want: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(want), "want {want:?} in {err}");
}

/// The values the user program got from sys_host_cpuid.
fn user_cpus(out: &str) -> Vec<usize> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("user mode, sys_host_cpuid:"))
        .unwrap_or_else(|| panic!("no sys_host_cpuid line in {out}"));
    line.split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn syscall_436_returns_a_host_cpu_and_follows_pin() {
    let out = ok(&host(&["run", "user_cpuid"]));
    let v = user_cpus(&out);
    assert_eq!(v.len(), 8, "{out}");
    assert!(v.iter().all(|&c| c < ncpu()), "{v:?} on {} CPUs", ncpu());
    // every call was a host_cpuid hypercall made by the kernel for the program
    let err = text(&host(&["run", "user_cpuid"]).stderr);
    assert!(
        err.contains("in  port 0x0506 host_cpuid                  8"),
        "{err}"
    );
    for cpu in 0..ncpu().min(4) {
        let out = ok(&host(&["run", "user_cpuid", "--pin", &cpu.to_string()]));
        assert_eq!(user_cpus(&out), vec![cpu; 8], "pinned to {cpu}");
    }
}

#[test]
fn forbidden_instructions_in_user_mode_are_caught_and_the_vm_ends_cleanly() {
    let o = host(&["run", "user_faults"]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    let rip = |l: &str, prefix: &str| -> bool {
        l.strip_prefix(prefix).is_some_and(|r| {
            let (addr, rest) = r.split_once(',').unwrap_or(("", ""));
            addr.starts_with("0x1") && !rest.is_empty()
        })
    };
    assert_eq!(lines[0], "user: out to the debug port");
    assert!(rip(lines[1], "user program: #GP at RIP "), "{out}");
    assert!(
        lines[1].ends_with(", port I/O is not allowed in user mode"),
        "{out}"
    );
    assert_eq!(lines[2], "kernel: user program exited with status 141");
    assert_eq!(lines[3], "user: hlt");
    assert!(
        lines[4].ends_with(", hlt is not allowed in user mode"),
        "{out}"
    );
    assert_eq!(lines[5], "kernel: user program exited with status 141");
    assert_eq!(lines[6], "user: write to the host's page tables at 0x3000");
    assert!(
        lines[7].starts_with("user program: #PF at RIP ")
            && lines[7].ends_with("address 0x3000: write to a read-only or kernel page"),
        "{out}"
    );
    assert_eq!(lines[8], "kernel: user program exited with status 142");
    // a kernel pointer passed to write is refused, not followed
    assert_eq!(lines[9], "user: write(1, GDT, 16) = -14");
    assert_eq!(lines[10], "user: syscall 999 = -38");
    assert_eq!(lines[11], "kernel: user program exited with status 7");
    // the `out` never reached the host: no exit on port 0xe9
    let err = text(&o.stderr);
    assert!(err.contains("user_faults halted after"), "{err}");
    assert!(!err.contains("0x00e9"), "{err}");
}

#[test]
fn user_mode_loop_and_ring0_loop_both_finish() {
    let out = ok(&host(&["run", "userloop"]));
    assert!(out.contains("ring 0: 100000 iterations"), "{out}");
    assert!(out.contains("ring 3: 100000000 iterations"), "{out}");
    assert!(out.contains("x faster per iteration than ring 0"), "{out}");
}

/// "vcpu i on pcpu j" for each vCPU, in any order.
fn vcpu_lines(out: &str) -> Vec<(u64, usize)> {
    let mut v: Vec<(u64, usize)> = out
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("vcpu ")?;
            let (i, j) = rest.split_once(" on pcpu ")?;
            Some((i.parse().ok()?, j.parse().ok()?))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_vcpus_both_run_report_and_count_exactly() {
    let o = host(&["run", "smp", "--vcpus", "2", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = j["output"].as_str().unwrap();
    let v = vcpu_lines(out);
    assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1], "{out}");
    assert!(v.iter().all(|x| x.1 < ncpu()), "{out}");
    assert!(
        out.contains("counter 4000, expected 4000 (2 x 2000): exact"),
        "{out}"
    );
    assert_eq!(j["check_42"]["pass"], true);
    let vcpus = j["vcpus"].as_array().unwrap();
    assert_eq!(vcpus.len(), 2);
    let mut sum = 0;
    for (i, v) in vcpus.iter().enumerate() {
        assert_eq!(v["id"], i);
        assert_eq!(v["stop"]["state"], "halted");
        let io = v["exits"]["io"].as_array().unwrap();
        // each vCPU made its own host_cpuid hypercall
        assert!(
            io.iter()
                .any(|p| p["hypercall"] == "host_cpuid" && p["count"] == 1),
            "{v}"
        );
        sum += v["exits"]["total"].as_u64().unwrap();
    }
    assert_eq!(j["exits"]["total"].as_u64().unwrap(), sum);
}

#[test]
fn pinned_vcpus_report_their_cpus() {
    if ncpu() < 2 {
        eprintln!("skipped: needs 2 host CPUs");
        return;
    }
    let out = ok(&host(&["run", "smp", "--vcpus", "2", "--pin", "1,0"]));
    assert_eq!(vcpu_lines(&out), vec![(0, 1), (1, 0)], "{out}");
}

#[test]
fn a_crashing_vcpu_ends_the_whole_vm() {
    let o = host(&["run", "smp_crash", "--vcpus", "3", "--timeout", "20s"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(text(&o.stdout), "vcpu 2: crashing\n");
    assert!(
        err.contains("host: smp_crash (vcpu 2) stopped: #UD invalid opcode (exception 6)"),
        "{err}"
    );
    assert!(err.contains("vcpu 0: stopped by another vCPU"), "{err}");
    assert!(err.contains("vcpu 1: stopped by another vCPU"), "{err}");
}

#[test]
fn vcpu_options_are_checked() {
    one_line_error(
        &host(&["run", "hello", "--vcpus", "2"]),
        "hello does not run on several vCPUs",
    );
    one_line_error(
        &host(&["run", "smp", "--vcpus", "8"]),
        "a VM has 1 to 7 vCPUs, not 8",
    );
    one_line_error(
        &host(&["run", "smp", "--vcpus", "0"]),
        "a VM has 1 to 7 vCPUs, not 0",
    );
    one_line_error(
        &host(&["run", "smp", "--vcpus", "2", "--pin", "0"]),
        "--pin names 1 CPU, but the VM has 2 vCPUs",
    );
    one_line_error(
        &host(&["run", "smp", "--vcpus", "2", "--mode", "real"]),
        "several vCPUs need long mode",
    );
    one_line_error(
        &host(&["run", "smp", "--vcpus", "2", "--trace-kvm"]),
        "--trace-kvm follows a single vCPU",
    );
}
