//! `host matrix`: several VMs, one vCPU each, all run by ONE host thread.
//!
//! The host regains the CPU only through a VM exit. With `Policy::OnExit`
//! every I/O (or MMIO) exit ends the running VM's turn. With
//! `Policy::Preempt` a periodic POSIX timer sends the kick signal to this
//! thread; the signal is blocked here and unblocked only inside KVM_RUN
//! (KVM_SET_SIGNAL_MASK), so it interrupts a guest that never exits
//! (KVM_RUN returns EINTR: the assignment's KVM_EXIT_INTR, reason 10), and
//! one that arrives while the host is handling an exit stays pending and
//! ends the next KVM_RUN at once: it is never lost. Turns are handed out by
//! smooth weighted round robin, so weights 7:3 give VM1 7 of every 10 turns,
//! interleaved (A A B A A B A B A A ...), not in blocks: the light VM never
//! waits more than two turns.

use crate::exit::{Dir, ExitReason, ExitStats, ReasonCount};
use crate::run::{self, RunError};
use crate::signals::{self, Timer};
use crate::vm::{CpuMode, Vm, VmConfig, VmError};
use hypercall_abi::layout;
use kvm_ioctls::VcpuExit;
use serde::Serialize;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

/// What ends a VM's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Every I/O or MMIO exit (assignment 2a).
    OnExit,
    /// The quantum timer only; exits are handled and the same VM goes on
    /// (assignment 2b/2c).
    Preempt,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// Built guest names (their `.kvmwb.real` code) or flat real-mode files.
    pub vms: Vec<String>,
    /// One weight per VM (empty: 7:3 for two VMs, else 1 each).
    pub weights: Vec<u32>,
    /// What ends a turn.
    pub policy: Policy,
    /// The timer period (preempt).
    pub quantum: Duration,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many turns in all.
    pub quanta: Option<u64>,
    /// Guest memory per VM.
    pub mem_size: u64,
    /// The KVM device.
    pub kvm_path: PathBuf,
    /// Print the event lines.
    pub events: bool,
    /// Record every turn (for `--timeline`).
    pub record_turns: bool,
    /// Run the loop under the seccomp filter.
    pub seccomp: bool,
}

impl Default for MatrixOptions {
    fn default() -> Self {
        MatrixOptions {
            vms: vec!["guest1".into(), "guest2".into()],
            weights: Vec::new(),
            policy: Policy::Preempt,
            quantum: Duration::from_secs(1),
            duration: None,
            quanta: None,
            mem_size: 1 << 20,
            kvm_path: PathBuf::from("/dev/kvm"),
            events: true,
            record_turns: false,
            seccomp: false,
        }
    }
}

/// Why the matrix could not run.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// Unknown guest, unreadable file or refused image.
    #[error(transparent)]
    Guest(#[from] RunError),
    /// Bad weights.
    #[error("{0}")]
    Weights(String),
    /// KVM failed.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// Timer or signal set-up failed.
    #[error(transparent)]
    Signal(#[from] signals::SignalError),
    /// The seccomp filter could not be installed.
    #[error(transparent)]
    Jail(#[from] crate::jail::JailError),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// One turn: a VM from switch-in to switch-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Turn {
    /// Index into the VMs.
    pub vm: usize,
    /// ns since the start.
    pub start_ns: u64,
    /// ns since the start.
    pub end_ns: u64,
}

/// One quantum-timer expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tick {
    /// When the timer expired (CLOCK_MONOTONIC ns).
    pub expected_ns: u64,
    /// When KVM_RUN returned EINTR for it.
    pub returned_ns: u64,
    /// Expiries that were folded into this signal (overruns).
    pub missed: u32,
}

/// How a VM ended up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VmState {
    /// Still runnable when the matrix stopped.
    Running,
    /// It executed HLT.
    Halted,
    /// It crashed.
    Faulted {
        /// What happened.
        what: String,
    },
}

/// Per-VM results.
#[derive(Debug, Clone, Serialize)]
pub struct VmReport {
    /// Guest name or path.
    pub name: String,
    /// The VM's file descriptor (the assignment's VMFD).
    pub vmfd: i32,
    /// Weight.
    pub weight: u32,
    /// Image size in bytes.
    pub size: u64,
    /// Turns received.
    pub quanta: u64,
    /// Time inside KVM_RUN.
    pub run_ns: u64,
    /// run_ns / all VMs' run_ns.
    pub share: f64,
    /// Exits by reason.
    pub exits: Vec<ReasonCount>,
    /// AX at the end (the guest's progress counter).
    pub counter: u16,
    /// How it ended.
    #[serde(flatten)]
    pub state: VmState,
    #[serde(skip)]
    stats: ExitStats,
}

