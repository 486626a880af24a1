//! Exit statistics: counts by exit reason, I/O exits by direction and port,
//! MMIO exits by direction and address ([`exits`]), with per-exit work that
//! does not grow with what the guest did before: a bounded table with an
//! O(1) index ([`index`]), one per kind (`rows.rs`); past [`index::MAX_ROWS`] distinct ports or
//! addresses the rest are counted in one "others" row.

pub mod exits;
pub mod index;
pub mod irqs;
pub mod kinds;
mod rows;
mod saved;
mod text;

pub use exits::ExitStats;
pub use irqs::{IrqCount, IrqSummary, IrqVia};
pub use kinds::{AddrCount, Dir, ExitReason, Others, PortCount, ReasonCount, Seen};
