//! The KVM hypervisor workbench host: a VMM library that the CLI and the
//! integration tests share.
//!
//! Layers, lowest first; a module imports only from its own layer or below
//! (docs/architecture.md; `tests/layers.rs` checks it):
//!
//! | layer | modules |
//! | --- | --- |
//! | leaves | `stats`, `trace`, `size`, `wire`, `timeline` (and the hypercall-abi crate) |
//! | x86 facts | `x86` |
//! | plumbing | `diag`, `config`, `loader`, `guests`, `signals`, `seccomp`, `snapshot` |
//! | KVM objects | `kvm` |
//! | devices | `devices` |
//! | one vCPU | `vcpu` |
//! | the VM | `vm` |
//! | commands | `run`, `inspect`, `matrix`, `bench`, `abi`, `report` |

pub mod abi;
pub mod bench;
pub mod config;
pub mod devices;
pub mod diag;
pub mod gdb;
pub mod guests;
pub mod inspect;
pub mod kvm;
pub mod loader;
pub mod matrix;
pub mod report;
pub mod run;
pub mod seccomp;
pub mod signals;
pub mod size;
pub mod snapshot;
pub mod stats;
pub mod timeline;
pub mod trace;
pub mod vcpu;
pub mod vm;
pub mod wire;
pub mod x86;
