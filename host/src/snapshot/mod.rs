//! Snapshots (docs/snapshots.md): the file format, checked as untrusted
//! input (`format.rs`), and guest memory's pages with data (`pages.rs`).
//! What KVM holds of a VM is read and written by `crate::kvm::state`, and
//! a VM is saved and restored by `crate::vm` (`vm/snapshot.rs`).

pub mod format;
pub mod pages;

pub use format::{Opened, Run, SnapError, Snapshot, open};
pub use pages::{Saved, data_runs, write};
