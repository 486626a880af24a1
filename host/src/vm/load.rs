//! Filling a new VM before its run: the image, the guest's arguments, and
//! what a test build is to do.

use super::machine::{Vm, VmError};
use crate::kvm::KvmError;
use crate::loader::Plan;
use vm_memory::{Bytes, GuestAddress};

impl Vm {
    /// Copies a checked plan's segments into guest memory (bss is zero: the
    /// memory is freshly mapped) and points every vCPU at the entry: vCPU i
    /// with RSP = `CpuMode::start_rsp(i)`, RDI = i, RSI = the number of vCPUs.
    pub fn load(&mut self, plan: &Plan, bytes: &[u8]) -> Result<(), VmError> {
        for s in &plan.segments {
            let data = bytes
                .get(s.file.clone())
                .ok_or_else(|| KvmError::Write("segment outside the file".into()))?;
            self.vm
                .memory()
                .write_slice(data, GuestAddress(s.gpa))
                .map_err(|e| KvmError::Write(e.to_string()))?;
        }
        self.state.flags |= plan.flags;
        let n = self.vcpus.len() as u64;
        for (id, vcpu) in (0..).zip(&self.vcpus) {
            let rsp = self.config.mode.start_rsp(id);
            vcpu.set_entry(plan.entry, rsp, id, n, &mut self.state.trace)?;
        }
        Ok(())
    }

    /// Writes `data` into guest memory at `gpa` before the run (the
    /// guest's arguments).
    pub fn write_guest(&mut self, gpa: u64, data: &[u8]) -> Result<(), VmError> {
        self.vm
            .memory()
            .write_slice(data, GuestAddress(gpa))
            .map_err(|e| KvmError::Write(e.to_string()).into())
    }

    /// Sets RDX of every vCPU before the run: what a test build is to do
    /// (`hypercall_abi::note::FLAG_TESTS`).
    pub fn set_test_command(&mut self, command: u64) -> Result<(), VmError> {
        for vcpu in &self.vcpus {
            let mut r = vcpu.kvm_regs()?;
            r.rdx = command;
            vcpu.set_kvm_regs(&r, &mut self.state.trace)?;
        }
        Ok(())
    }
}
