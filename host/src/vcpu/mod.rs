//! One vCPU: how it ends ([`outcome`]), the thread it runs on
//! ([`thread`]: signal mask, timers, pinning, seccomp, written once for one
//! vCPU and for several), its exit loop ([`exit_loop`], the hot path) and
//! what may run that loop in its place ([`driver`]: the debugger, which
//! sees the other vCPUs through [`others`]).

pub mod driver;
pub mod exit_loop;
pub mod irq;
pub mod others;
pub mod outcome;
pub mod thread;

pub use driver::Driver;
pub use exit_loop::ExitLoop;
pub use outcome::{Pause, Stop, VcpuError};