impl VmReport {
    /// Exit counts.
    pub fn stats(&self) -> &ExitStats {
        &self.stats
    }
}

/// Why the matrix stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixStop {
    /// `--duration` passed.
    Duration,
    /// `--quanta` turns were handed out.
    Quanta,
    /// Every VM halted or faulted.
    AllStopped,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// What a matrix run produced.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixReport {
    /// The policy.
    pub policy: Policy,
    /// The quantum.
    pub quantum_ns: u64,
    /// Wall time of the run loop.
    pub elapsed_ns: u64,
    /// Why it stopped.
    pub stop: MatrixStop,
    /// Per VM.
    pub vms: Vec<VmReport>,
    /// Every turn (with `record_turns`).
    #[serde(skip)]
    pub turns: Vec<Turn>,
    /// Every quantum-timer expiry that ended a KVM_RUN.
    #[serde(skip)]
    pub ticks: Vec<Tick>,
}

/// Tag of the quantum timer's signals (see `signals::take_kicks`).
const QUANTUM_TAG: usize = 1;
/// Tag of the `--duration` timer.
const DURATION_TAG: usize = 2;

/// Smooth weighted round robin (as in nginx): each pick adds every runnable
/// VM's weight to its credit, takes the VM with the most credit and charges
/// it the total. Over any `sum(weights)` picks each VM gets exactly its
/// weight, spread out as evenly as possible.
#[derive(Debug, Clone)]
pub struct Wrr {
    weight: Vec<i64>,
    credit: Vec<i64>,
}

impl Wrr {
    /// A scheduler for these weights.
    pub fn new(weights: &[u32]) -> Wrr {
        Wrr {
            weight: weights.iter().map(|&w| i64::from(w)).collect(),
            credit: vec![0; weights.len()],
        }
    }

