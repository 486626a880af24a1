//! The guest as the stub sees it: vCPU 0's exit loop, what the KVM can
//! do, gdb's breakpoints, and the run between two stops. Guest memory is
//! read and written at gdb's linear addresses through the guest's own
//! translation for its current mode (`crate::x86::translate`), page by
//! page, bounds-checked by vm-memory: an unmapped address is a short read
//! (an error reply to gdb), never a host fault.

use super::clock::Clock;
use super::points::Points;
use super::probe::Caps;
use crate::kvm::fault::Fault;
use crate::vcpu::{ExitLoop, Pause, Stop, VcpuError};
use crate::x86::Regs;
use crate::x86::translate::{self, Paging};
use gdbstub::common::Signal;
use gdbstub::stub::SingleThreadStopReason;
use std::io::Write;

/// The `hlt` opcode.
const HLT: u8 = 0xf4;

/// What gdb asked for at its last resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// `continue`.
    Continue,
    /// `stepi` (and each step of `step`/`next`).
    Step,
    /// `reverse-stepi` (and each step back of the other reverse commands).
    ReverseStep,
    /// `reverse-continue`.
    ReverseCont,
}

/// How a run between two stops ended.
pub enum Ran {
    /// Tell gdb: the guest stopped.
    Stopped(SingleThreadStopReason<u64>),
    /// A kick: look for bytes from gdb, then run on.
    Input,
}

/// The guest under the debugger.
pub struct Debuggee<'l, 'a> {
    /// vCPU 0's loop.
    pub lp: &'l mut ExitLoop<'a>,
    /// What this KVM can do.
    pub caps: Caps,
    /// gdb's breakpoints and watchpoints.
    pub points: Points,
    /// gdb's last resume request.
    pub resume: Resume,
    /// A fault kept for gdb to look at; the run ends with it.
    pub dead: Option<(Stop, Regs)>,
    /// How the run ended, once it did.
    pub ended: Option<(Stop, Regs)>,
    /// `host layout`'s text for this VM, from before it ran.
    pub layout: &'l str,
    /// The guest-debug state last given to KVM.
    last_debug: Option<(u32, [u64; 8])>,
    /// `monitor snapshot` asked for the run to end here and be saved.
    pub save_now: bool,
    /// `--record`: the checkpoints of time travel (`super::reverse`).
    pub record: Option<super::record::Recorder>,
    /// Their budget (`--record-budget`; `monitor record on` too).
    pub record_budget: u64,
    /// The run was started with `--record` (its vCPU thread's seccomp
    /// filter allows the checkpoints' KVM calls).
    pub record_allowed: bool,
}

impl<'l, 'a> Debuggee<'l, 'a> {
    /// The guest behind `lp`, stopped before its first instruction.
    pub fn new(lp: &'l mut ExitLoop<'a>, caps: Caps, layout: &'l str) -> Self {
        Debuggee {
            lp,
            caps,
            points: Points::default(),
            resume: Resume::Continue,
            dead: None,
            ended: None,
            layout,
            last_debug: None,
            save_now: false,
            record: None,
            record_budget: super::record::DEFAULT_BUDGET,
            record_allowed: false,
        }
    }

