//! Issue 5: the SIMVIRTIO device end to end, through the CLI (seccomp on).

mod common;

use common::host;
use std::process::Output;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let o = host(&a);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

fn ok(o: &Output) -> (String, String) {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    (text(&o.stdout), text(&o.stderr))
}

#[test]
fn the_protocol_prints_the_message_and_gets_the_reply_in_both_modes() {
    for polling in [false, true] {
        let mut args = vec!["run", "simvirtio"];
        if polling {
            args.push("--polling");
        }
        let (out, err) = ok(&host(&args));
        let mode = if polling { "polling" } else { "exit" };
        assert_eq!(
            out,
            format!(
                "guest: SIMVIRTIO device found, {mode} mode\n\
                 guest: device ready, 1 device(s) in the table\n\
                 Ana are mere\n\
                 guest: rx: ack 12\n"
            )
        );
        assert!(
            err.contains("check 42: pass (memory[0x400] = 42, RAX = 42)"),
            "{err}"
        );
        assert!(
            err.contains("simvirtio: 13 bytes from TX"),
            "message and newline: {err}"
        );
        assert!(err.contains(", 0 device errors"), "{err}");
        assert!(!err.contains("device error:"), "{err}");
    }
}

#[test]
fn each_malformed_sequence_is_reported_and_seen_by_the_guest() {
    let (out, err) = ok(&host(&["run", "simvirtio_bad"]));
    for case in [
        "'C' before 'R'",
        "DRIVER_OK before 'C'",
        "data before DRIVER_OK",
        "queue selector 5",
        "TX head 9999",
        "driver status 0x33",
    ] {
        assert!(
            out.contains(&format!("guest: {case}: device status 0x80\n")),
            "{case}: {out}"
        );
    }
    assert!(out.contains("guest: Q0 control 0x80\n"), "{out}");
    assert!(
        out.contains("guest: magic still 0x74726976, device status 0x0\n"),
        "{out}"
    );
    assert!(
        out.ends_with("still works\nguest: device ready again\n"),
        "{out}"
    );
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("host: simvirtio: device error: "))
        .collect();
    assert_eq!(
        errors,
        [
            "host: simvirtio: device error: 'C' before 'R': the device must be reset first",
            "host: simvirtio: device error: DRIVER_OK before the device was configured (send 'R', DRIVER_ACK, 'C' first)",
            "host: simvirtio: device error: byte 0x78 in TX while the device is waiting for DRIVER_ACK and 'C' (data is accepted after DRIVER_OK)",
            "host: simvirtio: device error: queue selector 5 does not exist (0 = TX, 1 = RX)",
            "host: simvirtio: device error: TX queue indices are corrupt: head 9999 tail 0 (queue length 256)",
            "host: simvirtio: device error: driver status 0x33 is not DRIVER_ACK, DRIVER, DRIVER_OK or DRIVER_RESET (0x80)",
        ]
    );
    assert!(
        err.contains("host: simvirtio: write to read-only magic (offset 0x0) ignored\n"),
        "{err}"
    );
    assert!(err.contains("6 device errors"), "{err}");
}

fn bulk(polling: bool) -> serde_json::Value {
    let mut args = vec!["run", "simvirtio_bulk"];
    if polling {
        args.push("--polling");
    }
    json(&args)
}

#[test]
fn a_message_longer_than_the_queue_wraps_around_and_arrives_whole() {
    let want: String = (0..4095).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    for polling in [false, true] {
        let j = bulk(polling);
        assert_eq!(
            j["output"].as_str().unwrap(),
            format!("{want}\nguest: rx: ack 4095\n"),
            "polling {polling}"
        );
        assert_eq!(j["simvirtio"]["tx_bytes"], 4096);
        assert_eq!(j["simvirtio"]["errors"], 0);
    }
}

