//! What this KVM can do for a debugger, found by trying it once in a tiny
//! real-mode VM (~1 ms): single-step, hardware breakpoints (DR0..DR3 with
//! KVM_GUESTDBG_USE_HW_BP) and `int3` breakpoints (KVM_GUESTDBG_USE_SW_BP).
//! ../shared/notes/nested-kvm.md: kvm-pvm does all but `int3` (an internal
//! error); kvm_amd under QEMU's TCG single-steps only.

use super::error::GdbError;
use crate::kvm::{System, Vcpu, VmObject};
use crate::x86::CpuMode;
use kvm_bindings as k;
use kvm_ioctls::VcpuExit;
use std::path::Path;
use vm_memory::{Bytes, GuestAddress};

/// What the running KVM does with each kind of guest debugging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// KVM_GUESTDBG_SINGLESTEP gives a debug exit after one instruction.
    pub single_step: bool,
    /// KVM_GUESTDBG_BLOCKIRQ (with single-step) is taken: no interrupt
    /// enters a handler during a step.
    pub block_irq: bool,
    /// A DR0 execute breakpoint gives a debug exit.
    pub hw_breakpoints: bool,
    /// A DR0 data-write breakpoint gives a debug exit (kvm-pvm: no, its
    /// ring-0 emulator does not check them).
    pub hw_watchpoints: bool,
    /// An `int3` gives a debug exit with KVM_GUESTDBG_USE_SW_BP.
    pub sw_breakpoints: bool,
    /// What `int3` did instead, when it did not.
    pub sw_instead: Option<String>,
}

impl Caps {
    /// One line for the user: what works and how breakpoints are done.
    pub fn summary(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let instead = self.sw_instead.as_deref().unwrap_or("no debug exit");
        let how = if self.sw_breakpoints {
            "breakpoints are int3".to_string()
        } else if self.hw_breakpoints && self.single_step {
            format!(
                "int3 does not stop here ({instead}), so breakpoints take the 4 debug registers, then single-stepping and comparing RIP (slower)"
            )
        } else if self.single_step {
            format!(
                "int3 does not stop here ({instead}), so breakpoints are done by single-stepping and comparing RIP (slower)"
            )
        } else {
            "this KVM cannot stop the guest: breakpoints and stepping will not work".into()
        };
        let watch = if self.hw_watchpoints {
            "watchpoints take the debug registers"
        } else if self.single_step {
            "write watchpoints by single-stepping and comparing the value"
        } else {
            "no watchpoints"
        };
        format!(
            "this KVM: single-step {}{}, hardware breakpoints {}, hardware watchpoints {}, int3 {}; {how}; {watch}",
            yes(self.single_step),
            match (self.single_step, self.block_irq) {
                (true, true) => " (interrupts held back during a step)",
                (true, false) => " (interrupts may enter a handler during a step)",
                _ => "",
            },
            yes(self.hw_breakpoints),
            yes(self.hw_watchpoints),
            yes(self.sw_breakpoints)
        )
    }
}

const CODE: u64 = 0x1000;
const INT3_AT: u64 = 0x1008;
const BP_HANDLER: u64 = 0x1010;
const STORE_AT: u64 = 0x1020;
const WATCHED: u64 = 0x1800;