    /// The next VM among the runnable ones.
    pub fn next(&mut self, runnable: &[bool]) -> Option<usize> {
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (i, _) in runnable.iter().enumerate().filter(|(_, r)| **r) {
            self.credit[i] += self.weight[i];
            total += self.weight[i];
            if best.is_none_or(|b| self.credit[i] > self.credit[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.credit[b] -= total;
        Some(b)
    }
}

struct Guest {
    name: String,
    vm: Vm,
    vmfd: i32,
    weight: u32,
    size: u64,
    quanta: u64,
    run_ns: u64,
    stats: ExitStats,
    state: VmState,
}

fn load(name: &str, cfg: &VmConfig) -> Result<(Vm, u64), MatrixError> {
    let (_, bytes) = run::read_guest(name)?;
    // the assignment's guests are flat binaries; ours are ELFs with real-mode code
    let flat = (!bytes.starts_with(b"\x7fELF")).then_some(layout::REAL_LOAD);
    let plan = run::plan_guest(name, &bytes, flat, cfg)?;
    let size = plan.segments.iter().map(|s| s.file.len() as u64).sum();
    let mut vm = Vm::new(cfg)?;
    vm.load(&plan, &bytes)?;
    Ok((vm, size))
}

/// The weights to use: as given (one per VM), or 7:3 for two VMs, 1 each
/// otherwise.
pub fn weights_for(n: usize, given: &[u32]) -> Result<Vec<u32>, MatrixError> {
    if given.is_empty() {
        return Ok(if n == 2 { vec![7, 3] } else { vec![1; n] });
    }
    if given.len() != n {
        return Err(MatrixError::Weights(format!(
            "{} weights for {n} VMs: give one weight per VM, e.g. --weights {}",
            given.len(),
            vec!["1"; n].join(":")
        )));
    }
    if given.contains(&0) {
        return Err(MatrixError::Weights(
            "a weight of 0 would never run that VM: weights are positive integers".into(),
        ));
    }
    Ok(given.to_vec())
}

/// Parses `7:3` (or `2:1:1`).
pub fn parse_weights(s: &str) -> Result<Vec<u32>, String> {
    s.split(':')
        .map(|w| {
            w.trim()
                .parse::<u32>()
                .ok()
                .filter(|&w| (1..=1000).contains(&w))
                .ok_or_else(|| format!("'{w}' is not a weight: weights are integers from 1 to 1000, separated by ':' (e.g. 7:3)"))
        })
        .collect()
}

/// Sets up the VMs, then runs them all from the calling thread. Event lines
/// go to `out`.
pub fn run(opts: &MatrixOptions, out: &mut dyn Write) -> Result<MatrixReport, MatrixError> {
    if opts.vms.is_empty() {
        return Err(MatrixError::Weights("no VMs to run".into()));
    }
    let weights = weights_for(opts.vms.len(), &opts.weights)?;
    if opts.policy == Policy::Preempt && opts.quantum.is_zero() {
        return Err(MatrixError::Weights(
            "the quantum must be longer than 0".into(),
        ));
    }
    let cfg = VmConfig {
        mem_size: opts.mem_size,
        kvm_path: opts.kvm_path.clone(),
        mode: CpuMode::Real,
        trace: None,
        vcpus: 1,
    };
    let mut gs = Vec::new();
    for (name, &weight) in opts.vms.iter().zip(&weights) {
        let (vm, size) = load(name, &cfg)?;
        let vmfd = vm.vm_fd().as_raw_fd();
        if opts.events {
            writeln!(out, "VMFD: {vmfd}, Loaded Program with size: {size}")?;
        }
        gs.push(Guest {
            name: name.clone(),
            vm,
            vmfd,
            weight,
            size,
            quanta: 0,
            run_ns: 0,
            stats: ExitStats::default(),
            state: VmState::Running,
        });
    }
    for g in &gs {
        signals::arm_vcpu(g.vm.vcpu())?;
    }
    let quantum_ns = opts.quantum.as_nanos() as u64;
    let qtimer = match opts.policy {
        Policy::Preempt => Some(Timer::tagged(QUANTUM_TAG)?),
        Policy::OnExit => None,
    };
    let dtimer = match opts.duration {
        Some(_) => Some(Timer::tagged(DURATION_TAG)?),
        None => None,
    };
    if opts.seccomp {
        // before the clock starts: building the filter takes time that
        // would otherwise come out of the first quantum
        crate::jail::apply()?;
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
    let mut runnable = vec![true; gs.len()];
    let mut turns: Vec<Turn> = Vec::new();
    let mut ticks: Vec<Tick> = Vec::new();
    let mut handed: u64 = 1;
    let mut cur = wrr
        .next(&runnable)
        .ok_or_else(|| MatrixError::Weights("no VMs to run".into()))?;
    gs[cur].quanta = 1;
    let mut turn_start = 0;
    let since = |t: u64| t.saturating_sub(start);

    let stop = loop {
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
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                g.stats.record(ExitReason::Intr);
                reason(out, kvm_bindings::KVM_EXIT_INTR, "KVM_EXIT_INTR")?;
                let k = signals::take_kicks(QUANTUM_TAG);
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
                    });
                    (true, true)
                } else {
                    (false, false)
                }
            }
            Err(e) => {
                return Err(VmError::Kvm {
                    what: "KVM_RUN",
                    source: e,
                }
                .into());
            }
            Ok(exit) => {
                let on_exit = opts.policy == Policy::OnExit;
                match exit {
                    VcpuExit::IoOut(port, data) => {
                        let mut v = [0u8; 4];
                        let n = data.len().min(4);
                        v[..n].copy_from_slice(&data[..n]);
                        g.stats.record_io(Dir::Out, port);
                        reason(out, kvm_bindings::KVM_EXIT_IO, "KVM_EXIT_IO")?;
                        if opts.events {
                            writeln!(
                                out,
                                "VMFD: {fd} out port: {port}, data: {}",
                                u32::from_le_bytes(v)
                            )?;
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
                    other => {
                        let (r, what) = match other {
                            VcpuExit::Shutdown => (
                                ExitReason::Shutdown,
                                "triple fault (KVM_EXIT_SHUTDOWN)".to_string(),
                            ),
                            VcpuExit::FailEntry(h, _) => (
                                ExitReason::FailEntry,
                                format!(
                                    "VM entry failed (KVM_EXIT_FAIL_ENTRY), hardware reason {h:#x}"
                                ),
                            ),
                            VcpuExit::InternalError => (
                                ExitReason::InternalError,
                                "KVM internal error (KVM_EXIT_INTERNAL_ERROR)".to_string(),
                            ),
                            e => (ExitReason::Other, format!("unhandled exit {e:?}")),
                        };
                        g.stats.record(r);
                        let code = g.vm.vcpu_mut().get_kvm_run().exit_reason;
                        reason(out, code, r.name())?;
                        let rip = g.vm.vcpu().get_regs().map(|r| r.rip).unwrap_or(0);
                        g.state = VmState::Faulted {
                            what: format!("{what} at RIP {rip:#x}"),
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
        if opts.record_turns {
            let (s, e) = (turn_start, since(t1));
            match turns.last_mut() {
                Some(l) if l.vm == cur && l.end_ns == s => l.end_ns = e,
                _ => turns.push(Turn {
                    vm: cur,
                    start_ns: s,
                    end_ns: e,
                }),
            }
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
            let _ = signals::take_kicks(QUANTUM_TAG);
        }
        cur = next;
        gs[cur].quanta += 1;
        handed += 1;
        turn_start = since(signals::monotonic_ns());
    };
    let end = signals::monotonic_ns();
    drop(qtimer);
    drop(dtimer);
    if opts.record_turns {
        turns.push(Turn {
            vm: cur,
            start_ns: turn_start,
            end_ns: since(end),
        });
    }
    out.flush()?;
    let total_run: u64 = gs.iter().map(|g| g.run_ns).sum();
    let mut vms = Vec::new();
    for g in gs {
        let regs = g.vm.vcpu().get_regs().map_err(|source| VmError::Kvm {
            what: "KVM_GET_REGS",
            source,
        })?;
        vms.push(VmReport {
            name: g.name,
            vmfd: g.vmfd,
            weight: g.weight,
            size: g.size,
            quanta: g.quanta,
            run_ns: g.run_ns,
            share: if total_run == 0 {
                0.0
            } else {
                g.run_ns as f64 / total_run as f64
            },
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
        stop,
        vms,
        turns,
        ticks,
    })
}

impl MatrixReport {
    /// The text summary.
    pub fn human(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let weights: Vec<String> = self.vms.iter().map(|v| v.weight.to_string()).collect();
        let _ = writeln!(
            o,
            "host: matrix ran {} VMs for {:.3} s on one thread, policy {}, {}weights {} (stopped: {})",
            self.vms.len(),
            self.elapsed_ns as f64 / 1e9,
            match self.policy {
                Policy::OnExit => "on-exit",
                Policy::Preempt => "preempt",
            },
            match self.policy {
                Policy::Preempt => format!("quantum {:?}, ", Duration::from_nanos(self.quantum_ns)),
                Policy::OnExit => String::new(),
            },
            weights.join(":"),
            match self.stop {
                MatrixStop::Duration => "--duration",
                MatrixStop::Quanta => "--quanta",
                MatrixStop::AllStopped => "every VM halted or crashed",
                MatrixStop::Interrupted => "interrupted",
            }
        );
        let _ = writeln!(
            o,
            "  {:<16} {:>5} {:>6} {:>8} {:>11} {:>7} {:>15}  state",
            "VM", "VMFD", "weight", "quanta", "run time", "share", "counter (AX)"
        );
        for v in &self.vms {
            let state = match &v.state {
                VmState::Running => "running".to_string(),
                VmState::Halted => "halted".to_string(),
                VmState::Faulted { what } => format!("crashed: {what}"),
            };
            let _ = writeln!(
                o,
                "  {:<16} {:>5} {:>6} {:>8} {:>9.3} s {:>6.1}% {:>15}  {state}",
                v.name,
                v.vmfd,
                v.weight,
                v.quanta,
                v.run_ns as f64 / 1e9,
                v.share * 100.0,
                format!("{:#06x} ({})", v.counter, v.counter),
            );
        }
        for v in &self.vms {
            let _ = writeln!(o, "exits of {} (VMFD {}):", v.name, v.vmfd);
            for l in v.stats.table().lines().skip(1) {
                let _ = writeln!(o, "{l}");
            }
        }
        o
    }

    /// The exit code: 130 after Ctrl-C, 3 if a VM crashed, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.stop == MatrixStop::Interrupted {
            crate::run::code::INTERRUPTED
        } else if self
            .vms
            .iter()
            .any(|v| matches!(v.state, VmState::Faulted { .. }))
        {
            crate::run::code::GUEST_FAULT
        } else {
            crate::run::code::OK
        }
    }

    /// A picture of who ran when: a row per VM, a bar per turn, a time
    /// axis, each VM's share in the legend.
    pub fn timeline_svg(&self) -> String {
        use std::fmt::Write as _;
        const COLORS: [&str; 6] = [
            "#2b7bb9", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4",
        ];
        let (left, width, row, top) = (130.0, 900.0, 28.0, 40.0);
        let n = self.vms.len();
        let total = self.elapsed_ns.max(1) as f64;
        let height = top + row * n as f64 + 40.0 + 20.0 * n as f64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="12">"#,
            left + width + 20.0
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="20" font-size="14">host matrix: who ran when ({} turns, {:.3} s)</text>"#,
            self.turns.len(),
            total / 1e9
        );
        for (i, v) in self.vms.iter().enumerate() {
            let y = top + row * i as f64;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{} (VMFD {})</text>"#,
                left - 8.0,
                y + row / 2.0 + 4.0,
                xml(&v.name),
                v.vmfd
            );
            let _ = writeln!(
                s,
                r##"<rect x="{left}" y="{}" width="{width}" height="{}" fill="#f2f2f2"/>"##,
                y + 3.0,
                row - 6.0
            );
        }
        // one rect per turn, turns closer than a pixel merged
        let px = |ns: u64| left + ns as f64 / total * width;
        let mut open: Vec<Option<(f64, f64)>> = vec![None; n];
        let flush = |s: &mut String, vm: usize, (a, b): (f64, f64)| {
            let y = top + row * vm as f64 + 3.0;
            let _ = writeln!(
                s,
                r#"<rect x="{a:.2}" y="{y}" width="{:.2}" height="{}" fill="{}"/>"#,
                (b - a).max(0.5),
                row - 6.0,
                COLORS[vm % COLORS.len()]
            );
        };
        for t in &self.turns {
            let (a, b) = (px(t.start_ns), px(t.end_ns));
            match open[t.vm] {
                Some((oa, ob)) if a - ob < 1.0 => open[t.vm] = Some((oa, b.max(ob))),
                Some(r) => {
                    flush(&mut s, t.vm, r);
                    open[t.vm] = Some((a, b));
                }
                None => open[t.vm] = Some((a, b)),
            }
        }
        for (vm, r) in open.into_iter().enumerate() {
            if let Some(r) = r {
                flush(&mut s, vm, r);
            }
        }
        // time axis
        let axis_y = top + row * n as f64 + 6.0;
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
            left + width
        );
        let step = nice_step(total / 10.0);
        let mut t = 0.0;
        while t <= total {
            let x = left + t / total * width;
            let _ = writeln!(
                s,
                r#"<line x1="{x:.2}" y1="{axis_y}" x2="{x:.2}" y2="{}" stroke="black"/><text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"#,
                axis_y + 5.0,
                axis_y + 18.0,
                time_label(t)
            );
            t += step;
        }
        for (i, v) in self.vms.iter().enumerate() {
            let y = axis_y + 40.0 + 20.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}: weight {}, {} turns, {:.1}% of guest run time</text>"#,
                y - 10.0,
                COLORS[i % COLORS.len()],
                left + 18.0,
                xml(&v.name),
                v.weight,
                v.quanta,
                v.share * 100.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 1, 2 or 5 times a power of ten, at least `raw` ns.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1.0).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&v| v >= raw)
        .unwrap_or(10.0 * p)
}

fn time_label(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.3} s", n / 1e9).replace(".000 s", " s"),
        n if n >= 1e6 => format!("{} ms", (n / 1e6 * 1000.0).round() / 1000.0),
        n => format!("{} µs", (n / 1e3).round()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrr_gives_each_vm_its_weight_interleaved() {
        let mut w = Wrr::new(&[7, 3]);
        let all = [true, true];
        let seq: Vec<usize> = (0..10).map(|_| w.next(&all).unwrap()).collect();
        assert_eq!(seq.iter().filter(|&&v| v == 0).count(), 7);
        assert_eq!(seq, [0, 1, 0, 0, 0, 1, 0, 0, 1, 0]);
        // the light VM never waits more than 3 turns
        let mut w = Wrr::new(&[2, 1, 1]);
        let seq: Vec<usize> = (0..8).map(|_| w.next(&[true; 3]).unwrap()).collect();
        assert_eq!(seq.iter().filter(|&&v| v == 0).count(), 4);
        assert_eq!(seq.iter().filter(|&&v| v == 2).count(), 2);
        // a VM that is not runnable is skipped; none runnable: None
        let mut w = Wrr::new(&[1, 1]);
        assert_eq!(w.next(&[false, true]), Some(1));
        assert_eq!(w.next(&[false, true]), Some(1));
        assert_eq!(w.next(&[false, false]), None);
    }

    #[test]
    fn weights_are_checked() {
        assert_eq!(parse_weights("7:3"), Ok(vec![7, 3]));
        assert!(parse_weights("7:x").is_err());
        assert!(parse_weights("0:1").is_err());
        assert_eq!(weights_for(2, &[]).unwrap(), [7, 3]);
        assert_eq!(weights_for(3, &[]).unwrap(), [1, 1, 1]);
        assert!(
            weights_for(3, &[7, 3])
                .unwrap_err()
                .to_string()
                .contains("2 weights for 3 VMs")
        );
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(1.3e8), 2e8);
        assert_eq!(nice_step(4e6), 5e6);
        assert_eq!(time_label(2e9), "2 s");
        assert_eq!(time_label(5e6), "5 ms");
    }
}
