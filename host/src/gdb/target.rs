//! gdbstub's view of the guest: registers, memory, resume and step,
//! breakpoints and watchpoints, and `monitor` commands, for the register
//! file of the guest's CPU mode (`super::regs`).

use super::debuggee::{Debuggee, Resume};
use super::points::{MAX_POINTS, Slot, SlotKind, watchable};
use super::regs::ModeArch;
use crate::vcpu::VcpuError;
use gdbstub::common::Signal;
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::reverse_exec::{
    ReverseCont, ReverseContOps, ReverseStep, ReverseStepOps,
};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use std::marker::PhantomData;

/// The guest, for gdbstub, with the register file of `A`.
pub struct Guest<'l, 'a, A> {
    /// The guest.
    pub d: Debuggee<'l, 'a>,
    _arch: PhantomData<A>,
}

impl<'l, 'a, A> Guest<'l, 'a, A> {
    /// Wraps `d`.
    pub fn new(d: Debuggee<'l, 'a>) -> Self {
        Guest {
            d,
            _arch: PhantomData,
        }
    }
}

impl<A: ModeArch> Target for Guest<'_, '_, A> {
    type Arch = A;
    type Error = VcpuError;

    fn base_ops(&mut self) -> BaseOps<'_, A, VcpuError> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
}

impl<A: ModeArch> SingleThreadBase for Guest<'_, '_, A> {
    fn read_registers(&mut self, regs: &mut A::Registers) -> TargetResult<(), Self> {
        let v = &self.d.lp.vcpu;
        let r = v.kvm_regs().map_err(|e| TargetError::Fatal(e.into()))?;
        let s = v
            .sregs("gdb: read registers", &mut None)
            .map_err(|e| TargetError::Fatal(e.into()))?;
        *regs = A::from_kvm(&r, &s);
        Ok(())
    }

    fn write_registers(&mut self, regs: &A::Registers) -> TargetResult<(), Self> {
        let v = &self.d.lp.vcpu;
        let mut r = v.kvm_regs().map_err(|e| TargetError::Fatal(e.into()))?;
        let s = v
            .sregs("gdb: write registers", &mut None)
            .map_err(|e| TargetError::Fatal(e.into()))?;
        A::to_kvm(regs, &mut r, &s);
        v.set_kvm_regs(&r, self.d.lp.trace)
            .map_err(|e| TargetError::Fatal(e.into()))?;
        self.d.changed().map_err(TargetError::Fatal)
    }

    fn read_addrs(&mut self, start: A::Usize, data: &mut [u8]) -> TargetResult<usize, Self> {
        let n = self
            .d
            .read(A::to_u64(start), data)
            .map_err(TargetError::Fatal)?;
        if n == 0 && !data.is_empty() {
            // gdb shows "Cannot access memory at address ..."
            return Err(TargetError::NonFatal);
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: A::Usize, data: &[u8]) -> TargetResult<(), Self> {
        match self.d.write(A::to_u64(start), data) {
            Ok(true) => self.d.changed().map_err(TargetError::Fatal),
            Ok(false) => Err(TargetError::NonFatal),
            Err(e) => Err(TargetError::Fatal(e)),
        }
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl<A: ModeArch> SingleThreadResume for Guest<'_, '_, A> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), VcpuError> {
        // a signal gdb passes on (`signal N`) has no meaning for a guest
        self.d.resume = Resume::Continue;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        if self.d.caps.single_step {
            Some(self)
        } else {
            None
        }
    }

    // time travel (`--record`, `monitor record on`) steps the guest
    fn support_reverse_step(&mut self) -> Option<ReverseStepOps<'_, (), Self>> {
        self.d.caps.single_step.then_some(self as _)
    }

    fn support_reverse_cont(&mut self) -> Option<ReverseContOps<'_, (), Self>> {
        self.d.caps.single_step.then_some(self as _)
    }
}

impl<A: ModeArch> ReverseStep<()> for Guest<'_, '_, A> {
    fn reverse_step(&mut self, _tid: ()) -> Result<(), VcpuError> {
        self.d.resume = Resume::ReverseStep;
        Ok(())
    }
}

impl<A: ModeArch> ReverseCont<()> for Guest<'_, '_, A> {
    fn reverse_cont(&mut self) -> Result<(), VcpuError> {
        self.d.resume = Resume::ReverseCont;
        Ok(())
    }
}

impl<A: ModeArch> SingleThreadSingleStep for Guest<'_, '_, A> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), VcpuError> {
        self.d.resume = Resume::Step;
        Ok(())
    }
}

impl<A: ModeArch> Breakpoints for Guest<'_, '_, A> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl<A: ModeArch> Guest<'_, '_, A> {
    /// A breakpoint by single-stepping and comparing RIP.
    fn add_stepped(&mut self, addr: u64) -> bool {
        let p = &mut self.d.points;
        if !self.d.caps.single_step || p.stepped.len() >= MAX_POINTS {
            return false;
        }
        if !p.stepped.contains(&addr) {
            p.stepped.push(addr);
        }
        true
    }

