//! The CPU modes a guest can start in, and the state the host gives a vCPU
//! for each: segments, GDT and control registers.

use super::gdt::{self, CODE_SELECTOR, DATA_SELECTOR};
use super::paging;
use super::translate::Paging;
use hypercall_abi::layout;
use kvm_bindings::kvm_sregs;
use serde::Serialize;
use std::ops::Range;
use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;
use x86_64::structures::gdt::DescriptorFlags;

/// The CPU mode a guest starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuMode {
    /// 16-bit real mode from the reset state, CS = DS = SS = 0.
    Real,
    /// 32-bit protected mode, flat 4 GiB segments, no paging.
    Protected,
    /// 32-bit protected mode with 2-level paging (a 4 MiB PSE page for the
    /// first 4 MiB, 4 KiB page tables beyond).
    Paged32,
    /// 64-bit long mode, identity map with 2 MiB pages.
    #[default]
    Long,
}

impl std::fmt::Display for CpuMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CpuMode::Real => "real",
            CpuMode::Protected => "protected",
            CpuMode::Paged32 => "paged32",
            CpuMode::Long => "long",
        })
    }
}

impl CpuMode {
    /// The ELF section with this mode's code (None: the ELF's own segments).
    pub fn section(self) -> Option<&'static str> {
        match self {
            CpuMode::Real => Some(hypercall_abi::mode_section::REAL),
            CpuMode::Protected | CpuMode::Paged32 => Some(hypercall_abi::mode_section::PROT32),
            CpuMode::Long => None,
        }
    }

    /// Largest guest memory in this mode.
    pub fn max_mem(self) -> u64 {
        match self {
            CpuMode::Paged32 => paging::PAGED32_MAX_MEM,
            _ => layout::MAX_MEM,
        }
    }

    /// Where images may go in this mode with `mem` bytes of memory.
    pub fn image_area(self, mem: u64) -> Range<u64> {
        match self {
            CpuMode::Real => layout::REAL_LOAD..layout::REAL_END.min(mem),
            _ => layout::IMAGE_MIN..mem,
        }
    }

    /// The control registers the host gives a vCPU that starts in this mode
    /// (real mode keeps the reset state, with PE and PG clear). DS base is 0
    /// in every mode.
    pub fn start_paging(self) -> Paging {
        let base = Cr0Flags::PROTECTED_MODE_ENABLE
            | Cr0Flags::MONITOR_COPROCESSOR
            | Cr0Flags::EXTENSION_TYPE
            | Cr0Flags::NUMERIC_ERROR
            | Cr0Flags::WRITE_PROTECT;
        match self {
            CpuMode::Real => Paging::default(),
            CpuMode::Protected => Paging {
                cr0: base.bits(),
                ..Paging::default()
            },
            CpuMode::Paged32 => Paging {
                cr0: (base | Cr0Flags::PAGING).bits(),
                cr3: layout::PAGE_TABLES,
                cr4: Cr4Flags::PAGE_SIZE_EXTENSION.bits(),
                ..Paging::default()
            },
            CpuMode::Long => Paging {
                cr0: (base | Cr0Flags::PAGING).bits(),
                cr3: layout::PAGE_TABLES,
                cr4: Cr4Flags::PHYSICAL_ADDRESS_EXTENSION.bits(),
                efer: (EferFlags::LONG_MODE_ENABLE | EferFlags::LONG_MODE_ACTIVE).bits(),
                ds_base: 0,
            },
        }
    }

    /// The special registers a vCPU starts with in this mode, from its reset
    /// state `reset`: real mode at segment 0; the other modes with the
    /// host's GDT at `layout::GDT` (see [`gdt::entries`]), flat segments and
    /// [`Self::start_paging`].
    pub fn start_sregs(self, reset: &kvm_sregs) -> kvm_sregs {
        let mut s = *reset;
        if self == CpuMode::Real {
            // The reset state has CS base 0xffff0000: start at segment 0.
            for seg in [
                &mut s.cs, &mut s.ds, &mut s.es, &mut s.fs, &mut s.gs, &mut s.ss,
            ] {
                seg.selector = 0;
                seg.base = 0;
            }
            return s;
        }
        s.cs = gdt::segment(CODE_SELECTOR, gdt::code_flags(self == CpuMode::Long));
        let data = gdt::segment(DATA_SELECTOR, DescriptorFlags::KERNEL_DATA);
        (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
        s.gdt.base = layout::GDT;
        s.gdt.limit = (gdt::entries(true).len() * 8 - 1) as u16;
        let p = self.start_paging();
        (s.cr0, s.cr3, s.cr4, s.efer) = (p.cr0, p.cr3, p.cr4, p.efer);
        s
    }

    /// What setting [`Self::start_sregs`] does, for the KVM call trace.
    pub fn start_purpose(self) -> &'static str {
        match self {
            CpuMode::Real => {
                "real mode from segment 0 instead of the reset vector's CS base 0xffff0000"
            }
            CpuMode::Long => "enter 64-bit long mode: GDT, 64-bit CS, paging on",
            CpuMode::Paged32 => "enter 32-bit protected mode with 2-level paging",
            CpuMode::Protected => "enter 32-bit protected mode, flat segments, no paging",
        }
    }

    /// The initial stack pointer of vCPU `id`.
    pub fn start_rsp(self, id: u64) -> u64 {
        match self {
            CpuMode::Real => layout::REAL_STACK_TOP,
            _ => layout::STACK_TOP - id * layout::VCPU_STACK_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_state_matches_the_mode() {
        let reset = kvm_sregs::default();
        let long = CpuMode::Long.start_sregs(&reset);
        assert_eq!(long.cs.l, 1);
        assert_eq!(long.cr3, layout::PAGE_TABLES);
        assert_eq!(long.gdt.limit, 23);
        let prot = CpuMode::Protected.start_sregs(&reset);
        assert_eq!((prot.cs.l, prot.cs.db, prot.cr3), (0, 1, 0));
        let mut r = reset;
        r.cs.base = 0xffff_0000;
        assert_eq!(CpuMode::Real.start_sregs(&r).cs.base, 0);
        assert_eq!(CpuMode::Real.start_paging(), Paging::default());
        assert_eq!(
            CpuMode::Long.start_rsp(1),
            layout::STACK_TOP - layout::VCPU_STACK_SIZE
        );
    }
}
