//! The VM: KVM objects, its configuration, run state and device bus
//! ([`machine`]), several vCPUs on threads of their own ([`smp`]), and what
//! a run produced ([`outcome`]); the SIMVIRTIO device thread of
//! `--ioeventfd` (`device_thread.rs`); a VM saved to a snapshot and
//! restored from one ([`snapshot`]).

mod device_thread;
mod finish;
mod load;
pub mod machine;
pub mod outcome;
mod smp;
pub mod snapshot;
mod start;

pub use machine::{Vm, VmError};
pub use outcome::{Check42, RunOutcome, VcpuReport};