/// Probes the KVM at `path`.
pub fn probe(path: &Path) -> Result<Caps, GdbError> {
    let err = |e: crate::kvm::KvmError| GdbError::Probe(e.to_string());
    let t = &mut None;
    let sys = System::open(path, t).map_err(err)?;
    let vm = VmObject::create(&sys, 0x10000, t).map_err(err)?;
    let mut vcpu = Vcpu::create(&vm, 0, t).map_err(err)?;
    let s = CpuMode::Real.start_sregs(&vcpu.reset_sregs(t).map_err(err)?);
    vcpu.set_start_sregs(CpuMode::Real, &s, t).map_err(err)?;
    let mem = vm.memory();
    let put = |at: u64, b: &[u8]| {
        mem.write_slice(b, GuestAddress(at))
            .map_err(|e| GdbError::Probe(e.to_string()))
    };
    // nop; nop; nop; hlt at CODE; int3; hlt at INT3_AT; a hlt as the real
    // mode #BP handler (IVT entry 3 = 0000:BP_HANDLER), so an int3 that is
    // not intercepted halts instead of running off.
    put(CODE, &[0x90, 0x90, 0x90, 0xf4])?;
    put(INT3_AT, &[0xcc, 0xf4])?;
    put(BP_HANDLER, &[0xf4])?;
    // mov [WATCHED], al; hlt
    put(STORE_AT, &[0xa2, WATCHED as u8, (WATCHED >> 8) as u8, 0xf4])?;
    put(3 * 4, &(BP_HANDLER as u32).to_le_bytes())?;
    let mut caps = Caps::default();
    let mut attempt = |rip: u64,
                       control: u32,
                       dr: [u64; 8]|
     -> Result<Option<(u32, u64, u64)>, GdbError> {
        vcpu.set_entry(rip, 0x8000, 0, 1, t).map_err(err)?;
        vcpu.set_guest_debug(k::KVM_GUESTDBG_ENABLE | control, dr, t)
            .map_err(err)?;
        Ok(match vcpu.run() {
            Ok(VcpuExit::Debug(d)) => Some((d.exception, d.pc, d.dr6)),
            Ok(VcpuExit::Hlt) => None,
            Ok(VcpuExit::InternalError) => return Err(GdbError::Probe("internal error".into())),
            Ok(VcpuExit::Shutdown) => return Err(GdbError::Probe("shutdown".into())),
            Ok(_) => return Err(GdbError::Probe("another exit".into())),
            Err(e) => return Err(GdbError::Probe(format!("KVM_RUN failed: {e}"))),
        })
    };
    caps.single_step = matches!(
        attempt(CODE, k::KVM_GUESTDBG_SINGLESTEP, [0; 8]),
        Ok(Some((1, pc, _))) if pc == CODE + 1
    );
    caps.block_irq = caps.single_step
        && matches!(
            attempt(CODE, k::KVM_GUESTDBG_SINGLESTEP | k::KVM_GUESTDBG_BLOCKIRQ, [0; 8]),
            Ok(Some((1, pc, _))) if pc == CODE + 1
        );
    let mut dr = [0u64; 8];
    dr[0] = CODE + 2;
    dr[7] = DR7_BASE | 1;
    caps.hw_breakpoints = matches!(
        attempt(CODE, k::KVM_GUESTDBG_USE_HW_BP, dr),
        Ok(Some((1, pc, dr6))) if pc == CODE + 2 && dr6 & 1 != 0
    );
    let mut dr = [0u64; 8];
    dr[0] = WATCHED;
    dr[7] = DR7_BASE | 1 | 0b01 << 16; // L0, RW0 = write, LEN0 = 1 byte
    caps.hw_watchpoints = matches!(
        attempt(STORE_AT, k::KVM_GUESTDBG_USE_HW_BP, dr),
        Ok(Some((1, _, dr6))) if dr6 & 1 != 0
    );
    match attempt(INT3_AT, k::KVM_GUESTDBG_USE_SW_BP, [0; 8]) {
        Ok(Some((3, pc, _))) if pc == INT3_AT => caps.sw_breakpoints = true,
        Ok(Some((e, _, _))) => caps.sw_instead = Some(format!("a debug exit with exception {e}")),
        Ok(None) => caps.sw_instead = Some("the guest took the #BP itself".into()),
        Err(GdbError::Probe(what)) => caps.sw_instead = Some(what),
        Err(e) => return Err(e),
    }
    Ok(caps)
}

/// DR7's fixed bits as QEMU's stub sets them: bit 10 (reserved, 1) and
/// GE (bit 9).
pub const DR7_BASE: u64 = 0x600;
