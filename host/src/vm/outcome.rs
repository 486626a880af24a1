//! What a run produced: each vCPU's end, the VM's, the 42 check.

use super::machine::{Vm, VmError};
use crate::devices::simvirtio::DeviceStats;
use crate::diag::HostError;
use crate::stats::ExitStats;
use crate::vcpu::Stop;
use crate::x86::Regs;
use hypercall_abi::{layout, note};
use serde::Serialize;
use std::io::Write;
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress};

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
    /// The 42 check, when the guest asked for it.
    pub check: Option<Check42>,
    /// Bad hypercall arguments reported.
    pub guest_errors: u64,
    /// Wall time in the run loop.
    pub elapsed: Duration,
}

impl Vm {
    /// The run's outcome from each vCPU's: the device finishes its output,
    /// the VM's stop is the first fault, else the first timeout or
    /// interrupt, else "halted"; the exit counts are summed; the 42 check
    /// reads memory and vCPU 0's RAX.
    pub(super) fn outcome(
        &mut self,
        per: Vec<VcpuReport>,
        elapsed: Duration,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<RunOutcome, VmError> {
        self.bus.finish(self.vm.memory(), out, diag)?;
        let main = per
            .iter()
            .position(|v| matches!(v.stop, Stop::Faulted { .. }))
            .or_else(|| {
                per.iter()
                    .position(|v| !matches!(v.stop, Stop::Halted | Stop::Cancelled))
            })
            .unwrap_or(0);
        let stop = per[main].stop.clone();
        let regs = per[main].regs;
        let all_halted = per.iter().all(|v| v.stop == Stop::Halted);
        let check = (all_halted && self.state.flags & note::FLAG_CHECK_42 != 0).then(|| {
            let memory: u32 = self
                .vm
                .memory()
                .read_obj(GuestAddress(layout::CHECK_ADDR))
                .unwrap_or(0);
            let want = layout::CHECK_VALUE;
            let rax = per[0].regs.rax;
            Check42 {
                memory,
                rax,
                pass: u64::from(memory) == want && rax == want,
            }
        });
        if let Some(t) = &mut self.state.trace {
            t.finish().map_err(HostError::from)?;
        }
        let mut stats = ExitStats::default();
        for v in &per {
            stats.merge(&v.stats);
        }
        Ok(RunOutcome {
            stop,
            regs,
            vcpu: main,
            stats,
            check,
            guest_errors: self.state.guest_errors,
            elapsed,
            vcpus: per,
            device: self.bus.device_stats(),
        })
    }
}