    fn remove_stepped(&mut self, addr: u64) -> bool {
        let before = self.d.points.stepped.len();
        self.d.points.stepped.retain(|&a| a != addr);
        self.d.points.stepped.len() != before
    }
}

impl<A: ModeArch> SwBreakpoint for Guest<'_, '_, A> {
    fn add_sw_breakpoint(&mut self, addr: A::Usize, _kind: usize) -> TargetResult<bool, Self> {
        let addr = A::to_u64(addr);
        if !self.d.caps.sw_breakpoints {
            // int3 does not stop here: a debug register while one is
            // free, else single-stepping
            let exec = Slot {
                addr,
                kind: SlotKind::Exec,
            };
            if self.d.caps.hw_breakpoints && self.d.points.take_slot(exec) {
                return Ok(true);
            }
            return Ok(self.add_stepped(addr));
        }
        if self.d.points.int3.len() >= MAX_POINTS {
            return Ok(false);
        }
        if self.d.points.int3.iter().any(|&(a, _)| a == addr) {
            return Ok(true);
        }
        let mut orig = [0u8];
        if self.d.read(addr, &mut orig).map_err(TargetError::Fatal)? != 1
            || !self.d.write(addr, &[0xcc]).map_err(TargetError::Fatal)?
        {
            return Ok(false);
        }
        self.d.points.int3.push((addr, orig[0]));
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: A::Usize, _kind: usize) -> TargetResult<bool, Self> {
        let addr = A::to_u64(addr);
        if let Some(i) = self.d.points.int3.iter().position(|&(a, _)| a == addr) {
            let (_, orig) = self.d.points.int3.swap_remove(i);
            return self.d.write(addr, &[orig]).map_err(TargetError::Fatal);
        }
        let exec = Slot {
            addr,
            kind: SlotKind::Exec,
        };
        Ok(self.remove_stepped(addr) || self.d.points.free_slot(exec))
    }
}

impl<A: ModeArch> HwBreakpoint for Guest<'_, '_, A> {
    fn add_hw_breakpoint(&mut self, addr: A::Usize, _kind: usize) -> TargetResult<bool, Self> {
        let addr = A::to_u64(addr);
        if !self.d.caps.hw_breakpoints {
            // no debug registers here: the same breakpoint by stepping
            return Ok(self.add_stepped(addr));
        }
        Ok(self.d.points.take_slot(Slot {
            addr,
            kind: SlotKind::Exec,
        }))
    }

    fn remove_hw_breakpoint(&mut self, addr: A::Usize, _kind: usize) -> TargetResult<bool, Self> {
        let addr = A::to_u64(addr);
        if !self.d.caps.hw_breakpoints {
            return Ok(self.remove_stepped(addr));
        }
        Ok(self.d.points.free_slot(Slot {
            addr,
            kind: SlotKind::Exec,
        }))
    }
}

impl<A: ModeArch> HwWatchpoint for Guest<'_, '_, A> {
    fn add_hw_watchpoint(
        &mut self,
        addr: A::Usize,
        len: A::Usize,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        let (addr, len) = (A::to_u64(addr), A::to_u64(len));
        if !watchable(addr, len) {
            return Ok(false);
        }
        let slot = Slot {
            addr,
            kind: SlotKind::Watch(kind, len),
        };
        if self.d.caps.hw_watchpoints && self.d.points.take_slot(slot) {
            return Ok(true);
        }
        // no debug register for it: a write watch by stepping and
        // comparing the value (a read leaves no trace to compare)
        let p = &self.d.points;
        if kind != WatchKind::Write || !self.d.caps.single_step || p.watched.len() >= MAX_POINTS {
            return Ok(false);
        }
        let Some(value) = self.d.value_at(addr, len).map_err(TargetError::Fatal)? else {
            return Ok(false);
        };
        self.d.points.watched.push((addr, len, value));
        Ok(true)
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: A::Usize,
        len: A::Usize,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        let (addr, len) = (A::to_u64(addr), A::to_u64(len));
        let w = &mut self.d.points.watched;
        if let Some(i) = w.iter().position(|&(a, l, _)| (a, l) == (addr, len)) {
            w.swap_remove(i);
            return Ok(true);
        }
        Ok(self.d.points.free_slot(Slot {
            addr,
            kind: SlotKind::Watch(kind, len),
        }))
    }
}

impl<A: ModeArch> MonitorCmd for Guest<'_, '_, A> {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), VcpuError> {
        let text = super::monitor::command(&mut self.d, &String::from_utf8_lossy(cmd));
        gdbstub::output!(out, "{}", text);
        Ok(())
    }
}