#[test]
fn polling_takes_at_least_10x_fewer_exits_for_4_kib() {
    // The driver's exits (MMIO, hypercalls, HLT), not the polling timer's
    // kicks (KVM_EXIT_INTR): those count elapsed time, which a busy machine
    // stretches (seen: 310 of 319 polling exits were kicks, and under a
    // parallel `make test` the total ratio fell to 9.0).
    let exits = |j: &serde_json::Value| {
        j["exits"]["by_reason"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["reason"] != "intr")
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    let (e, p) = (bulk(false), bulk(true));
    assert!(e["simvirtio"]["notifies"].as_u64().unwrap() >= 4096);
    assert_eq!(p["simvirtio"]["notifies"], 0);
    let ratio = exits(&e) as f64 / exits(&p) as f64;
    assert!(
        ratio >= 10.0,
        "exit mode {} exits, polling {} exits: ratio {ratio:.1}",
        exits(&e),
        exits(&p)
    );
}

#[test]
fn stats_time_every_kind_of_exit() {
    let (_, err) = ok(&host(&["run", "simvirtio", "--stats"]));
    assert!(err.contains("reason / port / address"), "{err}");
    let row = err
        .lines()
        .find(|l| l.trim_start().starts_with("write 0xd0000009 sv.q0_ctl"))
        .unwrap_or_else(|| panic!("no q0_ctl row: {err}"));
    // count, total us, mean ns
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[3], "15", "{row}");
    assert!(cols[4].parse::<f64>().unwrap() > 0.0, "{row}");
    assert!(cols[5].parse::<u64>().unwrap() > 0, "{row}");
    let j = json(&["run", "simvirtio", "--stats"]);
    assert_eq!(j["exits"]["timed"], true);
    for r in j["exits"]["by_reason"].as_array().unwrap() {
        if r["name"] != "KVM_EXIT_HLT" {
            assert!(r["handling_ns"].as_u64().unwrap() > 0, "{r}");
        }
    }
    let mmio = j["exits"]["mmio"].as_array().unwrap();
    assert!(
        mmio.iter()
            .any(|a| a["device"] == "sv.magic" && a["dir"] == "in")
    );
    // without --stats nothing is timed
    let j = json(&["run", "simvirtio"]);
    assert_eq!(j["exits"]["timed"], false);
}

