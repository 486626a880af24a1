//! The end of a run: the device finishes its output, and each vCPU's end
//! becomes the VM's outcome.

use super::machine::{Vm, VmError};
use super::outcome::{Check42, RunOutcome, VcpuReport};
use crate::diag::HostError;
use crate::stats::ExitStats;
use crate::vcpu::Stop;
use hypercall_abi::{layout, note};
use std::io::Write;
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress};

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
        // a run stopped to be saved leaves the device as it is: a restore
        // finishes its line
        let saved = per.iter().any(|v| {
            v.stop == Stop::Snapshot
                || (self.run.snapshot_at == Some(crate::config::SnapAt::Stop)
                    && matches!(v.stop, Stop::Interrupted | Stop::TimedOut { .. }))
        });
        if !saved {
            self.bus.finish(self.vm.memory(), out, diag)?;
        }
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
            t.finish().map_err(|source| HostError::Trace {
                name: t.sink_name().to_string(),
                source,
            })?;
        }
        let mut stats = ExitStats::default();
        for v in &per {
            stats.merge(&v.stats);
        }
        // KVM's own counters, once every vCPU has stopped
        let kvm_stats = match &self.kvm_stats {
            Some((vm, vcpus)) => {
                let read = |f: &crate::kvm::stats::StatsFd| f.read().map_err(HostError::KvmStats);
                Some((read(vm)?, vcpus.iter().map(read).collect::<Result<_, _>>()?))
            }
            None => None,
        };
        Ok(RunOutcome {
            kvm_stats,
            stop,
            regs,
            vcpu: main,
            stats,
            check,
            guest_errors: self.state.guest_errors.count,
            elapsed,
            vcpus: per,
            device: self.bus.device_stats(),
            device_history: self.bus.device_history(),
            kvm_calls: self.state.trace.as_ref().map(crate::trace::Tracer::kept),
        })
    }
}
