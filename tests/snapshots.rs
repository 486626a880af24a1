//! Snapshots (docs/snapshots.md): a run saved at a point and restored in
//! a new process is the uninterrupted run, byte for byte; a snapshot file
//! is untrusted input.

mod common;

use host::snapshot::format::{self, PAGE, Run, Snapshot};
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn json(args: &[&str]) -> (Value, String) {
    let mut a = args.to_vec();
    a.insert(1, "--json");
    let o = common::host(&a);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let v =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("host {args:?}: {e}\n{err}"));
    (v, err)
}

fn snap_path(tag: &str) -> PathBuf {
    common::temp_dir().join(format!("{tag}.snap"))
}

/// What must be the same: the guest's output, how it stopped, the
/// registers, the 42 check, the device's counters and the exit counts
/// (not the handling times, which are the host's).
fn same_run(a: &Value, b: &Value) -> Result<(), String> {
    for k in [
        "output",
        "stop",
        "regs",
        "check_42",
        "simvirtio",
        "exit_code",
    ] {
        if a[k] != b[k] {
            return Err(format!("{k}: {} vs {}", a[k], b[k]));
        }
    }
    let counts = |v: &Value| {
        let mut e = v["exits"].clone();
        strip_times(&mut e);
        e
    };
    if counts(a) != counts(b) {
        return Err(format!("exits: {} vs {}", counts(a), counts(b)));
    }
    Ok(())
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.contains("ns") && !k.contains("_us") && k != "timed");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Runs `args` whole, then saved after exit N and restored, for N = 1,
/// the middle and the last exit but one, and compares.
fn saved_and_restored_is_uninterrupted(args: &[&str]) {
    let (whole, err) = json(args);
    let total = whole["exits"]["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{err}"));
    assert!(total >= 2, "{args:?}: {total} exits");
    let mut points = vec![1, total / 2, total - 1];
    points.dedup();
    for n in points {
        let file = snap_path("point");
        let at = format!("exits:{n}");
        let f = file.to_str().unwrap();
        let mut a = args.to_vec();
        // (before a `--` and the guest's arguments)
        a.splice(1..1, ["--snapshot", f, "--snapshot-at", &at]);
        let o = common::host(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{a:?}: {err}");
        assert!(
            err.contains("host: snapshot: saved ") && err.contains(&format!(" at exit {n} to ")),
            "{a:?}: {err}"
        );
        let (restored, err) = json(&["run", "--restore", f]);
        if let Err(e) = same_run(&whole, &restored) {
            panic!("{args:?} saved at exit {n} of {total}, restored: {e}\n{err}");
        }
        std::fs::remove_file(&file).unwrap();
    }
}

/// Every guest with a deterministic outcome (the rest print host CPU
/// numbers, host addresses or timings, or take interrupts whose timing
/// varies: hypercalls, cpuid, user_cpuid, userloop, the interrupt guests,
/// polling mode), in each CPU mode kvm-pvm runs (paged32: the nested lane).
#[test]
fn every_deterministic_guest_restored_at_three_points_is_the_uninterrupted_run() {
    for args in [
        &["run", "hello"][..],
        &["run", "hello", "--mode", "real"],
        &["run", "hello", "--mode", "protected"],
        &["run", "hello_str"],
        &["run", "primes", "--", "300", "9"],
        // SIMVIRTIO mid-transfer: a line half sent, queue indices wrapped
        &["run", "simvirtio"],
        &["run", "simvirtio_bulk"],
        // the guest kernel: user mode, system calls, user faults
        &["run", "user_faults"],
        &["run", "kernel_fault"],
        &["run", "heap_demo"],
        &["run", "crash"],
    ] {
        saved_and_restored_is_uninterrupted(args);
    }
}

/// The `snapshot` hypercall: saved once after the set-up, restored twice,
/// with new arguments the second time; a restored run saved again.
#[test]
fn a_guest_saved_at_its_call_restores_many_times_and_chains() {
    let file = snap_path("demo");
    let f = file.to_str().unwrap();
    let o = common::host(&["run", "snapshot_demo", "--snapshot", f]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out, "set-up: 17984 primes below 200000\n");
    assert!(
        err.contains("host: snapshot_demo stopped for a snapshot at RIP "),
        "{err}"
    );
    let (whole, _) = json(&["run", "snapshot_demo"]);
    for _ in 0..2 {
        let (r, err) = json(&["run", "--restore", f]);
        same_run(&whole, &r).unwrap_or_else(|e| panic!("{e}\n{err}"));
    }
    let (r, _) = json(&["run", "--restore", f, "--", "5", "100"]);
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .ends_with("after the snapshot call\n23 primes in 5..100\n"),
        "{}",
        r["output"]
    );
    // restored, then saved again two exits later, then restored
    let again = snap_path("again");
    let g = again.to_str().unwrap();
    let o = common::host(&[
        "run",
        "--restore",
        f,
        "--snapshot",
        g,
        "--snapshot-at",
        "exits:4",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (r, err) = json(&["run", "--restore", g]);
    same_run(&whole, &r).unwrap_or_else(|e| panic!("{e}\n{err}"));
    // a guest that never calls it: no snapshot, said in one line
    let o = common::host(&["run", "hello", "--snapshot", g]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "host: snapshot: none taken: the run ended before the guest's snapshot hypercall"
        ),
        "{err}"
    );
}

