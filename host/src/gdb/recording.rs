//! Time travel's forward half (`--record`): recording starts (and starts
//! afresh when gdb changes the guest), the run stops at marks, the next
//! checkpoint or the frontier of what was printed once, and keeps a
//! checkpoint there; gdb's reverse requests go to [`super::reverse`].

use super::debuggee::{Debuggee, Ran, Resume};
use super::record::{Checkpoint, Recorder};
use crate::vcpu::VcpuError;
use gdbstub::common::Signal;
use gdbstub::stub::SingleThreadStopReason;
use std::io::Write;

impl Debuggee<'_, '_> {
    /// Starts recording here (`--record`, `monitor record on`).
    pub fn record_on(&mut self, budget: u64) -> Result<(), VcpuError> {
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
        let mem_size = self.lp.mem.iter().map(|r| r.len()).sum();
        self.record = Some(Recorder::new(budget, mem_size));
        self.checkpoint()
    }

    /// gdb changed the guest (`set var`, `set $reg`): a replay of the past
    /// would run without the change, so the recording starts afresh here.
    pub fn changed(&mut self) -> Result<(), VcpuError> {
        match self.record.is_some() {
            true => self.record_on(self.record_budget),
            false => Ok(()),
        }
    }

    /// Keeps a checkpoint of the guest as it is now (its exit completed).
    pub fn checkpoint(&mut self) -> Result<(), VcpuError> {
        if self.record.is_none() {
            return Ok(());
        }
        self.settle()?;
        self.unplant();
        let mut e = crate::wire::Enc::default();
        self.lp.bus.save(&mut e);
        let cp = Checkpoint {
            exits: self.exits(),
            vcpu: self.lp.vcpu.save_state(false, &mut None)?,
            stats: self.lp.stats.compact(),
            device: e.buf,
            guest_errors: *self.lp.guest_errors,
            undo: Vec::new(),
        };
        if let Some(r) = &mut self.record {
            r.push(self.lp.mem, cp);
        }
        self.advanced();
        self.plant();
        Ok(())
    }

    /// Takes the planted int3s out of guest memory (checkpoints and replays
    /// see the guest's own bytes); `plant` puts them back.
    pub(super) fn unplant(&self) {
        for &(addr, orig) in &self.points.int3 {
            let _ = self.write(addr, &[orig]);
        }
    }

    pub(super) fn plant(&self) {
        for &(addr, _) in &self.points.int3 {
            let _ = self.write(addr, &[0xcc]);
        }
    }

    /// Guest debugging off, the exit in flight completed.
    pub(super) fn settle(&mut self) -> Result<(), VcpuError> {
        self.disarm()?;
        self.forget_debug();
        self.lp.vcpu.complete_pending(&mut None)?;
        Ok(())
    }

    /// `--record`: where the run must stop next (the next checkpoint, or
    /// the frontier of what was printed), and whether the guest is
    /// re-executing exits served once already (print nothing).
    pub(super) fn mark(&self) -> (Option<crate::config::SnapAt>, bool) {
        let Some(r) = &self.record else {
            return (None, false);
        };
        let now = self.lp.stats.guest_exits();
        let next = match now < r.frontier {
            true => r.frontier,
            false => r.newest().unwrap_or(now) + r.every,
        };
        (
            Some(crate::config::SnapAt::GuestExits(next)),
            now < r.frontier,
        )
    }

    /// The run reached a mark: keep a checkpoint when one is due.
    pub(super) fn marked(&mut self) -> Result<(), VcpuError> {
        let now = self.lp.stats.guest_exits();
        let due = self
            .record
            .as_ref()
            .is_some_and(|r| now >= r.newest().unwrap_or(0) + r.every);
        if due {
            self.checkpoint()?;
        }
        self.advanced();
        Ok(())
    }

    /// The frontier of the recording moves up to where the guest is.
    pub(super) fn advanced(&mut self) {
        let now = self.lp.stats.guest_exits();
        if let Some(r) = &mut self.record {
            r.frontier = r.frontier.max(now);
        }
    }

    /// gdb asked to go back: where it lands, or why it cannot.
    pub(super) fn reverse(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<Ran, VcpuError> {
        use SingleThreadStopReason as R;
        if self.record.is_none() {
            crate::diag::host_line(
                out,
                diag,
                format_args!(
                    "gdb: not recording, so there is no way back: run with --record, or `monitor record on` first"
                ),
            )?;
            return Ok(Ran::Stopped(R::Signal(Signal::SIGTRAP)));
        }
        let r = match self.resume {
            Resume::ReverseStep => self.reverse_step(),
            _ => self.reverse_cont(),
        };
        match r {
            Ok(why) => Ok(Ran::Stopped(why)),
            Err(e) => {
                // the guest stays where the failed replay left it
                crate::diag::host_line(out, diag, format_args!("gdb: {e}"))?;
                Ok(Ran::Stopped(R::Signal(Signal::SIGTRAP)))
            }
        }
    }
}
