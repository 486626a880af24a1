//! `--html FILE` in a real browser, and `--trace-out` through a strict
//! trace-event check. Debian's chromium-headless-shell (tools/test-deps.txt)
//! loads each page from disk with the network off: any console message (a
//! JavaScript error, a resource that failed or was refused) fails the test;
//! the DOM it drew is compared with the text report of the same run; three
//! screenshots per page must not be blank (kept in target/report-shots/
//! for a person to look at). A broken page shows that the checks can fail.

mod common;

mod browser;

use browser::*;
use std::path::PathBuf;

/// Runs `host` with `args`; exit code and standard error.
fn host(args: &[&str]) -> (i32, String, String) {
    let o = common::host(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn page(name: &str) -> PathBuf {
    common::temp_dir().join(format!("{name}.html"))
}

/// The number in `text` right after `before`.
fn number_after(text: &str, before: &str) -> u64 {
    let at = text
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} in {text}"))
        + before.len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn a_run_page_draws_what_the_text_report_says() {
    let p = page("hello");
    let (code, out, err) = host(&["run", "hello", "--kvm-stats", "--html", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Hello, world!\n");
    assert!(
        err.contains("report: ") && err.contains("hello.html (open it in a browser)"),
        "{err}"
    );
    let d = dom(&p, "");
    assert_eq!(
        sections(&d),
        [
            "glance",
            "memory",
            "pagetables",
            "timeline",
            "exits",
            "kvmcalls",
            "output",
            "text"
        ]
    );
    // the glance and the exit table say what the text says
    let exits = number_after(&err, "halted after ");
    assert_eq!(field(&d, "exits"), exits.to_string());
    assert_eq!(field(&d, "check"), "pass");
    assert_eq!(field(&d, "mode"), "long");
    assert_eq!(field(&d, "memory"), "2 MiB");
    assert_eq!(field(&d, "exit-code"), "0");
    assert!(field(&d, "exits-total").starts_with(&format!("{exits} exits")));
    let text_reasons = err.lines().filter(|l| l.starts_with("  KVM_EXIT_")).count();
    assert_eq!(count(&d, "reason"), text_reasons, "one row per reason");
    assert_eq!(field(&d, "output"), "Hello, world!\n");
    // KVM's own counters beside ours
    let kvm_exits = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("vcpu 0: "))
        .and_then(|l| l.split(", ").find_map(|c| c.strip_prefix("exits ")))
        .unwrap_or_else(|| panic!("KVM's exits in {err}"));
    assert_eq!(field(&d, "kvm-exits"), kvm_exits);
    assert_eq!(field(&d, "our-exits"), exits.to_string());
    assert!(count(&d, "kvm-stat") >= 2);
    // the timeline: one row per vCPU, a legend entry per kind of exit
    assert_eq!(count(&d, "timeline-vcpu"), 1);
    assert_eq!(
        count(&d, "exit-kind"),
        text_reasons,
        "hello: print8bit and HLT"
    );
    assert!(count(&d, "histogram") >= 2);
    // the KVM calls: the set-up, then one arrow per kind of exit and the last
    assert!(count(&d, "seq-call") >= 10, "{}", count(&d, "seq-call"));
    assert_eq!(count(&d, "seq-exit"), 2);
    // the memory map lists the areas `host layout` lists
    let (_, layout, _) = host(&["layout", "hello"]);
    let map: Vec<&str> = layout
        .lines()
        .skip_while(|l| !l.starts_with("guest-physical map"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect();
    let used = map.iter().filter(|l| !l.ends_with(" free")).count();
    assert_eq!(count(&d, "area"), used, "{map:?}");
    assert_eq!(count(&d, "memory-bar"), 2);
    let text_ptes = layout
        .lines()
        .filter(|l| l.contains(" at GPA ") && l.contains(" = 0x"))
        .count();
    assert_eq!(count(&d, "pte"), text_ptes);
    shots(&p, "run-hello");
}

/// The page walks a GVA as `host layout --translate` does: the same GPA,
/// or the same failure.
#[test]
fn the_page_walks_an_address_as_translate_does() {
    let p = page("walk");
    let (code, _, err) = host(&["layout", "hello", "--html", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // mapped, a 2 MiB page without RAM behind it, a guard page, nothing
    for gva in [
        "0x100043",
        "0x7ff78",
        "0x1ff000",
        "0xd0000010",
        "0x70000",
        "0x8000000000",
    ] {
        let (_, text, _) = host(&["layout", "hello", "--translate", gva]);
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("translate GVA"))
            .skip(1)
            .map(str::trim)
            .collect();
        let d = dom(&p, &format!("#gva={gva}"));
        let got = field(&d, "walk-result");
        let want = lines.iter().find(|l| l.starts_with("=> ")).unwrap();
        // the HVA differs between processes; the entry value of a missing
        // entry is not in the page (it holds the present entries)
        let want = want
            .split(", HVA")
            .next()
            .unwrap()
            .split(" (entry")
            .next()
            .unwrap();
        assert!(got.starts_with(want), "{gva}: page {got:?}, text {want:?}");
        // each table step the same as the text's
        let steps = field(&d, "walk-steps");
        let mut compared = 0;
        for l in lines.iter().filter(|l| {
            l.contains(" at GPA ") && l.contains("maps a page") || l.contains("next table")
        }) {
            let l = l.split_once(". ").unwrap().1;
            assert!(steps.contains(l), "{gva}: {l:?} not in {steps:?}");
            compared += 1;
        }
        // a missing entry: where it is (its value is not in the page)
        for l in lines.iter().filter(|l| l.ends_with("-> not present")) {
            let l = l.split_once(". ").unwrap().1.split(" = ").next().unwrap();
            assert!(steps.contains(l), "{gva}: {l:?} not in {steps:?}");
            compared += 1;
        }
        assert!(compared >= 1, "{gva}: {lines:?}");
        if got.contains("=> GPA") {
            assert!(
                d.contains("class=\"hl\""),
                "the walk's entries are highlighted"
            );
        }
    }
    shots(&p, "layout-hello");
}

#[test]
fn a_crash_page_shows_the_autopsy() {
    let p = page("crash");
    let (code, _, err) = host(&["run", "crash", "--html", p.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    let d = dom(&p, "");
    assert_eq!(sections(&d)[..2], ["glance", "crash"]);
    assert!(field(&d, "fault").starts_with("crash stopped: #UD invalid opcode"));
    let rip_line = field(&d, "rip-line");
    assert!(
        rip_line.contains("0x100043") && rip_line.contains("ud2"),
        "{rip_line}"
    );
    assert!(
        err.contains(&format!(
            "instruction at RIP ({}): ",
            field(&d, "crash-symbol")
        )),
        "{err}"
    );
    let text_frames = err
        .lines()
        .skip_while(|l| !l.contains("backtrace"))
        .skip(1)
        .take_while(|l| l.starts_with("    0x"))
        .count();
    assert_eq!(items(&d, "backtrace"), text_frames);
    shots(&p, "run-crash");
}

#[test]
fn a_simvirtio_page_draws_the_queues() {
    let p = page("simvirtio");
    let (code, _, err) = host(&["run", "simvirtio", "--html", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let d = dom(&p, "");
    assert!(sections(&d).contains(&"simvirtio".to_string()));
    assert_eq!(
        field(&d, "sv-tx"),
        number_after(&err, "simvirtio: ").to_string()
    );
    assert_eq!(
        field(&d, "sv-notifies"),
        number_after(&err, "bytes from TX (").to_string()
    );
    assert_eq!(count(&d, "queues"), 1);
    shots(&p, "run-simvirtio");
}

#[test]
fn a_matrix_page_draws_turns_and_shares() {
    let p = page("matrix");
    let (code, out, err) = host(&[
        "matrix",
        "--quanta",
        "20",
        "--quantum",
        "10ms",
        "--json",
        "--html",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = dom(&p, "");
    assert_eq!(sections(&d), ["glance", "scheduler", "text"]);
    assert_eq!(count(&d, "matrix-vm"), 2);
    let turns: u64 = j["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["quanta"].as_u64().unwrap())
        .sum();
    assert_eq!(field(&d, "turns"), turns.to_string());
    assert!(d.contains("<svg") && count(&d, "shares") == 1);
    assert!(field(&d, "matrix-timeline").contains("who ran when"));
    shots(&p, "matrix");
}

/// The checks catch what they are for: a script error, a resource that
/// would be fetched, a blank picture.
#[test]
fn the_browser_checks_can_fail() {
    let p = page("broken-source");
    let (code, _, err) = host(&["layout", "hello", "--html", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let good = std::fs::read_to_string(&p).unwrap();
    let broken = common::temp_dir().join("broken.html");
    std::fs::write(
        &broken,
        good.replace(
            "</footer>",
            "</footer><img src=\"missing.png\"><script>noSuchFunction();</script>",
        ),
    )
    .unwrap();
    let (_, console) = browse(&broken, "", &["--dump-dom".into()]);
    let all = console.join("\n");
    assert!(all.contains("Uncaught ReferenceError"), "{all}");
    assert!(all.contains("missing.png"), "{all}");
    let blank = common::temp_dir().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let (_, px) = screenshot(&blank, "blank", 390);
    assert!(!drawn(&px));
}

/// An output file the run reads is refused before anything is written.
#[test]
fn html_may_not_name_the_guest() {
    let elf = common::guest_elf("hello");
    let g = common::temp_file("hello-html.elf", &elf);
    let (code, _, err) = host(&["run", g.to_str().unwrap(), "--html", g.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(&g).unwrap(), elf);
    let (code, _, err) = host(&[
        "matrix",
        "--quanta",
        "2",
        "--html",
        "/nonexistent/dir/x.html",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("host: error: cannot create /nonexistent/dir/x.html"),
        "{err}"
    );
}

/// A trace-event document, checked against the format: known phases,
/// pid/tid integers, times and durations numbers >= 0, metadata with a
/// name, B/E matched per thread in time order.
fn check_trace(doc: &serde_json::Value) -> (usize, Vec<String>) {
    let ev = doc["traceEvents"].as_array().expect("traceEvents");
    let mut open: std::collections::BTreeMap<(u64, u64), Vec<(String, f64)>> = Default::default();
    let mut threads = Vec::new();
    for e in ev {
        let ph = e["ph"].as_str().expect("ph");
        let (pid, tid) = (e["pid"].as_u64(), e["tid"].as_u64());
        assert!(pid.is_some() && tid.is_some(), "pid/tid: {e}");
        let key = (pid.unwrap(), tid.unwrap());
        assert!(e["name"].is_string(), "name: {e}");
        if ph == "M" {
            assert!(
                ["process_name", "thread_name"].contains(&e["name"].as_str().unwrap()),
                "{e}"
            );
            assert!(e["args"]["name"].is_string(), "{e}");
            if e["name"] == "thread_name" {
                threads.push(e["args"]["name"].as_str().unwrap().to_string());
            }
            continue;
        }
        let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("ts: {e}"));
        assert!(ts >= 0.0, "{e}");
        match ph {
            "X" => assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}"),
            "i" | "I" => assert!(
                ["g", "p", "t"].contains(&e["s"].as_str().unwrap_or("t")),
                "{e}"
            ),
            "B" => open
                .entry(key)
                .or_default()
                .push((e["name"].as_str().unwrap().into(), ts)),
            "E" => {
                let (name, begun) = open.entry(key).or_default().pop().expect("E without B");
                assert!(ts >= begun, "E before its B: {e}");
                if let Some(n) = e["name"].as_str() {
                    assert_eq!(n, name);
                }
            }
            other => panic!("phase {other}: {e}"),
        }
    }
    assert!(open.values().all(Vec::is_empty), "B without E: {open:?}");
    (ev.len(), threads)
}

#[test]
fn trace_files_are_trace_events() {
    let f = common::temp_dir().join("t.json");
    let fs = f.to_str().unwrap();
    for (args, threads) in [
        (
            vec!["run", "hello", "--trace-out", fs],
            vec!["host: KVM calls", "vcpu 0"],
        ),
        (
            vec!["run", "smp", "--vcpus", "2", "--trace-out", fs],
            vec!["host: KVM calls", "vcpu 0", "vcpu 1"],
        ),
        (
            vec![
                "matrix",
                "--quanta",
                "6",
                "--quantum",
                "10ms",
                "--trace-out",
                fs,
            ],
            vec!["guest1 (VMFD", "guest2 (VMFD"],
        ),
    ] {
        let (code, _, err) = host(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let (n, names) = check_trace(&doc);
        assert!(n > 4, "{args:?}");
        assert_eq!(names.len(), threads.len(), "{names:?}");
        for (n, t) in names.iter().zip(&threads) {
            assert!(n.starts_with(t), "{names:?}");
        }
    }
    // the check itself catches an unmatched begin
    let bad = serde_json::json!({"traceEvents": [{"ph": "B", "pid": 1, "tid": 1, "name": "x", "ts": 1.0}]});
    assert!(std::panic::catch_unwind(|| check_trace(&bad)).is_err());
}

/// `host bench` measures what recording costs and what the page of 2000
/// recorded exits weighs.
#[test]
fn bench_measures_the_recorded_loop_and_its_page() {
    let (code, out, err) = host(&[
        "bench",
        "--exits",
        "2000",
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
        "--snapshot-runs",
        "0",
        "--irq-injections",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    let figure = |name: &str| -> f64 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|l| l.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    assert!(figure("long_pio_exit_ns") > 0.0);
    assert!(figure("long_pio_exit_recorded_ns") > 0.0);
    assert!(figure("report_page_ms") > 0.0);
    // 4000 slices of 2000 exits: more than a bare page, far below the cap
    let kib = figure("report_page_kib");
    assert!(kib > 60.0 && kib < 8192.0, "{kib}");
}

/// Hostile text cannot script the page: a guest that prints markup and a
/// VM whose file name is markup. Their text shows as text, and no script
/// of theirs runs (it would log to the console, which fails `dom`).
#[test]
fn a_guest_cannot_script_the_page() {
    let evil = "</script><script>console.log('guest')</script><img src=x onerror=console.log(1)>&amp;<!--\n";
    // long mode: mov al, c; out 0xe9, al (print8bit) per byte, then ud2
    let mut code = Vec::new();
    for b in evil.bytes() {
        code.extend_from_slice(&[0xb0, b, 0xe6, 0xe9]);
    }
    code.extend_from_slice(&[0x0f, 0x0b]);
    let bin = common::temp_file("evil.bin", &code);
    let p = page("evil");
    let mut args = common::flat_run(
        false,
        bin.to_str().unwrap().into(),
        &["--html", p.to_str().unwrap()],
    );
    args.retain(|a| !a.is_empty());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = host(&a);
    assert_eq!((code, out.as_str()), (3, evil), "{err}");
    let d = dom(&p, "");
    assert_eq!(field(&d, "output"), evil);
    assert!(sections(&d).contains(&"crash".to_string()));
    // a VM named with markup, in the matrix's page and its SVG
    let name = common::temp_dir().join("vm<img src=y onerror=console.log(2)>.bin");
    std::fs::write(&name, [0xf4]).unwrap();
    let p = page("evil-matrix");
    let (code, _, err) = host(&[
        "matrix",
        "--quanta",
        "2",
        "--quantum",
        "10ms",
        "--vm",
        name.to_str().unwrap(),
        "--html",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let d = dom(&p, "");
    assert!(field(&d, "matrix-vm").contains("vm<img src=y onerror=console.log(2)>.bin"));
}

/// With the in-kernel controller the map has the LAPIC and IOAPIC windows,
/// and the page lists them beside the MMIO of SIMVIRTIO.
#[test]
fn the_map_shows_the_interrupt_controllers_windows() {
    let (code, text, err) = host(&["layout", "lapic_timer"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("0xfee00000..0xfee01000      4 KiB  -                   local APIC"),
        "{text}"
    );
    assert!(
        text.contains("0xfec00000..0xfec00100      256 B  -                   IOAPIC"),
        "{text}"
    );
    let p = page("lapic");
    let (code, _, err) = host(&["layout", "lapic_timer", "--html", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let d = dom(&p, "");
    assert!(d.contains("local APIC: each vCPU's own registers"), "{d}");
    // without a controller: no such window
    let (_, text, _) = host(&["layout", "hello"]);
    assert!(
        !text.contains("local APIC:") && !text.contains("IOAPIC:"),
        "{text}"
    );
}

/// Every picture of the report the docs show is made by `make doc-shots`
/// (tools/doc-shots lists it), is in docs/img/, and shows something.
#[test]
fn the_docs_pictures_are_made_by_doc_shots() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = std::fs::read_to_string(root.join("tools/doc-shots")).unwrap();
    let made: Vec<String> = script
        .lines()
        .skip_while(|l| !l.starts_with("done <<'LIST'"))
        .skip(1)
        .take_while(|l| *l != "LIST")
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|n| format!("img/report-{n}.png"))
        .collect();
    assert!(made.len() >= 8, "{made:?}");
    let mut shown = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for part in text.split("](").skip(1) {
            let link = part.split(')').next().unwrap();
            if link.starts_with("img/report-") {
                shown.insert(link.to_string());
            }
        }
    }
    for pic in &shown {
        assert!(made.contains(pic), "{pic} is not made by tools/doc-shots");
        let f = std::fs::File::open(root.join("docs").join(pic)).expect(pic);
        let mut r = png::Decoder::new(f).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        let px: Vec<[u8; 3]> = buf[..info.buffer_size()]
            .chunks(info.color_type.samples())
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        assert!(drawn(&px), "{pic} is blank");
    }
    assert_eq!(
        shown.len(),
        made.len(),
        "each picture made is shown: {made:?} vs {shown:?}"
    );
}

/// Several vCPUs, and a device thread: a row of exits per vCPU, the
/// set-up calls only (each vCPU's loop runs on a thread of its own).
#[test]
fn pages_of_several_vcpus_and_of_a_device_thread() {
    let p = page("smp");
    let (code, _, err) = host(&["run", "smp", "--vcpus", "2", "--html", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let d = dom(&p, "");
    assert_eq!(count(&d, "timeline-vcpu"), 2);
    assert_eq!(field(&d, "vcpus"), "2");
    assert_eq!(count(&d, "setup-only"), 1);
    assert!(count(&d, "seq-call") >= 10);
    assert_eq!(count(&d, "seq-exit"), 0);
    let p = page("ioeventfd");
    let (code, _, err) = host(&[
        "run",
        "simvirtio_bulk",
        "--ioeventfd",
        "--html",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let d = dom(&p, "");
    assert_eq!(field(&d, "sv-tx"), "4096");
    assert_eq!(count(&d, "queues"), 1);
    assert_eq!(count(&d, "setup-only"), 1);
}
