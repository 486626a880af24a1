//! Interrupts, both ways a VMM can deliver them (docs/interrupts.md): the
//! user-space controller (KVM_INTERRUPT at the guest's HLT exit, or when
//! the interrupt window opens) and KVM's in-kernel PIC and PIT (HLT sleeps
//! in the kernel; the host still ends a `cli; hlt` run), with the host
//! raising an IRQ line through an irqfd, and the local APICs (timer, IPIs).
//! Guests of guest-kernel/src/bin: irq_user (every mode), pit_ticks and
//! irq_line (real mode), lapic_timer and ipi (long mode, guest_rt::interrupts).

mod common;

use std::time::{Duration, Instant};

struct Ran {
    code: Option<i32>,
    out: String,
    err: String,
    took: Duration,
}

fn run(args: &[&str]) -> Ran {
    let t0 = Instant::now();
    let o = common::host(args);
    Ran {
        code: o.status.code(),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
        took: t0.elapsed(),
    }
}

/// The user-space controller: each HLT exit waits for the next tick and
/// the host injects vector 0x20 (5 ticks: 5 HLT exits, then the last).
#[test]
fn the_host_injects_vectors_at_the_guests_hlt_exits() {
    let r = run(&["run", "irq_user", "--mode", "real", "--inject-every", "2ms"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out, "5 interrupts: vector 0x20, injected by the host\n");
    assert!(r.err.contains("host: check 42: pass"), "{}", r.err);
    assert!(
        r.err
            .contains("  KVM_EXIT_HLT                     (5)          6\n"),
        "{}",
        r.err
    );
    // the trace shows the five injections
    let r = run(&[
        "run",
        "irq_user",
        "--mode",
        "real",
        "--inject-every",
        "2ms",
        "--trace-kvm",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let injections = r
        .err
        .lines()
        .filter(|l| l.contains("ioctl(") && l.contains("KVM_INTERRUPT"))
        .count();
    assert_eq!(injections, 5, "{}", r.err);
    assert!(
        r.err
            .contains("interrupts: 5 delivered by KVM_INTERRUPT\n  vector 0x20 "),
        "{}",
        r.err
    );
}

/// The same in long mode through guest_rt::interrupts' IDT, and on the
/// vCPU `@N` names (the others spin with interrupts on and take none).
/// (The 32-bit modes' IRET cannot be emulated by kvm-pvm at ring 0: the
/// nested kvm_amd lane runs them, tests/nested.rs.)
#[test]
fn long_mode_handlers_take_injected_vectors_on_the_vcpu_named() {
    let r = run(&["run", "irq_user", "--inject-every", "2ms"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out, "5 interrupts: vector 0x20, injected by the host\n");
    assert!(r.err.contains("host: check 42: pass"), "{}", r.err);
    for (at, want) in [("2ms@1", "0=0 1=5"), ("2ms@0", "0=5 1=0")] {
        let r = run(&["run", "irq_user", "--vcpus", "2", "--inject-every", at]);
        assert_eq!(r.code, Some(0), "{at}: {}", r.err);
        assert_eq!(
            r.out,
            format!("5 interrupts: vector 0x20, injected by the host\ntaken by vCPU: {want}\n"),
            "{at}: {}",
            r.err
        );
    }
}

/// The local APIC timer of the in-kernel controller, periodic, one-shot
/// and TSC-deadline (this KVM offers TSC_DEADLINE_TIMER:
/// ../shared/notes/kvm-here.md). Bound: 20 + 3 + 3 ms of ticks, the
/// 2 ms halt watch; 10 s leaves room for a busy machine.
#[test]
fn the_lapic_timer_ticks_in_its_three_modes() {
    let r = run(&["run", "lapic_timer"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(
        r.out,
        "periodic: 10 ticks every 2 ms on vector 0x30 (APIC id 0)\n\
         one-shot: 3 ticks, 1 ms each, re-armed; count left 0\n\
         TSC-deadline: 3 ticks, each 1 ms of TSC ahead\n"
    );
    assert!(r.err.contains("host: check 42: pass"), "{}", r.err);
    assert!(r.took < Duration::from_secs(10), "{:?}", r.took);
}

/// vCPU 0 wakes a halted vCPU 1 with an IPI (the in-kernel local APICs;
/// the host makes every vCPU runnable without INIT/SIPI).
#[test]
fn an_ipi_wakes_a_halted_vcpu() {
    for n in ["2", "4"] {
        let r = run(&["run", "ipi", "--vcpus", n, "--timeout", "20s"]);
        assert_eq!(r.code, Some(0), "{n}: {}", r.err);
        assert_eq!(
            r.out,
            "vcpu 0 (APIC id 0): IPI vector 0x40 to APIC id 1\n\
             vcpu 1 (APIC id 1): woken from HLT by the IPI\n\
             vcpu 0: vcpu 1 answered\n",
            "{n}: {}",
            r.err
        );
        assert!(r.err.contains("host: check 42: pass"), "{}", r.err);
    }
}

/// The lines of `prog` in `out`, by their index in the output.
fn lines_of(out: &str, prog: &str) -> Vec<(usize, String)> {
    out.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with(&format!("{prog}: line ")))
        .map(|(i, l)| (i, l.to_string()))
        .collect()
}

/// The guest kernel runs two user programs that never yield and preempts
/// them on its local APIC timer: each program's lines come in order, and
/// they interleave (each program spins three quanta between its lines, so
/// neither can print all five before the other starts). With `-- fault`
/// beta ends in a #GP after its second line and alpha runs on.
#[test]
fn the_guest_kernel_preempts_its_programs_round_robin() {
    let r = run(&["run", "round_robin", "--timeout", "20s"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let (a, b) = (lines_of(&r.out, "alpha"), lines_of(&r.out, "beta"));
    for (prog, got) in [("alpha", &a), ("beta", &b)] {
        let want: Vec<String> = (1..=5).map(|i| format!("{prog}: line {i} of 5")).collect();
        let texts: Vec<String> = got.iter().map(|(_, l)| l.clone()).collect();
        assert_eq!(texts, want, "{}", r.out);
    }
    assert!(
        b[0].0 < a[4].0 && a[0].0 < b[4].0,
        "not interleaved:\n{}",
        r.out
    );
    let summary = r
        .out
        .lines()
        .find(|l| {
            l.starts_with("kernel: 2 programs round-robin on the LAPIC timer (1 ms quantum): ")
        })
        .unwrap_or_else(|| panic!("no summary:\n{}", r.out));
    assert!(summary.ends_with("exit statuses 0 and 0"), "{summary}");
    assert!(r.err.contains("host: check 42: pass"), "{}", r.err);

    let r = run(&["run", "round_robin", "--timeout", "20s", "--", "fault"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(lines_of(&r.out, "alpha").len(), 5, "{}", r.out);
    assert_eq!(lines_of(&r.out, "beta").len(), 2, "{}", r.out);
    assert!(r.out.contains("user program: #GP at RIP 0x"), "{}", r.out);
    assert!(r.out.contains("exit statuses 0 and 141\n"), "{}", r.out);
}

/// The classic PC: the guest programs the in-kernel PIC and PIT and takes
/// IRQ 0 through the IVT; HLT no longer exits, yet the run ends at its
/// `cli; hlt`. Bound: 10 ticks at ~100 Hz are 0.1 s; the host looks for
/// the final HLT every 2 ms; 10 s leaves room for a busy machine.
#[test]
fn classic_pc_code_takes_pit_ticks_from_the_in_kernel_pic() {
    let r = run(&["run", "pit_ticks", "--mode", "real", "--trace-kvm"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(
        r.out,
        "10 PIT ticks: IRQ 0, vector 8, through the in-kernel PIC\n"
    );
    assert!(r.err.contains("host: check 42: pass"), "{}", r.err);
    assert!(r.err.contains("KVM_CREATE_IRQCHIP"), "{}", r.err);
    assert!(r.err.contains("KVM_CREATE_PIT2"), "{}", r.err);
    assert!(r.took < Duration::from_secs(10), "{:?}", r.took);
}

/// `--inject-every` with the in-kernel controller raises an IRQ line
/// through an irqfd.
#[test]
fn the_host_raises_an_irq_line_through_an_irqfd() {
    let r = run(&[
        "run",
        "irq_line",
        "--mode",
        "real",
        "--inject-every",
        "2ms:5",
        "--trace-kvm",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(
        r.out,
        "5 interrupts: IRQ 5, vector 0x25, raised through an irqfd\n"
    );
    assert!(r.err.contains("KVM_IRQFD"), "{}", r.err);
    assert!(r.err.contains("gsi 5"), "{}", r.err);
    assert!(r.err.contains("interrupts: "), "{}", r.err);
    assert!(
        r.err
            .contains("delivered by KVM_IRQFD (eventfd write)\n  IRQ line 5 "),
        "{}",
        r.err
    );
    // the same with KVM_IRQ_LINE: raise, then lower, each traced
    let r = run(&[
        "run",
        "irq_line",
        "--mode",
        "real",
        "--inject-every",
        "2ms:5",
        "--raise-with",
        "irq-line",
        "--trace-kvm",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.err.contains("KVM_IRQ_LINE"), "{}", r.err);
    assert!(r.err.contains("irq 5, level 1"), "{}", r.err);
    assert!(r.err.contains("irq 5, level 0"), "{}", r.err);
    assert!(
        r.err.contains("delivered by KVM_IRQ_LINE\n  IRQ line 5 "),
        "{}",
        r.err
    );
}

/// `--json` counts the injections by vector, `host layout` shows the
/// interrupt state at the start (the in-kernel controllers here).
#[test]
fn json_and_layout_show_interrupts() {
    let r = run(&[
        "run",
        "irq_user",
        "--mode",
        "real",
        "--inject-every",
        "2ms",
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    let i = &v["exits"]["interrupts"];
    assert_eq!(i["via"], "kvm_interrupt", "{i}");
    assert_eq!(i["total"], 5, "{i}");
    assert_eq!(i["counts"][0]["n"], 0x20, "{i}");
    let r = run(&["layout", "pit_ticks", "--mode", "real"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    for want in [
        "interrupts: KVM's in-kernel PIC, IOAPIC, local APICs and PIT",
        "IVT at 0x0, limit 0xffff:",
        "0x00-0xff  -> 0x500.. (8 bytes apart): the host's exception stubs",
        "local APIC: base 0xfee00000 (xAPIC, BSP), id 0, software-disabled",
        "IOAPIC at 0xfec00000: every pin masked",
    ] {
        assert!(r.out.contains(want), "{want}: {}", r.out);
    }
    let r = run(&["layout", "hello"]);
    assert!(
        r.out.contains("interrupts: no controller (--irqchip none)"),
        "{}",
        r.out
    );
}

/// A guest asleep with interrupts on and nothing to wake it is ended by
/// `--timeout` (exit 5), under the in-kernel controller too. Bound as
/// above.
#[test]
fn a_guest_asleep_for_good_is_ended_by_the_timeout() {
    let r = run(&[
        "run",
        "irq_user",
        "--mode",
        "real",
        "--irqchip",
        "kernel",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(r.code, Some(5), "{}", r.err);
    assert!(
        r.err.contains("stopped: timeout after 0.300 s"),
        "{}",
        r.err
    );
    assert!(r.took < Duration::from_secs(10), "{:?}", r.took);
}

/// The user-space controller with nothing to inject: the guest's `sti;
/// hlt` ends the run, and one line says why.
#[test]
fn a_hlt_with_interrupts_on_and_nothing_to_come_is_explained() {
    let r = run(&["run", "irq_user", "--mode", "real"]);
    assert_eq!(r.code, Some(4), "the 42 check fails: {}", r.err);
    assert!(
        r.err.contains(
            "host: the guest halted with interrupts on, but nothing will interrupt it (--irqchip user without --inject-every for this vCPU): the HLT ends the run"
        ),
        "{}",
        r.err
    );
}

#[test]
fn interrupt_options_that_cannot_work_are_refused_in_one_line() {
    for (args, want) in [
        (
            &["run", "hello", "--inject-every", "1ms"][..],
            "--inject-every needs an interrupt controller, and hello asks for none: add --irqchip user",
        ),
        (
            &[
                "run",
                "irq_user",
                "--mode",
                "real",
                "--inject-every",
                "1ms:300",
            ][..],
            "300 is past 255, the last vector",
        ),
        (
            &[
                "run",
                "irq_user",
                "--mode",
                "real",
                "--inject-every",
                "10us",
            ][..],
            "is shorter than the",
        ),
        (
            &["run", "irq_user", "--inject-every", "1ms@2"][..],
            "--inject-every ...@2: the VM has 1 vCPU(s), numbered from 0",
        ),
        (
            &["run", "irq_user", "--inject-every", "1ms@x"][..],
            "\"x\" after @ is not a vCPU number",
        ),
        (
            &["run", "ipi", "--vcpus", "2", "--inject-every", "1ms:5@1"][..],
            "the in-kernel controller sends IRQ line 5 where the guest's PIC or IOAPIC routes it",
        ),
    ] {
        let r = run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.err);
        assert!(r.err.contains(want), "{args:?}: {}", r.err);
    }
    // a controller the guest does not use changes nothing
    let r = run(&["run", "hello", "--irqchip", "kernel"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (Some(0), "Hello, world!\n"),
        "{}",
        r.err
    );
    let r = run(&["run", "hello", "--irqchip", "user"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (Some(0), "Hello, world!\n"),
        "{}",
        r.err
    );
}

/// `host bench`'s interrupt stage prints irq_floor's metrics (p50, p99,
/// mean of each path); a few injections are enough to show the stage
/// works (the figures themselves live in the benchmark, not here).
#[test]
fn the_bench_measures_the_three_ways_in() {
    let r = run(&[
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
        "0",
        "--irq-injections",
        "50",
    ]);
    assert_eq!(r.code, Some(0), "{}{}", r.out, r.err);
    for path in ["kvm_interrupt_rtt", "irq_line_rtt", "irqfd_rtt"] {
        for stat in ["p50", "p99", "mean"] {
            let name = format!("{path}_{stat} ");
            let v: f64 = r
                .out
                .lines()
                .find_map(|l| l.strip_prefix(&name)?.strip_suffix(" us")?.parse().ok())
                .unwrap_or_else(|| panic!("no {name}: {}", r.out));
            assert!(v > 0.0, "{name}{v}");
        }
    }
    // the notification loop, bound and not (no exit against an exit each)
    for name in ["ioeventfd_pio_ns ", "userspace_pio_ns "] {
        let v: f64 = r
            .out
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_suffix(" ns")?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}: {}", r.out));
        assert!(v > 0.0, "{name}{v}");
    }
}
