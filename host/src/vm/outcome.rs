//! What a run produced: each vCPU's end, the VM's, the 42 check
//! (`Vm::outcome`, in finish.rs, puts them together).

use crate::devices::simvirtio::DeviceStats;
use crate::kvm::stats::KvmStats;
use crate::stats::ExitStats;
use crate::vcpu::Stop;
use crate::x86::Regs;
use serde::Serialize;
use std::time::Duration;

/// The 42 check: the 32-bit value at `layout::CHECK_ADDR` and RAX at HLT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check42 {
    /// Value read from guest memory.
    pub memory: u32,
    /// RAX.
    pub rax: u64,
    /// Both are 42.
    pub pass: bool,
}

/// How one vCPU ended.
#[derive(Debug, Clone)]
pub struct VcpuReport {
    /// The vCPU id.
    pub id: usize,
    /// How its loop ended.
    pub stop: Stop,
    /// Its registers at the end.
    pub regs: Regs,
    /// Its exits.
    pub stats: ExitStats,
    /// `--trace-out`: its KVM_RUN and exit-handling slices.
    pub timeline: Option<crate::timeline::Timeline>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How it ended (with several vCPUs: the first fault, else the first
    /// timeout or interrupt, else halted).
    pub stop: Stop,
    /// Registers at the end, of vCPU `vcpu`.
    pub regs: Regs,
    /// The vCPU that `stop` and `regs` are about.
    pub vcpu: usize,
    /// Exit counts, all vCPUs together.
    pub stats: ExitStats,
    /// Each vCPU's end and exits.
    pub vcpus: Vec<VcpuReport>,
    /// What the SIMVIRTIO device did.
    pub device: DeviceStats,
    /// `--html`, `--trace-out`: the KVM calls (one vCPU only).
    pub kvm_calls: Option<crate::trace::Kept>,
    /// `--html`: the device's queues over time.
    pub device_history: Option<crate::devices::simvirtio::history::History>,
    /// The 42 check, when the guest asked for it.
    pub check: Option<Check42>,
    /// Bad hypercall arguments reported.
    pub guest_errors: u64,
    /// Wall time in the run loop.
    pub elapsed: Duration,
    /// `--kvm-stats`: KVM's own counters of the VM, then of each vCPU.
    pub kvm_stats: Option<(KvmStats, Vec<KvmStats>)>,
}
