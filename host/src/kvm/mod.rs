//! One file per KVM object, in the manner of rust-vmm kvm-ioctls and
//! Firecracker's `vstate/`: [`system`] (/dev/kvm), [`vm`] (the VM and its
//! memory), [`vcpu`] (one vCPU), `irq.rs` (their interrupt calls), `ioevent.rs` (KVM_IOEVENTFD) and
//! [`state`] (what a snapshot saves of them and restores). Each ioctl sits beside its `--trace-kvm`
//! record, so the trace is the program's real sequence.

pub mod error;
mod exit_text;
pub mod fault;
mod ioevent;
mod irq;
pub mod state;
pub mod stats;
pub mod system;
pub mod vcpu;
pub mod vm;

pub use error::KvmError;
pub use fault::Fault;
pub use irq::{ChipState, Raiser};
pub use system::System;
pub use vcpu::Vcpu;
pub use vm::VmObject;
