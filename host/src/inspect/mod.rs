//! `host layout`: where everything is in a VM the host has really set up.
//! Every figure is read back from the live VM: the memory region from
//! vm-memory's mapping, the registers with KVM_GET_REGS/KVM_GET_SREGS, the
//! GDT and page tables from guest memory starting at the vCPU's GDTR and CR3,
//! the kvm_run size from KVM_GET_VCPU_MMAP_SIZE and its address from the
//! vCPU's mapping. Only the names of the ABI's reserved areas (42-check word,
//! result page, stack) come from `hypercall_abi::layout`.

mod describe;
mod model;
mod tables;
mod text;

pub use describe::describe;
pub use model::*;
pub use tables::explain;
