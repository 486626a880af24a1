//! Time travel under gdb (`--record`): checkpoints while the guest runs
//! forward, and gdb's reverse-stepi and reverse-continue by deterministic
//! re-execution from the nearest checkpoint.
//!
//! A place in the run is a position: the guest exits served before it
//! (kicks and debugger stops not counted) and the registers there. To go
//! to a position the host restores the newest checkpoint at or before its
//! exits, runs the guest at full speed to right after that exit (every
//! exit on the way served again as the first time: the host's state for
//! the guest came back with the checkpoint, and output already printed is
//! not printed again), then single-steps until the registers match. One
//! instruction back is the position one step before; before the first
//! step after an exit, it is the instruction that caused that exit.
//! reverse-continue replays each interval between two exits, newest
//! first, stepping, and stops at the last place a breakpoint's address was
//! reached or a watched value changed (before the store), or at the start
//! of the recording.

use super::debuggee::Debuggee;
use super::record::Recorder;
use crate::config::SnapAt;
use crate::vcpu::{Pause, Stop, VcpuError};
use gdbstub::stub::SingleThreadStopReason;
use gdbstub::target::ext::base::reverse_exec::ReplayLogPosition;
use kvm_bindings::{kvm_regs, kvm_sregs};

/// Most single steps one search takes before it gives up (a guest that
/// loops without exits for longer cannot be stepped back through).
const MAX_STEPS: u64 = 5_000_000;

/// The reason a reverse move stopped, for gdb.
type Reason = SingleThreadStopReason<u64>;

/// Whether two register files are the same place (TF and RF, which
/// single-stepping itself sets, left out).
fn same(a: &kvm_regs, b: &kvm_regs) -> bool {
    let flags = |r: &kvm_regs| r.rflags & !(1 << 8 | 1 << 16);
    (
        a.rax, a.rbx, a.rcx, a.rdx, a.rsi, a.rdi, a.rsp, a.rbp, a.rip,
    ) == (
        b.rax, b.rbx, b.rcx, b.rdx, b.rsi, b.rdi, b.rsp, b.rbp, b.rip,
    ) && (a.r8, a.r9, a.r10, a.r11, a.r12, a.r13, a.r14, a.r15)
        == (b.r8, b.r9, b.r10, b.r11, b.r12, b.r13, b.r14, b.r15)
        && flags(a) == flags(b)
}

/// What one single step did.
enum Step {
    /// One instruction ran (maybe with an exit served on the way).
    Done,
    /// The run ended (a halt or a fault) instead.
    Ended,
}

fn lost(what: &str) -> VcpuError {
    crate::diag::HostError::Debugger(format!("time travel: {what}")).into()
}

/// gdb sent something (its Ctrl-C) while a replay ran: the replay stops
/// where it is, as a forward run would. (A replay that never comes back
/// can be stopped this way: on the nested kvm_amd a vCPU that took a
/// KVM_EXIT_SHUTDOWN does not run again, whatever state it is given.)
fn interrupted() -> VcpuError {
    lost("interrupted by gdb; the guest is where the replay stopped")
}

impl Debuggee<'_, '_> {
    /// The guest's own exits so far.
    pub(super) fn exits(&self) -> u64 {
        self.lp.stats.guest_exits()
    }

    /// Puts checkpoint `i` back: memory, vCPU, exit counts, device.
    pub(super) fn restore(&mut self, i: usize) -> Result<(), VcpuError> {
        self.settle()?;
        let Some(r) = self.record.take() else {
            return Err(lost("no recording"));
        };
        let res = (|| -> Result<(), VcpuError> {
            let cp = &r.cps[i];
            self.unplant();
            r.restore_memory(self.lp.mem, i);
            self.lp.vcpu.restore_state(&cp.vcpu, &mut None)?;
            *self.lp.stats = cp.stats.reindexed();
            *self.lp.guest_errors = cp.guest_errors;
            self.lp
                .bus
                .load(&mut crate::wire::Dec::new(&cp.device))
                .map_err(|e| lost(&format!("the device's state: {e}")))?;
            Ok(())
        })();
        self.record = Some(r);
        self.dead = None;
        res
    }

