//! A VM saved to a snapshot file, and a new VM made to continue one
//! (docs/snapshots.md). The vCPU's state is read after the exit in flight
//! was completed (`Vcpu::complete_pending`), so the registers are those
//! after the instruction that exited; memory goes as its pages with data.
//! A restore maps those pages MAP_PRIVATE from the file
//! (`VmObject::map_file`), so it costs the same for any guest RAM size.

use super::machine::{Vm, VmError};
use crate::config::IrqChip;
use crate::kvm::state::{ChipSnapshot, VcpuState};
use crate::snapshot::{self, Opened, SnapError, Snapshot};
use crate::stats::ExitStats;
use crate::wire::{Dec, Enc, WireError};
use std::fs::File;
use std::time::Duration;

/// Which guest a snapshot is of.
#[derive(Debug, Clone)]
pub struct GuestId {
    /// Its display name.
    pub name: String,
    /// Its file.
    pub path: String,
    /// FNV-1a of the bytes the host read of it.
    pub hash: u64,
}

/// What a run gives its snapshot besides the VM.
pub struct RunSoFar<'a> {
    /// The guest's output so far.
    pub output: &'a [u8],
    /// Each vCPU's exit counts.
    pub stats: Vec<&'a ExitStats>,
    /// Each vCPU had halted for good (several vCPUs).
    pub halted: Vec<bool>,
    /// Guest time so far.
    pub elapsed: Duration,
}

impl Vm {
    /// Saves this VM, stopped by its run (`Stop::Snapshot`, a timeout or
    /// an interrupt), to `file` (`name` for messages).
    pub fn save_snapshot(
        &mut self,
        file: &File,
        name: &str,
        id: &GuestId,
        so_far: &RunSoFar,
    ) -> Result<snapshot::Saved, VmError> {
        let kernel = self.irqchip == IrqChip::Kernel;
        let mut vcpus = Vec::with_capacity(self.vcpus.len());
        for v in &mut self.vcpus {
            v.complete_pending(&mut self.state.trace)?;
            let mut e = Enc::default();
            v.save_state(kernel, &mut self.state.trace)?.save(&mut e);
            vcpus.push(e.buf);
        }
        let chips = match kernel {
            true => {
                let mut e = Enc::default();
                self.vm.save_chips(&mut self.state.trace)?.save(&mut e);
                Some(e.buf)
            }
            false => None,
        };
        let mut device = Enc::default();
        self.bus.save(&mut device);
        let stats = so_far
            .stats
            .iter()
            .map(|s| {
                let mut e = Enc::default();
                s.save(&mut e);
                e.buf
            })
            .collect();
        let output = &so_far.output[so_far
            .output
            .len()
            .saturating_sub(snapshot::format::MAX_OUTPUT)..];
        let snap = Snapshot {
            guest: id.name.clone(),
            guest_path: id.path.clone(),
            guest_hash: id.hash,
            fingerprint: hypercall_abi::FINGERPRINT,
            flags: self.state.flags,
            mode: self.config.mode,
            mem_size: self.config.mem_size,
            irqchip: self.irqchip,
            cpuid: self.config.cpuid,
            vcpus,
            stats,
            halted: so_far.halted.clone(),
            chips,
            device: device.buf,
            output: output.to_vec(),
            guest_errors: self.state.guest_errors.count,
            elapsed_ns: so_far.elapsed.as_nanos().min(u128::from(u64::MAX)) as u64,
            runs: snapshot::data_runs(self.vm.memory(), self.config.mem_size),
        };
        Ok(snapshot::write(file, name, &snap, self.vm.memory())?)
    }

    /// Puts the snapshot `o` (read and checked by `snapshot::open`, of a
    /// VM made with its configuration by `Vm::for_restore`) into this VM:
    /// memory, vCPUs, controllers, device and, with `counts`, the exit
    /// counts so far (a clone in `host matrix` counts its own exits: its
    /// table's index is made at its first exit, not here). The guest's output
    /// so far stays in `o.snap` for a caller that prints it.
    pub fn restore_snapshot(
        &mut self,
        o: &Opened,
        name: &str,
        counts: bool,
    ) -> Result<(), VmError> {
        let s = &o.snap;
        let bad = |e: WireError| SnapError::Bad {
            path: name.to_string(),
            why: e.to_string(),
        };
        if s.vcpus.len() != self.vcpus.len() {
            return Err(bad(WireError::Bad {
                what: "number of vCPUs",
                value: s.vcpus.len() as u64,
            })
            .into());
        }
        if let Some(c) = &s.chips {
            let mut d = Dec::new(c);
            let chips = ChipSnapshot::load(&mut d).map_err(bad)?;
            d.end().map_err(bad)?;
            self.vm.restore_chips(&chips, &mut self.state.trace)?;
        }
        for (i, v) in self.vcpus.iter().enumerate() {
            let mut d = Dec::new(&s.vcpus[i]);
            let state = VcpuState::load(&mut d).map_err(bad)?;
            d.end().map_err(bad)?;
            v.restore_state(&state, &mut self.state.trace)?;
            let mut d = Dec::new(&s.stats[i]);
            let stats = ExitStats::load(&mut d).map_err(bad)?;
            d.end().map_err(bad)?;
            if counts {
                self.state.stats[i] = stats;
            }
        }
        let mut d = Dec::new(&s.device);
        self.bus.load(&mut d).map_err(bad)?;
        d.end().map_err(bad)?;
        self.state.flags = s.flags;
        self.state.ended = s.halted.clone();
        self.state.guest_errors.count = s.guest_errors;
        self.state.restored = true;
        Ok(())
    }
}
