//! The KVM hypervisor workbench host: a VMM library that the CLI and the
//! integration tests share.

pub mod bench;
pub mod exit;
pub mod guests;
pub mod hypercall;
pub mod jail;
pub mod layout;
pub mod loader;
pub mod matrix;
pub mod run;
pub mod signals;
pub mod simvirtio;
pub mod size;
pub mod trace;
pub mod translate;
pub mod vm;
