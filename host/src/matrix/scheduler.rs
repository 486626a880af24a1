//! The scheduler loop: every VM's vCPU run from the calling thread, one
//! turn at a time.

use super::fair::{Fair, Step};
use super::options::{MatrixError, MatrixOptions, Policy, weights_for};
use super::report::*;
use super::setup::{rss_kib, set_up};
use super::wrr::Wrr;
use crate::devices::hypercall::Io;
use crate::kvm::{KvmError, vcpu::is_kick};
use crate::signals::{self, Timer};
use crate::stats::{Dir, ExitReason};
use kvm_ioctls::VcpuExit;
use std::io::Write;
use std::time::Duration;

/// Tag of the quantum timer's signals (see `signals::take_kicks`).
const QUANTUM_TAG: usize = 1;
/// Tag of the `--duration` timer.
const DURATION_TAG: usize = 2;
/// Tag of the timer that ends a turn that makes up lost time (`fair`).
const BUDGET_TAG: usize = 3;

/// Sets up the VMs, then runs them all from the calling thread. Event lines
/// go to `out`.
pub fn run(opts: &MatrixOptions, out: &mut dyn Write) -> Result<MatrixReport, MatrixError> {
    if opts.vms.is_empty() {
        return Err(MatrixError::Weights("no VMs to run".into()));
    }
    // `--vm NAME:count=N`: N VMs of NAME, each with the entry's weight
    let entries = super::setup::counts(&opts.vms)?;
    let per_entry = weights_for(entries.len(), &opts.weights, opts.policy)?;
    let weights: Vec<u32> = entries
        .iter()
        .zip(&per_entry)
        .flat_map(|((_, n), &w)| std::iter::repeat_n(w, *n))
        .collect();
    let names: Vec<String> = entries
        .iter()
        .flat_map(|(name, n)| std::iter::repeat_n(name.clone(), *n))
        .collect();
    let weight_sum: u32 = weights.iter().sum();
    if opts.policy == Policy::Preempt && opts.quantum < crate::config::MIN_PERIOD {
        return Err(MatrixError::Weights(format!(
            "--quantum {:?} is shorter than the {:?} this host can serve: the timer would leave the VMs no time to run",
            opts.quantum,
            crate::config::MIN_PERIOD
        )));
    }
    let setup_start = signals::monotonic_ns();
    let mut gs = set_up(opts, &names, &weights, out)?;
    let setup_ns = signals::monotonic_ns() - setup_start;
    let rss_kib_after_setup = rss_kib();
    let mask = signals::arm_thread()?;
    for g in &gs {
        g.vm.vcpu().set_signal_mask(mask, &mut None)?;
    }
    let quantum_ns = opts.quantum.as_nanos() as u64;
    let qtimer = match opts.policy {
        Policy::Preempt => Some(Timer::tagged(QUANTUM_TAG)?),
        Policy::OnExit => None,
    };
    // ends a turn between ticks when what it makes up is less than a
    // quantum; the quantum timer keeps its schedule
    let btimer = match opts.policy {
        Policy::Preempt => Some(Timer::tagged(BUDGET_TAG)?),
        Policy::OnExit => None,
    };
    let mut budget_armed = false;
    let dtimer = match opts.duration {
        Some(_) => Some(Timer::tagged(DURATION_TAG)?),
        None => None,
    };
    // from here a SIGINT/SIGTERM kicks this thread
    let _active = signals::Active::enter()?;
    if opts.seccomp {
        // before the clock starts: building the filter takes time that
        // would otherwise come out of the first quantum
        crate::seccomp::apply(None)?;
    }
    if let (Some(t), Some(d)) = (&dtimer, opts.duration) {
        t.arm(d.max(Duration::from_nanos(1)))?;
    }
    let start = signals::monotonic_ns();
    let deadline = opts.duration.map(|d| start + d.as_nanos() as u64);
    let mut tick_base = start + quantum_ns;
    let mut tick_idx: u64 = 0;
    if let Some(t) = &qtimer {
        t.arm_periodic(tick_base, opts.quantum)?;
    }

    let mut wrr = Wrr::new(&weights);
    let mut fair = Fair::new(gs.len(), quantum_ns);
    let mut rearmed = false;
    let mut runnable = vec![true; gs.len()];
    let mut turns: Vec<Turn> = Vec::new();
    let mut ticks: Vec<Tick> = Vec::new();
    let mut handed: u64 = 1;
    let mut cur = wrr
        .next(&runnable)
        .ok_or_else(|| MatrixError::Weights("no VMs to run".into()))?;
    gs[cur].quanta = 1;
    let mut budget = fair.budget(cur);
    let mut turn_cpu = signals::thread_cpu_ns();
    // whether the running turn's CPU time is in `fair` already
    let mut charged = false;
    let mut turn_start = 0;
    // whether the running turn is still to be recorded when the loop ends
    let mut turn_open = true;
    let since = |t: u64| t.saturating_sub(start);

    let stop = loop {
        if signals::interrupted() {
            // a SIGINT/SIGTERM before this thread could take kicks
            break MatrixStop::Interrupted;
        }
        let g = &mut gs[cur];
        if opts.events {
            writeln!(out, "VMFD: {} started running", g.vmfd)?;
        }
        let t0 = signals::monotonic_ns();
        let r = g.vm.vcpu_mut().run();
        let t1 = signals::monotonic_ns();
        g.run_ns += t1 - t0;
        let fd = g.vmfd;
        let reason = |out: &mut dyn Write, code: u32, name: &str| -> std::io::Result<()> {
            if opts.events {
                if opts.policy == Policy::Preempt {
                    writeln!(out, "Time: {:.6}", since(t1) as f64 / 1e9)?;
                }
                writeln!(out, "VMFD: {fd} stopped running - exit reason: {code}")?;
                writeln!(out, "VMFD: {fd} {name}")?;
            }
            Ok(())
        };
        // Whether the turn ends, and whether by the quantum timer.
        let (switch, by_timer) = match r {
            Err(e) if is_kick(&e) => {
                g.stats.record(ExitReason::Intr);
                reason(out, kvm_bindings::KVM_EXIT_INTR, "KVM_EXIT_INTR")?;
                let k = signals::take_kicks(QUANTUM_TAG, BUDGET_TAG);
                if signals::interrupted() {
                    break MatrixStop::Interrupted;
                }
                if deadline.is_some_and(|d| t1 >= d) {
                    break MatrixStop::Duration;
                }
                if k.ticks > 0 {
                    tick_idx += u64::from(k.ticks);
                    ticks.push(Tick {
                        expected_ns: tick_base + (tick_idx - 1) * quantum_ns,
                        returned_ns: t1,
                        missed: k.ticks - 1,
                        rearmed: std::mem::take(&mut rearmed),
                    });
                }
                // (a budget signal of a turn that has ended already is stale)
                let budget_due = k.second > 0 && std::mem::take(&mut budget_armed);
                if k.ticks > 0 || budget_due {
                    // the turn ends once its CPU-time budget is used (`fair`)
                    let used = signals::thread_cpu_ns() - turn_cpu;
                    match fair.step(budget, used) {
                        Step::EndTurn => (true, true),
                        step => {
                            if let (Step::ContinueFor(ns), Some(b)) = (step, &btimer) {
                                b.arm(Duration::from_nanos(ns))?;
                                budget_armed = true;
                            }
                            if opts.events {
                                writeln!(
                                    out,
                                    "VMFD: {fd} turn goes on: {:.3} ms of CPU time to make up",
                                    budget.saturating_sub(used) as f64 / 1e6
                                )?;
                            }
                            (false, false)
                        }
                    }
                } else {
                    (false, false)
                }
            }
            Err(e) => return Err(KvmError::ioctl("KVM_RUN")(e).into()),
            Ok(exit) => {
                let on_exit = opts.policy == Policy::OnExit;
                match exit {
                    VcpuExit::IoOut(port, data) => {
                        let io = Io::out(data);
                        g.stats.record_io(Dir::Out, port);
                        reason(out, kvm_bindings::KVM_EXIT_IO, "KVM_EXIT_IO")?;
                        if opts.events {
                            writeln!(out, "VMFD: {fd} out port: {port}, data: {}", io.value)?;
                        }
                        (on_exit, false)
                    }
                    VcpuExit::IoIn(port, data) => {
                        data.fill(0);
                        g.stats.record_io(Dir::In, port);
                        reason(out, kvm_bindings::KVM_EXIT_IO, "KVM_EXIT_IO")?;
                        if opts.events {
                            writeln!(out, "VMFD: {fd} in port: {port}, data: 0")?;
                        }
                        (on_exit, false)
                    }
                    VcpuExit::MmioRead(addr, data) => {
                        data.fill(0xff);
                        g.stats.record_mmio(Dir::In, addr);
                        reason(out, kvm_bindings::KVM_EXIT_MMIO, "KVM_EXIT_MMIO")?;
                        (on_exit, false)
                    }
                    VcpuExit::MmioWrite(addr, _) => {
                        g.stats.record_mmio(Dir::Out, addr);
                        reason(out, kvm_bindings::KVM_EXIT_MMIO, "KVM_EXIT_MMIO")?;
                        (on_exit, false)
                    }
                    VcpuExit::Hlt => {
                        g.stats.record(ExitReason::Hlt);
                        reason(out, kvm_bindings::KVM_EXIT_HLT, "KVM_EXIT_HLT")?;
                        g.state = VmState::Halted;
                        runnable[cur] = false;
                        (true, false)
                    }
                    _ => {
                        // any other exit is fatal, as in `host run`
                        let vcpu = g.vm.vcpu_mut();
                        let (r, fault) = vcpu.fault();
                        g.stats.record(r);
                        let code = vcpu.kvm_run().exit_reason;
                        reason(out, code, r.name())?;
                        let rip = vcpu.regs(&mut None).map(|r| r.rip).unwrap_or(0);
                        g.state = VmState::Faulted {
                            what: format!("{fault} at RIP {rip:#x}"),
                        };
                        runnable[cur] = false;
                        (true, false)
                    }
                }
            }
        };
        if !switch {
            continue;
        }
        if let (Some(b), true) = (&btimer, std::mem::take(&mut budget_armed)) {
            b.arm(Duration::ZERO)?;
        }
        let now_cpu = signals::thread_cpu_ns();
        fair.charge(cur, now_cpu - turn_cpu);
        turn_cpu = now_cpu;
        charged = true;
        if opts.record_turns {
            // every turn on its own, also when one VM gets two in a row
            turns.push(Turn {
                vm: cur,
                start_ns: turn_start,
                end_ns: since(t1),
            });
            turn_open = false;
        }
        if opts.quanta.is_some_and(|q| handed >= q) {
            break MatrixStop::Quanta;
        }
        let Some(next) = wrr.next(&runnable) else {
            break MatrixStop::AllStopped;
        };
        if let (Some(t), false) = (&qtimer, by_timer) {
            // The turn ended early (the VM halted or crashed): the next VM
            // gets a whole quantum from now, and a tick already queued for
            // the old schedule must not cut it short.
            tick_base = signals::monotonic_ns() + quantum_ns;
            tick_idx = 0;
            t.arm_periodic(tick_base, opts.quantum)?;
            let _ = signals::take_kicks(QUANTUM_TAG, BUDGET_TAG);
            rearmed = true;
        }
        cur = next;
        budget = fair.budget(cur);
        charged = false;
        gs[cur].quanta += 1;
        handed += 1;
        turn_start = since(signals::monotonic_ns());
        turn_open = true;
    };
    let end = signals::monotonic_ns();
    if !charged {
        // the turn the loop stopped in
        fair.charge(cur, signals::thread_cpu_ns() - turn_cpu);
    }
    drop(qtimer);
    drop(btimer);
    drop(dtimer);
    if opts.record_turns && turn_open {
        turns.push(Turn {
            vm: cur,
            start_ns: turn_start,
            end_ns: since(end),
        });
    }
    out.flush()?;
    let total_cpu: u64 = (0..gs.len()).map(|i| fair.cpu_ns(i)).sum();
    let mut vms = Vec::new();
    for (i, g) in gs.into_iter().enumerate() {
        let regs = g.vm.vcpu().regs(&mut None)?;
        vms.push(VmReport {
            name: g.name,
            vmfd: g.vmfd,
            weight: g.weight,
            size: g.size,
            quanta: g.quanta,
            run_ns: g.run_ns,
            cpu_ns: fair.cpu_ns(i),
            share: if total_cpu == 0 {
                0.0
            } else {
                fair.cpu_ns(i) as f64 / total_cpu as f64
            },
            target_share: f64::from(g.weight) / f64::from(weight_sum),
            exits: g.stats.reasons(),
            counter: regs.rax as u16,
            state: g.state,
            stats: g.stats,
        });
    }
    Ok(MatrixReport {
        policy: opts.policy,
        quantum_ns,
        elapsed_ns: end - start,
        setup_ns,
        rss_kib_after_setup,
        stop,
        vms,
        turns,
        ticks,
    })
}