    /// Whether `monitor record on` can start a recording here.
    pub fn can_record(&self) -> Result<(), &'static str> {
        match self.record_allowed {
            true => Ok(()),
            false => Err(
                "start the run with --record: only then may the vCPU thread (under seccomp) make the checkpoints' KVM calls, and only then were the runs time travel cannot replay refused",
            ),
        }
    }

    /// The guest-debug state must be given to KVM again at the next run.
    pub(super) fn forget_debug(&mut self) {
        self.last_debug = None;
    }

    fn paging(&self) -> Result<Paging, VcpuError> {
        Ok(Paging::from_sregs(
            &self.lp.vcpu.sregs("gdb: translate an address", &mut None)?,
        ))
    }

    /// Reads guest memory at linear `start`; returns how much could be read.
    pub fn read(&self, start: u64, data: &mut [u8]) -> Result<usize, VcpuError> {
        Ok(translate::read_linear(
            self.lp.mem,
            &self.paging()?,
            start,
            data,
        ))
    }

    /// The `len`-byte (1, 2, 4 or 8) little-endian value at linear `lin`,
    /// if mapped.
    pub fn value_at(&self, lin: u64, len: u64) -> Result<Option<u64>, VcpuError> {
        let mut b = [0u8; 8];
        let n = len.min(8) as usize;
        Ok((self.read(lin, &mut b[..n])? == n).then(|| u64::from_le_bytes(b)))
    }

    /// Writes guest memory at linear `start`; false if any of it is not
    /// mapped (what was before the gap is written).
    pub fn write(&self, start: u64, data: &[u8]) -> Result<bool, VcpuError> {
        Ok(translate::write_linear(
            self.lp.mem,
            &self.paging()?,
            start,
            data,
        ))
    }

    /// Gives KVM the guest-debug state for a run: the breakpoints, and
    /// single-step when `single_step` (with interrupts held back where
    /// this KVM can), and an execute breakpoint at `back` (where a `hlt`
    /// run plainly returns). Only when it changed.
    fn arm(&mut self, single_step: bool, back: Option<u64>) -> Result<(), VcpuError> {
        let want = self
            .points
            .guest_debug_with(single_step, self.caps.block_irq, back);
        self.set_debug(want)
    }

    /// KVM_SET_GUEST_DEBUG with `want` (control, debug registers), when it
    /// is not what KVM has.
    pub(super) fn set_debug(&mut self, want: (u32, [u64; 8])) -> Result<(), VcpuError> {
        if self.last_debug != Some(want) {
            self.lp
                .vcpu
                .set_guest_debug(want.0, want.1, self.lp.trace)?;
            self.last_debug = Some(want);
        }
        Ok(())
    }

    /// The byte at linear `lin`, if mapped.
    fn byte_at(&self, p: &Paging, lin: u64) -> Option<u8> {
        let mut b = [0u8];
        (translate::read_linear(self.lp.mem, p, lin, &mut b) == 1).then_some(b[0])
    }

    /// Turns guest debugging off (gdb detached).
    pub fn disarm(&mut self) -> Result<(), VcpuError> {
        if self.last_debug.is_some_and(|(c, _)| c != 0) {
            self.lp.vcpu.set_guest_debug(0, [0; 8], self.lp.trace)?;
        }
        self.last_debug = Some((0, [0; 8]));
        Ok(())
    }

    /// A stop request that ends the run while gdb has the guest stopped:
    /// a host Ctrl-C, or another vCPU ended the VM.
    pub fn stop_request(&self) -> Option<Stop> {
        if crate::signals::interrupted() {
            Some(Stop::Interrupted)
        } else if self
            .lp
            .cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Acquire))
        {
            Some(Stop::Cancelled)
        } else {
            None
        }
    }

    /// Ends the run where the guest is now.
    pub fn end_here(&mut self, stop: Stop) -> Result<(Stop, Regs), VcpuError> {
        let regs = self.lp.vcpu.regs(self.lp.trace)?;
        Ok((stop, regs))
    }

    /// Runs the guest as gdb asked until it stops for gdb, or a kick.
    pub fn run(
        &mut self,
        clock: &mut Clock<'_>,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<Ran, VcpuError> {
        // back in time (a faulted guest too: that is what it is for)
        if matches!(self.resume, Resume::ReverseStep | Resume::ReverseCont) {
            crate::signals::consume_kicks();
            return self.reverse(out, diag);
        }
        if let Some((stop, regs)) = self.dead.take() {
            // a faulted guest cannot go on: the run ends with its fault
            self.ended = Some((stop, regs));
            return Ok(Ran::Stopped(SingleThreadStopReason::Terminated(
                Signal::SIGSEGV,
            )));
        }
        // gdb's packets while the guest was stopped each queued a kick
        // (the socket is O_ASYNC); they are read, so drop them. Stop
        // requests do not depend on them: `interrupted` and `cancel` are
        // flags the loop reads, and the clock arms a fresh timer.
        crate::signals::consume_kicks();
        let step = self.resume == Resume::Step;
        let stepping = step || self.points.needs_stepping();
        // Under single-step a `hlt` gives a debug exit, not KVM_EXIT_HLT,
        // and the guest goes on past it: step onto a `hlt` and run it
        // plainly, so it ends the run as it does without gdb; a hardware
        // breakpoint on the next instruction brings the step back there
        // once an interrupt has woken the guest and its handler returned.
        let paging = if stepping { Some(self.paging()?) } else { None };
        let mut pc = match paging {
            Some(_) => Some(self.lp.vcpu.sregs_linear_rip()?),
            None => None,
        };
        clock.start(self.lp);
        loop {
            let at_hlt = match (&paging, pc) {
                (Some(p), Some(pc)) => self.byte_at(p, pc) == Some(HLT),
                _ => false,
            };
            // a step over an iret or sysret stops where it returns (its
            // bytes looked at first: the registers only for one of those)
            let at_return = match (&paging, pc) {
                (Some(p), Some(pc)) if stepping && !at_hlt => self.looks_like_return_at(p, pc),
                _ => false,
            };
            let back = match at_return {
                true => match self.return_stop() {
                    Ok(b) => b,
                    Err(e) => {
                        clock.stop();
                        return Err(e);
                    }
                },
                false => pc.filter(|_| at_hlt).map(|pc| pc + 1),
            };
            if let Err(e) = self.arm(stepping && !at_hlt, back) {
                clock.stop();
                return Err(e);
            }
            // time travel: stop at the next checkpoint's exit, and print
            // nothing for exits served once already
            let (mut mark, quiet) = self.mark();
            // a step over an exit ends right after it (the CPU's trap after
            // the instruction; kvm-pvm would run one more before the trap)
            let before = self.lp.stats.guest_exits();
            if step && let Some(crate::config::SnapAt::GuestExits(m)) = mark {
                mark = Some(crate::config::SnapAt::GuestExits(m.min(before + 1)));
            }
            let keep = match mark {
                Some(m) => self.lp.snapshot_at.replace(m),
                None => self.lp.snapshot_at,
            };
            let pause = match quiet {
                true => self
                    .lp
                    .run_debug(&mut std::io::sink(), &mut std::io::sink()),
                false => self.lp.run_debug(out, diag),
            };
            if mark.is_some() {
                self.lp.snapshot_at = keep;
            }
            let pause = match pause {
                Ok(p) => p,
                Err(e) => {
                    clock.stop();
                    return Err(e);
                }
            };
            match pause {
                Pause::Kicked => {
                    clock.stop();
                    return Ok(Ran::Input);
                }
                Pause::Ended(Stop::Snapshot, _) if mark.is_some() => {
                    // a mark: a checkpoint is due, or the output goes on
                    let r = self.marked().and_then(|()| match step {
                        true => self.settle(),
                        false => Ok(()),
                    });
                    if let Err(e) = r {
                        clock.stop();
                        return Err(e);
                    }
                    if step && self.lp.stats.guest_exits() > before {
                        clock.stop();
                        return Ok(Ran::Stopped(SingleThreadStopReason::DoneStep));
                    }
                    continue;
                }
                Pause::Ended(stop, regs) => {
                    clock.stop();
                    self.advanced();
                    return Ok(Ran::Stopped(self.ended_with(stop, regs, out, diag)?));
                }
                Pause::Debug {
                    exception,
                    pc: at,
                    dr6,
                } => {
                    let changed = match self.watch_changed() {
                        Ok(c) => c,
                        Err(e) => {
                            clock.stop();
                            return Err(e);
                        }
                    };
                    let why = match changed {
                        Some(addr) => Some(SingleThreadStopReason::Watch {
                            tid: (),
                            kind: gdbstub::target::ext::breakpoints::WatchKind::Write,
                            addr,
                        }),
                        None => self.points.classify(step, exception, at, dr6),
                    };
                    if let Some(r) = why {
                        clock.stop();
                        self.advanced();
                        return Ok(Ran::Stopped(r));
                    }
                    pc = Some(at);
                }
            }
        }
    }

    /// The address of the first stepped write watchpoint whose value
    /// changed (its new value is kept).
    fn watch_changed(&mut self) -> Result<Option<u64>, VcpuError> {
        for i in 0..self.points.watched.len() {
            let (addr, len, old) = self.points.watched[i];
            if let Some(now) = self.value_at(addr, len)?
                && now != old
            {
                self.points.watched[i].2 = now;
                return Ok(Some(addr));
            }
        }
        Ok(None)
    }

    /// The run ended: a halt is gdb's "exited" with the guest's RAX; a
    /// fault stops for gdb with the registers intact (the run ends at
    /// the next resume); a timeout, Ctrl-C or another vCPU's end
    /// terminates it.
    fn ended_with(
        &mut self,
        stop: Stop,
        regs: Regs,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<SingleThreadStopReason<u64>, VcpuError> {
        use SingleThreadStopReason as R;
        let reason = match &stop {
            Stop::Halted => R::Exited(regs.rax as u8),
            Stop::Faulted { fault, .. } => {
                if let Fault::Exception { .. } = fault {
                    // the host's exception stub ran since: gdb reads the
                    // vCPU, so put back the registers of the fault
                    let mut r = self.lp.vcpu.kvm_regs()?;
                    (r.rip, r.rsp, r.rflags, r.rdx) = (regs.rip, regs.rsp, regs.rflags, regs.rdx);
                    self.lp.vcpu.set_kvm_regs(&r, self.lp.trace)?;
                }
                crate::diag::host_line(
                    out,
                    diag,
                    format_args!(
                        "gdb: the guest stopped with a fault ({fault}); its registers and memory stay for gdb until it continues, steps or kills"
                    ),
                )?;
                self.dead = Some((stop, regs));
                return Ok(R::Signal(Signal::SIGSEGV));
            }
            Stop::TimedOut { .. } => R::Terminated(Signal::SIGALRM),
            Stop::Interrupted => R::Terminated(Signal::SIGINT),
            Stop::Cancelled | Stop::Killed => R::Terminated(Signal::SIGKILL),
            // (`--gdb` and `--snapshot` do not go together)
            Stop::Snapshot => R::Terminated(Signal::SIGSTOP),
        };
        self.ended = Some((stop, regs));
        Ok(reason)
    }
}