#[test]
fn polling_options_are_checked() {
    let o = host(&["run", "simvirtio", "--poll-interval", "2ms"]);
    assert_eq!(o.status.code(), Some(2), "needs --polling");
    let o = host(&["run", "simvirtio", "--polling", "--poll-interval", "0s"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("'0s' is too short: a duration must be longer than zero"),
        "{err}"
    );
}

/// SIMVIRTIO with interrupts (simvirtio_irq: the driver opts in with
/// DRIVER_IRQ, routes the device's line through the IOAPIC and sleeps on
/// RX): in polling mode the answer arrives while the guest sleeps in HLT
/// and the interrupt wakes it; in exit mode every notify raises one. The
/// output of the assignment's flow is the same; without the in-kernel
/// controller the device has no line and the program says so.
#[test]
fn a_driver_that_opts_in_sleeps_until_the_device_interrupts() {
    for (mode, want) in [("--polling", "polling mode"), ("--stats", "exit mode")] {
        let o = common::host(&["run", "simvirtio_irq", mode, "--timeout", "20s"]);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(o.status.code(), Some(0), "{mode}: {out}{err}");
        assert!(
            out.starts_with(&format!(
                "guest: SIMVIRTIO device found, {want}, IRQ line 11 on vector 0x31\nAna are mere\nguest: rx: ack 12\nguest: interrupts: "
            )),
            "{mode}: {out}"
        );
        assert!(
            err.contains("7 bytes to RX, 0 device errors, "),
            "{mode}: {err}"
        );
        assert!(err.contains(" interrupts\n"), "{mode}: {err}");
    }
    let o = common::host(&["run", "simvirtio_irq", "--irqchip", "none"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "guest: the device has no interrupt line (run with --irqchip kernel)\n"
    );
}

/// `--ioeventfd`: KVM catches the notify writes (KVM_IOEVENTFD) and a
/// device thread serves them. The guest's output is the same as in exit
/// mode, the notifies are all counted, and none of them is an exit: for
/// the 4 KiB transfer at least 10x fewer exits per KiB than exit mode (the
/// issue's aim; 9 against 4107 here). The device thread runs under its
/// own seccomp filter (the default), and Ctrl-C ends the run at once.
#[test]
fn ioeventfd_mode_serves_notifies_without_exits() {
    let run = |args: &[&str]| {
        let o = common::host(args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, exit_out, _) = run(&["run", "simvirtio"]);
    assert_eq!(code, Some(0));
    let (code, out, err) = run(&["run", "simvirtio", "--ioeventfd"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, exit_out);
    assert!(
        err.contains(
            // 'R', 'C' and one for the message's 13 bytes: the device
            // reads CTL_BATCH, so `send` notifies once after its last byte
            "simvirtio: 13 bytes from TX (3 notifies, 0 polls), 7 bytes to RX, 0 device errors\n"
        ),
        "{err}"
    );
    assert!(
        !err.contains("write 0xd0000009 sv.q0_ctl"),
        "a notify exited: {err}"
    );
    let exits = |err: &str| -> u64 {
        err.lines()
            .find_map(|l| {
                l.strip_prefix("exits: ")?
                    .strip_suffix(" total")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no exit total: {err}"))
    };
    let (code, _, exit_err) = run(&["run", "simvirtio_bulk"]);
    assert_eq!(code, Some(0), "{exit_err}");
    let (code, _, err) = run(&["run", "simvirtio_bulk", "--ioeventfd"]);
    assert_eq!(code, Some(0), "{err}");
    // exit mode: a notify per byte; ioeventfd mode: the device reads
    // CTL_BATCH and the driver notifies once per 256-byte send (16), after
    // the handshake's two, plus once when TX fills up before the device
    // thread drained it (how often depends on the two threads' timing)
    assert!(
        exit_err.contains("4096 bytes from TX (4098 notifies"),
        "{exit_err}"
    );
    let notifies = |err: &str| -> u64 {
        let at = err.find("4096 bytes from TX (").expect("the device line") + 20;
        err[at..].split(' ').next().unwrap().parse().unwrap()
    };
    let n = notifies(&err);
    assert!((18..=2 + 16 * 4).contains(&n), "{n} notifies:\n{err}");
    assert!(exits(&err) * 10 <= exits(&exit_err), "{err}\n{exit_err}");
    // with interrupts too
    let (code, out, err) = run(&["run", "simvirtio_irq", "--ioeventfd"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("guest: rx: ack 12\n"), "{out}");
    // options that cannot go together
    let (code, _, err) = run(&["run", "simvirtio", "--ioeventfd", "--polling"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run(&["run", "hello", "--ioeventfd", "--mode", "paged32"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--ioeventfd serves SIMVIRTIO, a long-mode device: not in paged32 mode"),
        "{err}"
    );
    let (code, _, err) = run(&["run", "simvirtio", "--ioeventfd", "--trace-kvm"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("use one at a time"), "{err}");
}

/// The latency profile the guest measures in its own TSC, in the three
/// modes (the figures live in `host bench`; here: the line and its two
/// numbers).
#[test]
fn the_profile_guest_measures_both_latencies_in_every_mode() {
    for (mode, label) in [
        ("--stats", "notify"),
        ("--polling", "polling"),
        ("--ioeventfd", "notify"),
    ] {
        let o = common::host(&["run", "simvirtio_profile", mode, "--timeout", "60s"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{mode}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("profile ({label}): notify->seen ")))
            .unwrap_or_else(|| panic!("{mode}: {out}"));
        assert!(
            line.contains(" us, notify->rx handler ") && line.contains(" us (medians of 64; TSC "),
            "{line}"
        );
    }
}
