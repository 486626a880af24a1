//! Snapshots (docs/snapshots.md): the file format (`format.rs`), read and
//! checked as untrusted input (`read.rs`), and guest memory's pages with
//! data, written as a sparse memory image (`pages.rs`).
//! What KVM holds of a VM is read and written by `crate::kvm::state`, and
//! a VM is saved and restored by `crate::vm` (`vm/snapshot.rs`).

pub mod format;
pub mod pages;
mod read;

pub use format::{Run, SnapError, Snapshot};
pub use pages::{Saved, data_runs, write};
pub use read::{Opened, is_snapshot, open, open_restorable};