    /// Runs forward (output to nowhere: it was printed the first time)
    /// until right after guest exit `n` is served and completed.
    fn run_to(&mut self, n: u64) -> Result<(), VcpuError> {
        if self.exits() >= n {
            return Ok(());
        }
        let keep = self.lp.snapshot_at.replace(SnapAt::GuestExits(n));
        let r = loop {
            match self
                .lp
                .run_debug(&mut std::io::sink(), &mut std::io::sink())
            {
                Ok(Pause::Ended(Stop::Snapshot, _)) => break Ok(()),
                Ok(Pause::Debug { .. }) => continue,
                Ok(Pause::Kicked) => break Err(interrupted()),
                Ok(Pause::Ended(stop, _)) => {
                    break Err(lost(&format!(
                        "the replay ended ({stop:?}) before exit {n}: the guest did not do what it did the first time"
                    )));
                }
                Err(e) => break Err(e),
            }
        };
        self.lp.snapshot_at = keep;
        r?;
        self.settle()
    }

    /// Position (`n`, 0): right after guest exit `n`.
    fn goto_exit(&mut self, n: u64) -> Result<(), VcpuError> {
        let i = self
            .record
            .as_ref()
            .and_then(|r| r.at_or_before(n))
            .ok_or_else(|| lost("no checkpoint that early"))?;
        self.restore(i)?;
        self.run_to(n)
    }

    /// One instruction, single-stepped with every breakpoint off.
    fn step1(&mut self) -> Result<Step, VcpuError> {
        let r = self.lp.vcpu.kvm_regs()?;
        let s = self.lp.vcpu.sregs("time travel: a step", &mut None)?;
        self.step1_from(&r, &s)
    }

    /// The same, from the registers read already.
    fn step1_from(&mut self, r: &kvm_regs, s: &kvm_sregs) -> Result<Step, VcpuError> {
        let back = self.return_stop_at(r, s);
        let want =
            super::points::Points::default().guest_debug_with(true, self.caps.block_irq, back);
        self.set_debug(want)?;
        match self
            .lp
            .run_debug(&mut std::io::sink(), &mut std::io::sink())?
        {
            Pause::Debug { .. } => Ok(Step::Done),
            Pause::Kicked => Err(interrupted()),
            Pause::Ended(..) => Ok(Step::Ended),
        }
    }

    /// `k` steps from where the guest is.
    fn steps(&mut self, k: u64) -> Result<(), VcpuError> {
        for _ in 0..k {
            if let Step::Ended = self.step1()? {
                return Err(lost("the replay ended while stepping"));
            }
        }
        Ok(())
    }

    /// From right after exit `e`: the steps to the registers `target`
    /// (None if the next exit came first).
    fn steps_to(&mut self, e: u64, target: &kvm_regs) -> Result<Option<u64>, VcpuError> {
        self.goto_exit(e)?;
        for k in 0..MAX_STEPS {
            let r = self.lp.vcpu.kvm_regs()?;
            if same(&r, target) {
                return Ok(Some(k));
            }
            let s = self.lp.vcpu.sregs("time travel: a step", &mut None)?;
            if matches!(self.step1_from(&r, &s)?, Step::Ended) || self.exits() > e {
                return Ok(None);
            }
        }
        Err(lost(
            "too many instructions without an exit to step through",
        ))
    }

    /// From right after exit `e - 1`: the steps before the instruction
    /// that caused exit `e`.
    fn steps_before_exit(&mut self, e: u64) -> Result<u64, VcpuError> {
        self.goto_exit(e - 1)?;
        for k in 0..MAX_STEPS {
            if matches!(self.step1()?, Step::Ended) || self.exits() >= e {
                return Ok(k);
            }
        }
        Err(lost(
            "too many instructions without an exit to step through",
        ))
    }

    /// Where the guest is: its exits (a fault's own exit not counted: gdb
    /// sees the registers of the faulting instruction) and registers.
    fn here(&self) -> Result<(u64, kvm_regs, bool), VcpuError> {
        let dead = self.dead.is_some();
        let e = self.exits().saturating_sub(u64::from(dead));
        Ok((e, self.lp.vcpu.kvm_regs()?, dead))
    }

    /// Goes to (`e`, `k`) and says where gdb is.
    fn land(&mut self, e: u64, k: u64, reason: Reason) -> Result<Reason, VcpuError> {
        self.goto_exit(e)?;
        self.steps(k)?;
        self.arrived()?;
        Ok(reason)
    }

    /// gdb's breakpoints back in, and the emulated watchpoints' values
    /// those of here (a step forward compares with them).
    fn arrived(&mut self) -> Result<(), VcpuError> {
        self.plant();
        for i in 0..self.points.watched.len() {
            let (a, l, _) = self.points.watched[i];
            if let Some(v) = self.value_at(a, l)? {
                self.points.watched[i].2 = v;
            }
        }
        Ok(())
    }

