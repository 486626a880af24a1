//! `host layout` and `--trace-kvm`, checked against the VM they describe:
//! the addresses printed must really hold the guest's bytes, and the traced
//! ioctls must be the ones the process really makes (strace).

mod common;

use common::host;

use host::config::VmConfig;
use host::inspect::{self, Layout};
use host::run::{self, RunOptions};
use host::x86::CpuMode;
use std::process::Command;
use vm_memory::{GuestAddress, GuestMemoryBackend};

fn opts(guest: &str, mode: CpuMode, mem: u64) -> RunOptions {
    RunOptions {
        guest: guest.into(),
        vm: VmConfig {
            mode,
            mem_size: mem,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Reads `len` bytes at a host address printed by `layout`.
fn at_hva(hva: u64, len: usize) -> Vec<u8> {
    // SAFETY: the callers pass HVAs inside the guest memory mapping of a VM
    // that is alive for the call (`len` bytes fit: checked by the caller
    // against the layout's memory range).
    unsafe { std::slice::from_raw_parts(hva as *const u8, len) }.to_vec()
}

/// The /proc/self/maps line that starts at `addr`.
fn mapping_at(addr: u64) -> Option<(u64, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (a, b) = range.split_once('-')?;
        let a = u64::from_str_radix(a, 16).ok()?;
        let b = u64::from_str_radix(b, 16).ok()?;
        (a == addr).then(|| (b - a, rest.to_string()))
    })
}

fn check_layout(mode: CpuMode, mem: u64) -> Layout {
    let mut p = run::prepare(&opts("hello", mode, mem)).expect("prepare");
    let elf = std::fs::read(&p.path).unwrap();
    let entry = p.plan.entry;
    let l = inspect::describe(&mut p.vm, &p.plan, Some(entry)).expect("layout");
    // the memory region is the one KVM was given
    let base = p.vm.memory().get_host_address(GuestAddress(0)).unwrap() as u64;
    assert_eq!(l.mem_hva, base, "{mode}");
    assert_eq!(l.mem_size, mem);
    // the kvm_run address is this process's mapping of the vCPU fd, of the
    // size KVM_GET_VCPU_MMAP_SIZE gave
    let (size, what) = mapping_at(l.kvm_run_hva).expect("kvm_run is mapped");
    assert_eq!(size, l.kvm_run_size as u64, "{what}");
    assert!(what.contains("kvm-vcpu"), "{what}");
    // every image area's HVA holds the bytes the file has for it
    let images: Vec<_> = l
        .areas
        .iter()
        .filter(|a| a.what.starts_with("guest image"))
        .collect();
    assert_eq!(images.len(), p.plan.segments.len(), "{mode}");
    for (a, seg) in images.iter().zip(&p.plan.segments) {
        assert_eq!(a.start, seg.gpa);
        let hva = a.hva.expect("in RAM");
        assert!(a.end <= mem);
        assert_eq!(
            at_hva(hva, seg.file.len()),
            elf[seg.file.clone()],
            "{mode} {a:?}"
        );
    }
    // the map covers RAM without holes or overlaps
    let mut at = 0;
    for a in l.areas.iter().filter(|a| a.start < mem) {
        assert_eq!(a.start, at, "{mode}: {:?}", l.areas);
        assert_eq!(a.hva, Some(base + a.start));
        at = a.end;
    }
    assert_eq!(at, mem, "{mode}");
    // the vCPU starts at the entry, and the walk of the entry ends at the
    // HVA that holds the first code bytes
    assert_eq!(l.regs.rip, entry);
    let t = l.translation.as_ref().unwrap();
    assert_eq!(t.gpa, Some(entry), "{mode}: {t:?}");
    let first = &p
        .plan
        .segments
        .iter()
        .find(|s| s.gpa == entry)
        .unwrap()
        .file;
    assert_eq!(at_hva(t.hva.unwrap(), 8), elf[first.start..first.start + 8]);
    // the text names the same figures
    let text = l.text();
    assert!(
        text.contains(&format!("kvm_run: {} bytes", l.kvm_run_size)),
        "{text}"
    );
    assert!(
        text.contains(&format!("mapped at HVA {:#x}", l.kvm_run_hva)),
        "{text}"
    );
    assert!(
        text.contains(&format!("=> GPA {entry:#x}, HVA {:#x}", t.hva.unwrap())),
        "{text}"
    );
    l
}

#[test]
fn long_mode_layout_matches_the_vm() {
    let l = check_layout(CpuMode::Long, 6 << 20);
    // the tree: PML4[0] -> PDPT[0] -> PD[0] -> PT: the first 2 MiB in
    // 4 KiB pages with PT[112], the stack's guard page, not present; PD[1..=2]
    // as two 2 MiB pages; and PDPT[3] -> PD[128]: the SIMVIRTIO window at
    // 0xd0000000
    let levels: Vec<_> = l
        .tables
        .iter()
        .map(|e| (e.level, e.index, e.count))
        .collect();
    assert_eq!(
        levels,
        [
            ("PML4", 0, 1),
            ("PDPT", 0, 1),
            ("PD", 0, 1),
            ("PT", 0, 112),
            ("PT", 113, 399),
            ("PD", 1, 2),
            ("PDPT", 3, 1),
            ("PD", 128, 1)
        ]
    );
    assert_eq!(
        l.tables[7].page_gpa,
        Some(hypercall_abi::simvirtio::MMIO_BASE)
    );
    let (pt, pd) = (&l.tables[4], &l.tables[5]);
    assert_eq!(
        (pt.page_gpa, pt.page_size, pt.span),
        (Some(0x71000), Some(4096), 399 << 12)
    );
    assert_eq!(
        (pd.page_gpa, pd.page_size, pd.span),
        (Some(2 << 20), Some(2 << 20), 4 << 20)
    );
    // the page tables and GDT found from CR3 and GDTR are in the map
    assert!(
        l.areas
            .iter()
            .any(|a| a.start == l.sregs.cr3 && a.what.contains("PML4"))
    );
    assert!(
        l.areas
            .iter()
            .any(|a| a.start == l.sregs.gdt_base && a.what.starts_with("GDT"))
    );
    // null, code, data, and vCPU 0's TSS descriptor (two entries)
    assert_eq!(l.sregs.gdt.len(), 5);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // the walk: 4 table steps (the entry is in the first 2 MiB: a PT)
    let t = l.translation.unwrap();
    assert_eq!(
        t.steps.iter().filter(|s| s.text.contains("index")).count(),
        4,
        "{t:?}"
    );
}

#[test]
fn real_and_protected_layouts_match_the_vm() {
    let l = check_layout(CpuMode::Real, 1 << 20);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!(l.tables.is_empty() && l.sregs.gdt.is_empty());
    assert_eq!((l.sregs.cs.base, l.sregs.cs.selector), (0, 0));
    assert!(l.translation.unwrap().steps[0].text.contains("real mode"));
    let l = check_layout(CpuMode::Protected, 2 << 20);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!(l.tables.is_empty());
    assert_eq!(l.sregs.cs.db, 1);
    assert!(
        l.translation.unwrap().steps[0]
            .text
            .contains("protected mode")
    );
}

/// The paged32 tables as the host wrote them (a 4 MiB PSE page, then a PT
/// of 4 KiB pages); on kvm-pvm the layout also says KVM dropped CR0.PG.
#[test]
fn paged32_layout_shows_the_pse_page_and_a_page_table() {
    let mut p = run::prepare(&opts("hello", CpuMode::Paged32, 8 << 20)).unwrap();
    let l = inspect::describe(&mut p.vm, &p.plan, None).unwrap();
    let t: Vec<_> = l
        .tables
        .iter()
        .map(|e| (e.level, e.index, e.count, e.page_size))
        .collect();
    assert_eq!(
        t,
        [
            ("PD", 0, 1, Some(4 << 20)),
            ("PD", 1, 1, None),
            ("PT", 0, 1024, Some(4096))
        ]
    );
    let pvm = std::path::Path::new("/sys/module/kvm_pvm").exists();
    assert_eq!(!l.warnings.is_empty(), pvm, "{:?}", l.warnings);
}

#[test]
fn translate_says_where_and_why_a_walk_fails() {
    let mut p = run::prepare(&opts("hello", CpuMode::Long, 2 << 20)).unwrap();
    let l = inspect::describe(&mut p.vm, &p.plan, Some(0x5ead_0000_0000)).unwrap();
    let t = l.translation.unwrap();
    assert_eq!((t.gpa, t.hva), (None, None));
    let e = t.error.unwrap();
    assert!(
        e.contains(&format!(
            "PML4 entry {} of the table at 0x3000 is not present",
            0x5ead_0000_0000u64 >> 39
        )),
        "{e}"
    );
    let l = inspect::describe(&mut p.vm, &p.plan, Some(1 << 63)).unwrap();
    assert!(
        l.translation
            .unwrap()
            .error
            .unwrap()
            .contains("not canonical")
    );
}

#[test]
fn layout_command_prints_text_and_json() {
    let o = host(&["layout", "hello", "--translate", "0x100000"]);
    assert_eq!(o.status.code(), Some(0));
    let t = String::from_utf8(o.stdout).unwrap();
    for want in [
        "guest memory: 2 MiB (0x200000 bytes), slot 0 at GPA 0x0, mapped at HVA 0x",
        "kvm_run: ",
        "page table: PML4 (from CR3)",
        "PD[0] at GPA 0x5000 = 0xb003 [P RW] -> next table at GPA 0xb000",
        "PT[0..=111] at GPA 0xb000 = 0x63 [P RW A D] -> 112 pages of 4 KiB",
        "stack: RSP, grows down; its guard page 0x70000..0x71000 is not mapped",
        "host IDT: 32 exception gates (IDTR), each to its stub",
        "RIP 0x100000  RSP 0x80000",
        "=> GPA 0x100000, HVA 0x",
    ] {
        assert!(t.contains(want), "want {want:?} in\n{t}");
    }
    let o = host(&["layout", "hello", "--mode", "real", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mode"], "real");
    assert_eq!(
        v["regs"]["rip"], "0xa000",
        "addresses are hex strings in JSON, as in the text"
    );
    let o = host(&["layout", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    let o = host(&["layout", "hello", "--translate", "zz"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn paged32_run_is_refused_in_one_line_where_kvm_drops_cr0_pg() {
    if !std::path::Path::new("/sys/module/kvm_pvm").exists() {
        return; // real VT-x/AMD-V runs it: tests/guests.rs hello_runs_in_paged32
    }
    let o = host(&["run", "hello", "--mode", "paged32"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("this KVM did not take paged32 mode"), "{e}");
}

/// The KVM ioctl names in `--trace-kvm` text, in order.
fn traced_ioctls(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|l| l.split_once("ioctl(")?.1.split_once(", ").map(|x| x.1))
        .map(|rest| rest.split([',', ')']).next().unwrap().to_string())
        .collect()
}

#[test]
fn trace_lists_every_kvm_ioctl_strace_sees() {
    let have_strace = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_strace {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED trace_lists_every_kvm_ioctl_strace_sees: no strace"
        );
        return;
    }
    for guest in ["hello", "hypercalls"] {
        let log = common::temp_file("strace", b"");
        let o = Command::new("strace")
            .args(["-f", "-e", "trace=ioctl", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_host"))
            .args(["run", guest, "--trace-kvm"])
            .output()
            .unwrap();
        let err = String::from_utf8(o.stderr).unwrap();
        if !o.status.success() && err.contains("ptrace") {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED trace test: strace cannot ptrace here: {err}"
            );
            return;
        }
        assert_eq!(o.status.code(), Some(0), "{err}");
        let st = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        let seen: Vec<String> = st
            .lines()
            .filter_map(|l| l.split_once("ioctl(")?.1.split_once(", ").map(|x| x.1))
            .filter(|r| r.starts_with("KVM_") || r.starts_with("_IOC(_IOC_WRITE, 0xae, 0x8b"))
            .map(|r| {
                let name = r.split([',', ' ']).next().unwrap();
                // strace may not know KVM_SET_SIGNAL_MASK's number by name
                if name.starts_with("_IOC") {
                    "KVM_SET_SIGNAL_MASK"
                } else {
                    name
                }
                .to_string()
            })
            .collect();
        let traced = traced_ioctls(&err);
        assert_eq!(traced, seen, "{guest}: trace\n{err}\nstrace\n{st}");
        assert!(traced.len() > 10);
    }
}

#[test]
fn trace_mermaid_is_a_flowchart_of_the_run() {
    let f = common::temp_file("flow.mmd", b"");
    let o = host(&[
        "run",
        "hello",
        "--trace-kvm=mermaid",
        "--trace-file",
        f.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let m = std::fs::read_to_string(&f).unwrap();
    let _ = std::fs::remove_file(&f);
    assert!(m.starts_with("flowchart TD\n"), "{m}");
    let nodes = m.lines().filter(|l| l.contains("[\"")).count();
    assert!(nodes >= 10, "{m}");
    for want in [
        "KVM_CREATE_VM",
        "KVM_SET_USER_MEMORY_REGION",
        "KVM_CREATE_VCPU",
        "run{\"KVM_RUN<br/>15 calls\"}",
        "exit 2 KVM_EXIT_IO out port 0xe9 (print8bit)<br/>x 14",
        "xend[\"exit 5 KVM_EXIT_HLT\"]",
        "KVM_GET_REGS",
    ] {
        assert!(m.contains(want), "want {want:?} in\n{m}");
    }
    // every edge joins declared nodes
    for l in m
        .lines()
        .filter(|l| l.contains("-->") || l.contains("-.->"))
    {
        let ids: Vec<_> = l
            .split(['-', '>', '.'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for id in ids {
            assert!(
                m.lines().any(|d| d.trim_start().starts_with(id)
                    && (d.contains("[\"") || d.contains("{\"") || d.contains("([\""))),
                "undeclared {id} in\n{m}"
            );
        }
    }
    // the trace file must be creatable
    let o = host(&[
        "run",
        "hello",
        "--trace-kvm",
        "--trace-file",
        "/nonexistent/dir/x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8(o.stderr)
            .unwrap()
            .starts_with("host: error: cannot create /nonexistent/dir/x")
    );
}

#[test]
fn cpuid_is_set_up_only_for_guests_that_ask() {
    let cpuid_calls = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_host"))
            .args(args)
            .arg("--trace-kvm")
            .output()
            .expect("host");
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (
            err.contains("KVM_GET_SUPPORTED_CPUID"),
            err.contains("KVM_SET_CPUID2"),
        )
    };
    // hello's note does not ask: neither call
    assert_eq!(cpuid_calls(&["run", "hello"]), (false, false));
    // a user program (the guest kernel needs SYSCALL) asks through user_program!
    assert_eq!(cpuid_calls(&["run", "user_cpuid"]), (true, true));
    // a flat image cannot ask: it gets them
    let hlt = common::temp_file("hlt.bin", &[0xf4]);
    assert_eq!(
        cpuid_calls(&["run", "--flat", "0x100000", hlt.to_str().unwrap()]),
        (true, true)
    );
}
