//! The vCPU threads' seccomp filter: what they may call (`filter`) and the
//! BPF program that says so (`bpf`).

mod bpf;
mod device;
mod filter;

pub use bpf::{BpfError, Insn, Rule};
pub use device::{DEVICE_SYSCALLS, apply_device, device_rules};
pub use filter::*;
