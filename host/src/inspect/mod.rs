//! `host layout`: where everything is in a VM the host has really set up.
//! Every figure is read back from the live VM: the memory region from
//! vm-memory's mapping, the registers with KVM_GET_REGS/KVM_GET_SREGS, the
//! GDT and page tables from guest memory starting at the vCPU's GDTR and CR3,
//! the kvm_run size from KVM_GET_VCPU_MMAP_SIZE and its address from the
//! vCPU's mapping. Only the names of the ABI's reserved areas (42-check word,
//! result page, stack) come from `hypercall_abi::layout`. The interrupt
//! state ([`irq`]) comes from KVM_GET_LAPIC, KVM_GET_IRQCHIP and KVM_GET_PIT2.

mod describe;
pub mod irq;
mod irq_text;
mod model;
mod tables;
mod text;

pub use describe::describe;
pub use model::*;
pub use tables::explain;
