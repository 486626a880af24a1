//! One vCPU: how it ends ([`outcome`]), the thread it runs on
//! ([`thread`]: signal mask, timers, pinning, seccomp, written once for one
//! vCPU and for several) and its exit loop ([`exit_loop`], the hot path).

pub mod exit_loop;
pub mod outcome;
pub mod thread;

pub use exit_loop::ExitLoop;
pub use outcome::{Stop, VcpuError};
