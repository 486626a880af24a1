//! Guest images: ELF executables (parsed with `object`) and flat binaries.
//!
//! Parsing produces a [`Plan`]: what goes where, fully checked against the
//! guest's memory size and the host's own structures, before one byte is
//! written to guest memory. Files are untrusted: every offset, size and
//! address is checked with overflow-free arithmetic.

mod elf;
mod error;
mod lines;
mod note;
mod plan;
mod sparse;
mod symbols;

pub use elf::{plan_elf, plan_section};
pub use error::{LoadError, MAX_SEGMENTS};
pub use lines::{FileMap, Lines};
pub use note::{GuestNote, Listed, check as check_note, note_bytes, parse_note};
pub use plan::{ImageKind, Plan, Segment, plan_flat, plan_flat_in};
pub use sparse::read_needed;
pub use symbols::Symbols;
