//! The register files gdb sees in each CPU mode, to and from KVM's:
//! x86-64 in long mode, i386 in 32-bit protected mode (paged or not), and
//! i386 registers under gdb's `i8086` architecture in real mode, so gdb
//! disassembles 16-bit code. Real mode's EIP is the linear address
//! CS.base + IP, so that breakpoints and `x/i $pc` mean the code gdb sees.
//! The x87/SSE registers read as zero and writes to them are ignored: the
//! guests here are soft-float and no FPU state is read.

use gdbstub::arch::Arch;
use gdbstub_arch::x86::reg::{X86_64CoreRegs, X86CoreRegs, X86SegmentRegs};
use gdbstub_arch::x86::{X86_64_SSE, X86_SSE};
use kvm_bindings::{kvm_regs, kvm_sregs};

/// A gdb architecture of one CPU mode, with its way to and from KVM.
pub trait ModeArch: Arch<BreakpointKind = usize> {
    /// The registers as gdb sees them.
    fn from_kvm(r: &kvm_regs, s: &kvm_sregs) -> Self::Registers;
    /// gdb's registers written back over `r` (segments are not written).
    fn to_kvm(g: &Self::Registers, r: &mut kvm_regs, s: &kvm_sregs);
    /// A gdb address (or length) as a u64.
    fn to_u64(a: Self::Usize) -> u64;
    /// A linear address as gdb's (32-bit modes keep the low 32 bits).
    fn from_u64(a: u64) -> Self::Usize;
}

fn segments(s: &kvm_sregs) -> X86SegmentRegs {
    X86SegmentRegs {
        cs: u32::from(s.cs.selector),
        ss: u32::from(s.ss.selector),
        ds: u32::from(s.ds.selector),
        es: u32::from(s.es.selector),
        fs: u32::from(s.fs.selector),
        gs: u32::from(s.gs.selector),
    }
}

fn fpu_default() -> gdbstub_arch::x86::reg::X87FpuInternalRegs {
    gdbstub_arch::x86::reg::X87FpuInternalRegs {
        fctrl: 0x37f,
        ..Default::default()
    }
}

impl ModeArch for X86_64_SSE {
    fn from_kvm(r: &kvm_regs, s: &kvm_sregs) -> X86_64CoreRegs {
        X86_64CoreRegs {
            regs: [
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
                r.r12, r.r13, r.r14, r.r15,
            ],
            eflags: r.rflags as u32,
            rip: r.rip,
            segments: segments(s),
            fpu: fpu_default(),
            ..Default::default()
        }
    }

    fn to_kvm(g: &X86_64CoreRegs, r: &mut kvm_regs, _: &kvm_sregs) {
        let [
            rax,
            rbx,
            rcx,
            rdx,
            rsi,
            rdi,
            rbp,
            rsp,
            r8,
            r9,
            r10,
            r11,
            r12,
            r13,
            r14,
            r15,
        ] = g.regs;
        *r = kvm_regs {
            rax,
            rbx,
            rcx,
            rdx,
            rsi,
            rdi,
            rbp,
            rsp,
            r8,
            r9,
            r10,
            r11,
            r12,
            r13,
            r14,
            r15,
            rip: g.rip,
            // bits 63..32 of RFLAGS are reserved (zero)
            rflags: u64::from(g.eflags),
        };
    }

    fn to_u64(a: u64) -> u64 {
        a
    }

    fn from_u64(a: u64) -> u64 {
        a
    }
}

fn core32(r: &kvm_regs, s: &kvm_sregs, eip: u64) -> X86CoreRegs {
    X86CoreRegs {
        eax: r.rax as u32,
        ecx: r.rcx as u32,
        edx: r.rdx as u32,
        ebx: r.rbx as u32,
        esp: r.rsp as u32,
        ebp: r.rbp as u32,
        esi: r.rsi as u32,
        edi: r.rdi as u32,
        eip: eip as u32,
        eflags: r.rflags as u32,
        segments: segments(s),
        fpu: fpu_default(),
        ..Default::default()
    }
}

fn write32(g: &X86CoreRegs, r: &mut kvm_regs, eip: u64) {
    r.rax = u64::from(g.eax);
    r.rcx = u64::from(g.ecx);
    r.rdx = u64::from(g.edx);
    r.rbx = u64::from(g.ebx);
    r.rsp = u64::from(g.esp);
    r.rbp = u64::from(g.ebp);
    r.rsi = u64::from(g.esi);
    r.rdi = u64::from(g.edi);
    r.rip = eip;
    r.rflags = u64::from(g.eflags);
}

impl ModeArch for X86_SSE {
    fn from_kvm(r: &kvm_regs, s: &kvm_sregs) -> X86CoreRegs {
        core32(r, s, r.rip)
    }

    fn to_kvm(g: &X86CoreRegs, r: &mut kvm_regs, _: &kvm_sregs) {
        write32(g, r, u64::from(g.eip));
    }

    fn to_u64(a: u32) -> u64 {
        u64::from(a)
    }

    fn from_u64(a: u64) -> u32 {
        a as u32
    }
}

/// gdb's `i8086` architecture: i386 registers, 16-bit disassembly.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum X86_REAL {}

impl Arch for X86_REAL {
    type Usize = u32;
    type Registers = X86CoreRegs;
    type RegId = gdbstub_arch::x86::reg::id::X86CoreRegId;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(r#"<target version="1.0"><architecture>i8086</architecture></target>"#)
    }
}

impl ModeArch for X86_REAL {
    fn from_kvm(r: &kvm_regs, s: &kvm_sregs) -> X86CoreRegs {
        core32(r, s, s.cs.base + (r.rip & 0xffff))
    }

    fn to_kvm(g: &X86CoreRegs, r: &mut kvm_regs, s: &kvm_sregs) {
        write32(g, r, u64::from(g.eip).wrapping_sub(s.cs.base) & 0xffff);
    }

    fn to_u64(a: u32) -> u64 {
        u64::from(a)
    }

    fn from_u64(a: u64) -> u32 {
        a as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_registers_go_both_ways_in_gdb_order() {
        let r = kvm_regs {
            rax: 1,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rbp: 7,
            rsp: 8,
            r15: 16,
            rip: 0x10_0000,
            rflags: 0x246,
            ..Default::default()
        };
        let s = kvm_sregs::default();
        let g = X86_64_SSE::from_kvm(&r, &s);
        assert_eq!(&g.regs[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(g.regs[15], 16);
        assert_eq!((g.rip, g.eflags), (0x10_0000, 0x246));
        let mut back = kvm_regs::default();
        X86_64_SSE::to_kvm(&g, &mut back, &s);
        assert_eq!(back, r);
    }

    #[test]
    fn real_mode_eip_is_linear() {
        let r = kvm_regs {
            rip: 0x10,
            ..Default::default()
        };
        let mut s = kvm_sregs::default();
        s.cs.base = 0x7000;
        let g = X86_REAL::from_kvm(&r, &s);
        assert_eq!(g.eip, 0x7010);
        let mut back = kvm_regs::default();
        X86_REAL::to_kvm(&g, &mut back, &s);
        assert_eq!(back.rip, 0x10);
    }

    #[test]
    fn protected_mode_keeps_32_bits() {
        let r = kvm_regs {
            rax: 0xdead_beef,
            rip: 0x20_0000,
            ..Default::default()
        };
        let g = X86_SSE::from_kvm(&r, &kvm_sregs::default());
        assert_eq!((g.eax, g.eip), (0xdead_beef, 0x20_0000));
    }
}
