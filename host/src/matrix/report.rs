//! What a matrix run produced, and its text summary.

use super::options::Policy;
use crate::stats::{ExitStats, ReasonCount};
use serde::Serialize;
use std::time::Duration;

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
    /// The timer was re-armed since the tick before (a VM halted or
    /// crashed mid-turn): the time since that tick is not a quantum.
    pub rearmed: bool,
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
    /// Time inside KVM_RUN (wall clock).
    pub run_ns: u64,
    /// CPU time this VM's turns used (the scheduler thread's CPU clock: the
    /// guest inside KVM_RUN and the host's work on its exits).
    pub cpu_ns: u64,
    /// cpu_ns / all VMs' cpu_ns: the share the scheduler holds to the
    /// weights (`fair`).
    pub share: f64,
    /// weight / all VMs' weights: the share the weights ask for.
    pub target_share: f64,
    /// Exits by reason.
    pub exits: Vec<ReasonCount>,
    /// AX at the end (the guest's progress counter).
    pub counter: u16,
    /// How it ended.
    #[serde(flatten)]
    pub state: VmState,
    #[serde(skip)]
    pub(super) stats: ExitStats,
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
    /// Wall time of setting the VMs up (create, memory, vCPU, load).
    #[serde(skip)]
    pub setup_ns: u64,
    /// The process's resident memory once every VM is set up (KiB, from
    /// /proc/self/status; 0 if it could not be read).
    #[serde(skip)]
    pub rss_kib_after_setup: u64,
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
        let cycle: u64 = self.vms.iter().map(|v| u64::from(v.weight)).sum();
        let handed: u64 = self.vms.iter().map(|v| v.quanta).sum();
        if handed < cycle {
            let _ = writeln!(
                o,
                "host: note: {handed} turn{} handed out, fewer than one weight cycle ({cycle} turns): the shares cannot match the weights {} yet; run {cycle} quanta or more",
                if handed == 1 { " was" } else { "s were" },
                weights.join(":")
            );
        }
        let _ = writeln!(
            o,
            "  {:<16} {:>5} {:>6} {:>8} {:>11} {:>7} {:>7} {:>15}  state",
            "VM", "VMFD", "weight", "quanta", "CPU time", "share", "target", "counter (AX)"
        );
        for v in &self.vms {
            let state = match &v.state {
                VmState::Running => "running".to_string(),
                VmState::Halted => "halted".to_string(),
                VmState::Faulted { what } => format!("crashed: {what}"),
            };
            let _ = writeln!(
                o,
                "  {:<16} {:>5} {:>6} {:>8} {:>9.3} s {:>6.1}% {:>6.1}% {:>15}  {state}",
                v.name,
                v.vmfd,
                v.weight,
                v.quanta,
                v.cpu_ns as f64 / 1e9,
                v.share * 100.0,
                v.target_share * 100.0,
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
}
