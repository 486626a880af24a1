//! `host run`: resolve a guest, check and load it, run it, report.
//! The CLI and the integration tests both go through here.

pub mod code;
mod debug;
pub mod disasm;
pub mod explain;
mod go;
pub mod harness;
mod listing;
mod prepare;
mod prepared;
mod report;
mod selection;
pub mod snapshot;
mod trace_out;

pub use go::run;
pub use prepare::{Prepared, RunError, RunOptions, plan_guest, prepare, read_guest};
pub use report::{Capture, JSON_OUTPUT_CAP, Report};
