//! Where a return to another privilege level or an interrupted program
//! goes, so a single step over it stops there.
//!
//! KVM single-steps with RFLAGS.TF. An `iret` pops RFLAGS from the stack
//! (without TF) and `sysret` loads it from R11, so the step does not trap
//! at the next instruction: the guest runs on, at the other privilege
//! level, until something else exits (kvm-pvm went from a guest kernel's
//! `iretq` through a user program's faulting `out` into the #GP handler
//! in one step). With an execute breakpoint at the return address the
//! step stops there: gdb's `stepi` lands on the user instruction, and a
//! replay of `--record` has it as a position, so `reverse-stepi` from a
//! fault handler walks back to the instruction that faulted.

use super::debuggee::Debuggee;
use crate::vcpu::VcpuError;
use crate::x86::translate::{self, Paging};
use kvm_bindings::{kvm_regs, kvm_sregs};

/// The code size a step runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Real mode (or a 16-bit code segment).
    W16,
    /// 32-bit protected mode.
    W32,
    /// 64-bit long mode.
    W64,
}

impl Width {
    /// The width of the code the vCPU runs now.
    pub fn of(s: &kvm_sregs) -> Width {
        const LMA: u64 = 1 << 10;
        if s.efer & LMA != 0 && s.cs.l != 0 {
            Width::W64
        } else if s.cr0 & 1 != 0 && s.cs.db != 0 {
            Width::W32
        } else {
            Width::W16
        }
    }
}

/// The linear address an `iret` or `sysret` at RIP returns to; None for
/// any other instruction, or a stack that cannot be read. `code`: the
/// bytes at RIP; `read`: reads linear guest memory (false if unmapped).
/// Stack segment bases are taken from `s`; the target's code segment
/// base is taken as 0 outside real mode (flat segments, as every guest
/// here has).
pub fn return_target(
    code: &[u8],
    w: Width,
    r: &kvm_regs,
    s: &kvm_sregs,
    read: impl Fn(u64, &mut [u8]) -> bool,
) -> Option<u64> {
    let word = |at: u64, n: usize| -> Option<u64> {
        let mut b = [0u8; 8];
        read(at, &mut b[..n]).then(|| u64::from_le_bytes(b))
    };
    match (w, code) {
        // iretq: RIP, CS, RFLAGS, RSP, SS (8 bytes each)
        (Width::W64, [0x48, 0xcf, ..]) => word(r.rsp, 8),
        // iretd
        (Width::W64, [0xcf, ..]) => word(r.rsp, 4),
        (Width::W32, [0xcf, ..]) => word(s.ss.base.wrapping_add(r.rsp & 0xffff_ffff), 4),
        // real-mode iret: IP, then CS (2 bytes each)
        (Width::W16, [0xcf, ..]) => {
            let sp = s.ss.base.wrapping_add(r.rsp & 0xffff);
            let ip = word(sp, 2)?;
            let cs = word(sp.wrapping_add(2), 2)?;
            Some((cs << 4) + ip)
        }
        // sysretq / sysret: to RCX
        (Width::W64, [0x48, 0x0f, 0x07, ..]) => Some(r.rcx),
        (Width::W64, [0x0f, 0x07, ..]) => Some(r.rcx & 0xffff_ffff),
        _ => None,
    }
}

/// Whether `code` has the shape of an `iret` or `sysret` in some width
/// (a check on bytes alone: only then are the registers read).
pub fn looks_like_return(code: &[u8]) -> bool {
    matches!(
        code,
        [0xcf, ..] | [0x48, 0xcf, ..] | [0x0f, 0x07, ..] | [0x48, 0x0f, 0x07, ..]
    )
}

impl Debuggee<'_, '_> {
    /// Whether the code at linear `pc` looks like an `iret` or `sysret`.
    pub(super) fn looks_like_return_at(&self, p: &Paging, pc: u64) -> bool {
        let mut code = [0u8; 3];
        let n = translate::read_linear(self.lp.mem, p, pc, &mut code);
        looks_like_return(&code[..n])
    }

    /// Where a single step over the instruction at RIP must stop besides
    /// its trap: the target of an `iret` or `sysret` there.
    pub(super) fn return_stop(&self) -> Result<Option<u64>, VcpuError> {
        let r = self.lp.vcpu.kvm_regs()?;
        let s = self.lp.vcpu.sregs("gdb: step over a return", &mut None)?;
        Ok(self.return_stop_at(&r, &s))
    }

    /// The same, with the registers read already.
    pub(super) fn return_stop_at(&self, r: &kvm_regs, s: &kvm_sregs) -> Option<u64> {
        let p = Paging::from_sregs(s);
        let mut code = [0u8; 3];
        let n = translate::read_linear(self.lp.mem, &p, s.cs.base.wrapping_add(r.rip), &mut code);
        return_target(&code[..n], Width::of(s), r, s, |a, b| {
            translate::read_linear(self.lp.mem, &p, a, b) == b.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(at: u64, bytes: &[u8]) -> impl Fn(u64, &mut [u8]) -> bool + '_ {
        move |a, out| {
            let off = a.wrapping_sub(at) as usize;
            match bytes.get(off..off + out.len()) {
                Some(b) => {
                    out.copy_from_slice(b);
                    true
                }
                None => false,
            }
        }
    }

    #[test]
    fn iret_and_sysret_targets_in_each_width() {
        let r = kvm_regs {
            rsp: 0x7f00,
            rcx: 0x1234_5678_9abc,
            ..Default::default()
        };
        let s = kvm_sregs::default();
        let stack = 0x0010_0107u64.to_le_bytes();
        let m = mem(0x7f00, &stack);
        assert_eq!(
            return_target(&[0x48, 0xcf], Width::W64, &r, &s, &m),
            Some(0x100107)
        );
        assert_eq!(
            return_target(&[0xcf], Width::W32, &r, &s, &m),
            Some(0x100107)
        );
        // real mode: IP 0x0107, CS 0x0010
        assert_eq!(
            return_target(&[0xcf], Width::W16, &r, &s, &m),
            Some(0x100 + 0x107)
        );
        assert_eq!(
            return_target(&[0x48, 0x0f, 0x07], Width::W64, &r, &s, &m),
            Some(0x1234_5678_9abc)
        );
        assert!(looks_like_return(&[0x48, 0xcf]) && looks_like_return(&[0x0f, 0x07]));
        assert!(!looks_like_return(&[0x48, 0x89, 0xc8]) && !looks_like_return(&[0x0f, 0x0b]));
        // not a return; a stack that is not there
        assert_eq!(return_target(&[0x90], Width::W64, &r, &s, &m), None);
        let gone = mem(0, &[]);
        assert_eq!(
            return_target(&[0x48, 0xcf], Width::W64, &r, &s, &gone),
            None
        );
    }

    #[test]
    fn the_width_follows_efer_and_cs() {
        let mut s = kvm_sregs::default();
        assert_eq!(Width::of(&s), Width::W16);
        s.cr0 = 1;
        s.cs.db = 1;
        assert_eq!(Width::of(&s), Width::W32);
        s.efer = 1 << 10;
        s.cs.l = 1;
        s.cs.db = 0;
        assert_eq!(Width::of(&s), Width::W64);
    }
}
