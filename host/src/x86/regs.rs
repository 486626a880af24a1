//! The general-purpose register file as reports show it.

use kvm_bindings::kvm_regs;
use serde::Serialize;

/// General-purpose registers, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct Regs {
    #[serde(serialize_with = "crate::size::hex")]
    pub rax: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rbx: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rcx: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rdx: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rsi: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rdi: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rsp: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rbp: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r8: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r9: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r10: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r11: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r12: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r13: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r14: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub r15: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rip: u64,
    #[serde(serialize_with = "crate::size::hex")]
    pub rflags: u64,
}

/// A `Regs` from any value with the same 18 fields.
macro_rules! regs_of {
    ($r:expr) => {{
        let r = $r;
        Regs {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rsp: r.rsp,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
        }
    }};
}

impl From<&kvm_regs> for Regs {
    fn from(r: &kvm_regs) -> Regs {
        regs_of!(r)
    }
}

/// The registers a guest's own exception report carries.
impl From<&hypercall_abi::ExceptionReport> for Regs {
    fn from(r: &hypercall_abi::ExceptionReport) -> Regs {
        regs_of!(r)
    }
}

impl Regs {
    /// Four lines of `name=value`.
    pub fn dump(&self) -> String {
        let r = self;
        format!(
            "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n  \
             rsi={:#018x} rdi={:#018x} rsp={:#018x} rbp={:#018x}\n  \
             r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}\n  \
             r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n  \
             rip={:#018x} rflags={:#x}",
            r.rax,
            r.rbx,
            r.rcx,
            r.rdx,
            r.rsi,
            r.rdi,
            r.rsp,
            r.rbp,
            r.r8,
            r.r9,
            r.r10,
            r.r11,
            r.r12,
            r.r13,
            r.r14,
            r.r15,
            r.rip,
            r.rflags
        )
    }
}
