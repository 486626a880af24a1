//! `host run GUEST --gdb [ADDR]`: a gdb remote stub (the gdbstub crate) on
//! vCPU 0's thread. The guest stops before its first instruction; gdb
//! reads and writes registers and memory in every CPU mode, steps,
//! breaks and watches with what this KVM can do ([`probe`]), and asks the
//! host for its own views with `monitor` commands. See docs/debugging.md.

pub mod clock;
pub mod conn;
pub mod debuggee;
pub mod error;
pub mod monitor;
pub mod points;
pub mod probe;
pub mod record;
mod recording;
pub mod regs;
mod returns;
mod reverse;
pub mod session;
pub mod target;

pub use conn::Listener;
pub use error::GdbError;
pub use probe::{Caps, probe};
pub use session::Session;