    /// The start of the recording, for gdb.
    fn at_start(&mut self) -> Result<Reason, VcpuError> {
        let s = self.record.as_ref().map_or(0, Recorder::start);
        self.goto_exit(s)?;
        self.arrived()?;
        Ok(Reason::ReplayLog {
            tid: None,
            pos: ReplayLogPosition::Begin,
        })
    }

    /// gdb's reverse-stepi: one instruction back.
    pub fn reverse_step(&mut self) -> Result<Reason, VcpuError> {
        let start = self.record.as_ref().map_or(0, Recorder::start);
        let (e, regs, dead) = self.here()?;
        match self.steps_to(e, &regs)? {
            Some(n) if n > 0 => self.land(e, n - 1, Reason::DoneStep),
            // right after exit e: back to the instruction that caused it
            Some(_) if e > start => {
                let m = self.steps_before_exit(e)?;
                self.land(e - 1, m, Reason::DoneStep)
            }
            Some(_) => self.at_start(),
            // a fault whose registers no step reached (a triple fault):
            // the instruction that raised it
            None if dead => {
                let m = self.steps_before_exit(e + 1)?;
                self.land(e, m, Reason::DoneStep)
            }
            None => Err(lost(&format!(
                "the replay from exit {e} did not come back to the registers the guest has here: it went another way than the first run (the guest read something that differs between runs: the TSC, RDRAND)"
            ))),
        }
    }

    /// The watched values (address, length) gdb set, emulated or in
    /// debug registers.
    fn watches(&self) -> Vec<(u64, u64)> {
        let mut w: Vec<(u64, u64)> = self
            .points
            .watched
            .iter()
            .map(|&(a, l, _)| (a, l))
            .collect();
        for s in self.points.slots.iter().flatten() {
            if let super::points::SlotKind::Watch(_, len) = s.kind {
                w.push((s.addr, len));
            }
        }
        w
    }

    /// Whether gdb has a breakpoint at linear `pc`.
    fn breaks_at(&self, pc: u64) -> bool {
        self.points.int3.iter().any(|&(a, _)| a == pc)
            || self.points.stepped.contains(&pc)
            || self
                .points
                .slots
                .iter()
                .flatten()
                .any(|s| s.addr == pc && s.kind == super::points::SlotKind::Exec)
    }

    /// gdb's reverse-continue: back to the last breakpoint or watched
    /// store before here, or to the start of the recording. Each stretch
    /// between two checkpoints, newest first, is brought back once and
    /// single-stepped through to where the one after it starts (or to
    /// here), keeping the last place a breakpoint's address was reached
    /// or a watched value changed (the place before the store).
    pub(super) fn reverse_cont(&mut self) -> Result<Reason, VcpuError> {
        let (e, regs, _) = self.here()?;
        // how far into interval e the guest is (all of it if not found)
        let limit = self.steps_to(e, &regs)?;
        let watches = self.watches();
        let mut end = (e, limit);
        let mut ci = self
            .record
            .as_ref()
            .and_then(|r| r.at_or_before(e))
            .ok_or_else(|| lost("no checkpoint that early"))?;
        loop {
            self.restore(ci)?;
            let (mut j, mut k) = (self.exits(), 0u64);
            let start = j;
            let mut found: Option<(u64, u64, Reason)> = None;
            let mut values: Vec<Option<u64>> = watches
                .iter()
                .map(|&(a, l)| self.value_at(a, l))
                .collect::<Result<_, _>>()?;
            for _ in 0..MAX_STEPS * 64 {
                if j > end.0 || (j == end.0 && end.1.is_some_and(|n| k >= n)) {
                    break;
                }
                let r = self.lp.vcpu.kvm_regs()?;
                let s = self.lp.vcpu.sregs("time travel: a step", &mut None)?;
                if self.breaks_at(s.cs.base.wrapping_add(r.rip)) {
                    found = Some((j, k, Reason::SwBreak(())));
                }
                if matches!(self.step1_from(&r, &s)?, Step::Ended) {
                    break;
                }
                let (pj, pk) = (j, k);
                match self.exits() {
                    now if now > j => (j, k) = (now, 0),
                    _ => k += 1,
                }
                for (i, &(a, l)) in watches.iter().enumerate() {
                    let now = self.value_at(a, l)?;
                    if now != values[i] {
                        values[i] = now;
                        found = Some((
                            pj,
                            pk,
                            Reason::Watch {
                                tid: (),
                                kind: gdbstub::target::ext::breakpoints::WatchKind::Write,
                                addr: a,
                            },
                        ));
                    }
                }
            }
            if let Some((j, k, why)) = found {
                return self.land(j, k, why);
            }
            if ci == 0 {
                return self.at_start();
            }
            ci -= 1;
            end = (start, Some(0));
        }
    }
}
