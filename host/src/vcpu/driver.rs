//! A driver runs vCPU 0's exit loop in place of `ExitLoop::run`: the gdb
//! stub (`crate::gdb`) stops the guest, lets gdb look at it, and resumes
//! it, on the vCPU's own thread (after its set-up and under its seccomp
//! filter).

use super::exit_loop::ExitLoop;
use super::outcome::{Stop, VcpuError};
use crate::signals::Timer;
use crate::x86::Regs;
use std::io::Write;
use std::time::Duration;

/// Runs one vCPU's loop to its end, its own way.
pub trait Driver: Send {
    /// The fd the driver reads and writes while the vCPU thread is under
    /// the seccomp filter (`crate::seccomp::program`).
    fn fd(&self) -> i32;

    /// Runs on the vCPU's thread once it can take a kick, before its
    /// seccomp filter (a failure is reported by `drive`).
    fn prepare_thread(&mut self);

    /// Runs `lp` until the guest's run ends; returns how, as
    /// `ExitLoop::run` does. `timeout` is the thread's `--timeout` timer
    /// (armed at set-up): a driver that stops the guest re-arms it with
    /// the guest time left, so time stopped does not count.
    fn drive(
        &mut self,
        lp: &mut ExitLoop<'_>,
        timeout: Option<&Timer>,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(Stop, Regs), VcpuError>;

    /// How long `drive` kept the guest stopped (for a debugger): the run's
    /// reported time leaves it out.
    fn stopped(&self) -> Duration {
        Duration::ZERO
    }
}
