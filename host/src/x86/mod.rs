//! x86 facts with no file descriptor: CPU modes and the state a vCPU starts
//! in, the GDT and its segments, CPUID, page tables built and walked, and
//! the register file as reports show it. Everything here is plain data over
//! guest memory and `kvm_bindings` structures, testable without KVM.

pub mod cpuid;
pub mod exception;
pub mod gdt;
pub mod mode;
pub mod paging;
pub mod regs;
pub mod translate;

pub use mode::CpuMode;
pub use regs::Regs;
pub use translate::Paging;