/// `--snapshot-at stop`: a run stopped by --timeout is saved, and its
/// restore goes on where it was (chatty prints numbered lines forever).
#[test]
fn a_timed_out_run_is_saved_and_goes_on_when_restored() {
    let file = snap_path("stop");
    let f = file.to_str().unwrap();
    let o = common::host(&[
        "run",
        "chatty",
        "--timeout",
        "300ms",
        "--snapshot",
        f,
        "--snapshot-at",
        "stop",
    ]);
    let before = o.stdout.clone();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("host: snapshot: saved chatty at exit "),
        "{err}"
    );
    let o = common::host(&["run", "--restore", f, "--timeout", "300ms"]);
    assert_eq!(o.status.code(), Some(5));
    // the restored run printed the first run's output, then more
    assert!(
        o.stdout.len() > before.len(),
        "{} vs {}",
        o.stdout.len(),
        before.len()
    );
    assert_eq!(&o.stdout[..before.len()], &before[..]);
}

/// What snapshots do not cover yet is refused in one line (exit 2).
#[test]
fn what_is_not_saved_is_refused_in_one_line() {
    let f = snap_path("refused");
    let f = f.to_str().unwrap();
    for (args, says) in [
        (
            &["run", "smp", "--vcpus", "2", "--snapshot", f][..],
            "not with --vcpus",
        ),
        (
            &["run", "simvirtio", "--ioeventfd", "--snapshot", f],
            "not with --ioeventfd",
        ),
        (
            &["run", "hello", "--gdb", "127.0.0.1:1", "--snapshot", f],
            "--gdb",
        ),
        (&["run", "hello", "--snapshot-at", "exits:3"], "--snapshot"),
        (
            &["run", "hello", "--snapshot", f, "--snapshot-at", "exits:0"],
            "exits:N (N >= 1",
        ),
    ] {
        let o = common::host(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A valid snapshot of hello at exit 5, read back.
fn valid() -> (format::Opened, Vec<u8>) {
    let file = snap_path("valid");
    let f = file.to_str().unwrap();
    let o = common::host(&["run", "hello", "--snapshot", f, "--snapshot-at", "exits:5"]);
    assert_eq!(o.status.code(), Some(0));
    let bytes = std::fs::read(&file).unwrap();
    (
        host::snapshot::open(&file).expect("a valid snapshot"),
        bytes,
    )
}

/// A file for `snap` with these page bytes, every checksum right: what a
/// hostile writer who knows the format makes.
fn forge(snap: &Snapshot, pages: &[u8]) -> Vec<u8> {
    let meta = snap.encode();
    let sum = host::wire::fnv64(host::wire::FNV_START, pages);
    let mut f = format::header(&meta, pages.len() as u64, sum).to_vec();
    f.extend_from_slice(&meta);
    f.resize(format::pages_offset(meta.len() as u64) as usize, 0);
    f.extend_from_slice(pages);
    f
}

fn restore_bytes(tag: &str, bytes: &[u8]) -> (Option<i32>, String) {
    let p = common::temp_file(tag, bytes);
    let o = common::host(&["run", "--restore", p.to_str().unwrap()]);
    std::fs::remove_file(&p).unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Truncated, corrupt, wrong-version, wrong-ABI, wrong-guest and hostile
/// files: one clear line and exit 1 each.
#[test]
fn hostile_snapshot_files_are_one_line_and_exit_1() {
    let (o, bytes) = valid();
    let pages_at = o.pages_off as usize;
    let page_bytes = bytes[pages_at..].to_vec();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "shorter than the 64-byte header"),
        (
            "not a snapshot",
            b"\x7fELF and more bytes than a header has, 64 at the least..........".to_vec(),
            "does not start with \"KVMWBSNP\"",
        ),
        (
            "truncated in the metadata",
            bytes[..100].to_vec(),
            "truncated",
        ),
        (
            "truncated in the pages",
            bytes[..bytes.len() - 1].to_vec(),
            "truncated",
        ),
    ];
    let flip = |at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        b
    };
    cases.push(("corrupt header", flip(20), "header's checksum"));
    cases.push(("corrupt metadata", flip(80), "metadata's checksum"));
    cases.push(("corrupt page", flip(pages_at + 5), "page data's checksum"));
    let mut v2 = bytes.clone();
    v2[8] = 2;
    let sum = host::wire::fnv64(host::wire::FNV_START, &v2[..56]);
    v2[56..64].copy_from_slice(&sum.to_le_bytes());
    cases.push((
        "version 2",
        v2,
        "format version 2; this host reads version 1",
    ));
    let s = &o.snap;
    let with = |f: &dyn Fn(&mut Snapshot)| {
        let mut t = s.clone();
        f(&mut t);
        t
    };
    cases.push((
        "another ABI",
        forge(&with(&|t| t.fingerprint ^= 1), &page_bytes),
        "saved by a host with hypercall ABI fingerprint",
    ));
    cases.push((
        "another guest",
        forge(&with(&|t| t.guest_hash ^= 1), &page_bytes),
        "is not that file",
    ));
    cases.push((
        "pages outside RAM",
        forge(
            &with(&|t| {
                t.runs = vec![Run {
                    gpa: t.mem_size,
                    pages: 1,
                }]
            }),
            &page_bytes[..PAGE as usize],
        ),
        "page run address",
    ));
    cases.push((
        "overlapping pages",
        forge(
            &with(&|t| {
                t.runs = vec![
                    Run { gpa: 0, pages: 2 },
                    Run {
                        gpa: 0x1000,
                        pages: 1,
                    },
                ]
            }),
            &page_bytes[..3 * PAGE as usize],
        ),
        "page run address",
    ));
    // a page list that claims 2^60 runs: refused before any allocation
    // (the run count is the metadata's last field before the runs)
    let mut m2 = s.encode();
    let n_at = m2.len() - 8 - 16 * s.runs.len();
    m2[n_at..n_at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let mut f = format::header(
        &m2,
        page_bytes.len() as u64,
        host::wire::fnv64(host::wire::FNV_START, &page_bytes),
    )
    .to_vec();
    f.extend_from_slice(&m2);
    f.resize(format::pages_offset(m2.len() as u64) as usize, 0);
    f.extend_from_slice(&page_bytes);
    cases.push(("a huge page list", f, "page runs ends early"));
    cases.push((
        "registers of the wrong size",
        forge(&with(&|t| t.vcpus[0].truncate(10)), &page_bytes),
        "registers ends early",
    ));
    cases.push((
        "a CPU state KVM refuses",
        forge(
            &with(&|t| {
                // CR4 with every reserved bit set
                let b = &mut t.vcpus[0];
                let regs = 8 + std::mem::size_of::<kvm_bindings::kvm_regs>();
                let cr4 = regs + 8 + std::mem::offset_of!(kvm_bindings::kvm_sregs, cr4);
                b[cr4..cr4 + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            }),
            &page_bytes,
        ),
        "KVM_SET_SREGS failed",
    ));
    for (what, b, says) in cases {
        let (code, err) = restore_bytes("hostile", &b);
        assert_eq!(code, Some(1), "{what}: {err}");
        assert!(err.contains(says), "{what}: want {says:?} in {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.starts_with("host: error: "), "{what}: {err}");
    }
    let (code, err) = restore_bytes("forged but valid", &forge(s, &page_bytes));
    assert_eq!(code, Some(0), "{err}");
    // a snapshot of another guest, restored as this one
    let p = common::temp_file("hello", &bytes);
    let o = common::host(&["run", "primes", "--restore", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("it was saved from hello"), "{err}");
    let missing = Path::new("/nonexistent/x.snap");
    let o = common::host(&["run", "--restore", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any byte changed or cut in a snapshot is refused with an error,
    /// never a panic (the reader without KVM: `snapshot::open`).
    #[test]
    fn the_reader_refuses_damaged_files_without_panicking(at in 0usize..100_000, x in 1u8..=255, cut in any::<bool>()) {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let bytes = BYTES.get_or_init(|| valid().1);
        let mut b = bytes.clone();
        let at = at % b.len();
        if cut { b.truncate(at) } else { b[at] ^= x }
        let p = common::temp_file("prop", &b);
        prop_assert!(host::snapshot::open(&p).is_err());
        std::fs::remove_file(&p).unwrap();
    }

    /// The metadata decoder on arbitrary bytes: an error or a value.
    #[test]
    fn the_metadata_decoder_takes_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Snapshot::decode(&b);
    }
}
