//! A vCPU's interrupts, in its exit loop: the ticks of `--inject-every`
//! (through KVM_INTERRUPT with the user-space controller, through an irqfd
//! with the in-kernel one), the interrupt window, what a HLT means when
//! interrupts can still come, and, with the in-kernel controller (where
//! HLT does not exit), noticing a HLT with interrupts off.

use crate::config::{Inject, IrqChip};
use crate::kvm::{KvmError, Raiser, Vcpu};
use crate::stats::{ExitStats, IrqVia};
use crate::trace::Tracer;
use std::time::{Duration, Instant};

/// How often the vCPU thread is kicked out of KVM_RUN, with the in-kernel
/// controller, to see whether the guest halted with interrupts off (no
/// exit says so): a bound on how late such a run ends.
pub const HALT_WATCH: Duration = Duration::from_millis(2);

/// One vCPU's interrupt state.
pub struct IrqRun<'a> {
    /// The VM's controller.
    pub chip: IrqChip,
    /// `--inject-every` (vCPU 0 only).
    pub inject: Option<Inject>,
    /// In-kernel controller: how the IRQ line is raised.
    pub raiser: Option<&'a Raiser>,
    next: Option<Instant>,
    pending: bool,
    /// The VM's fd, for reading the in-kernel controllers (gdb's `monitor
    /// irq`); the VM outlives every vCPU thread.
    pub vm_fd: Option<std::os::fd::RawFd>,
}

impl<'a> IrqRun<'a> {
    /// The state of a run with `chip` and `inject`, ticking from now.
    pub fn new(chip: IrqChip, inject: Option<Inject>, raiser: Option<&'a Raiser>) -> Self {
        IrqRun {
            chip,
            inject,
            raiser,
            next: inject.map(|i| Instant::now() + i.period),
            pending: false,
            vm_fd: None,
        }
    }

    /// The same, able to read the VM's in-kernel controllers.
    pub fn with_vm(self, vm_fd: std::os::fd::RawFd) -> Self {
        IrqRun {
            vm_fd: Some(vm_fd),
            ..self
        }
    }

    /// The period of the thread's kick timer: `--polling`'s, and what
    /// `chip` and `inject` need; the shortest of them.
    pub fn kick_period(
        polling: Option<Duration>,
        chip: IrqChip,
        inject: Option<Inject>,
    ) -> Option<Duration> {
        let watch = (chip == IrqChip::Kernel).then_some(HALT_WATCH);
        [polling, watch, inject.map(|i| i.period)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Counts the ticks due by now.
    fn tick(&mut self, stats: &mut ExitStats, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        let (Some(next), Some(inj)) = (self.next, self.inject) else {
            return Ok(());
        };
        let now = Instant::now();
        if now < next {
            return Ok(());
        }
        // ticks missed while the guest could not take them are one, as an
        // edge-triggered line coalesces them
        let mut n = next + inj.period;
        if n <= now {
            n = now + inj.period;
        }
        self.next = Some(n);
        match (self.chip, self.raiser) {
            (IrqChip::Kernel, Some(r)) => {
                r.raise(trace)?;
                stats.record_interrupt(r.via(), inj.n as u8);
            }
            _ => self.pending = true,
        }
        Ok(())
    }

    /// Before KVM_RUN: a tick due is raised (irqfd) or, with the user-space
    /// controller, injected if the guest can take it now, else the
    /// interrupt window is asked for.
    pub fn before_entry(
        &mut self,
        vcpu: &mut Vcpu,
        stats: &mut ExitStats,
        trace: &mut Option<Tracer>,
    ) -> Result<(), KvmError> {
        self.tick(stats, trace)?;
        if self.chip != IrqChip::User {
            return Ok(());
        }
        if self.pending && vcpu.can_take_interrupt() {
            if let Some(i) = self.inject {
                vcpu.interrupt(i.n, trace)?;
                stats.record_interrupt(IrqVia::KvmInterrupt, i.n as u8);
            }
            self.pending = false;
            vcpu.request_interrupt_window(false);
        } else {
            vcpu.request_interrupt_window(self.pending);
        }
        Ok(())
    }

    /// At a HLT exit (no in-kernel controller): whether the run goes on.
    /// It does when the guest halted with interrupts on and a tick will
    /// come: this waits for it, or for Ctrl-C or `deadline` (`--timeout`),
    /// after which the loop looks at its stop requests.
    pub fn wait_at_hlt(&mut self, vcpu: &mut Vcpu, deadline: Option<Instant>) -> bool {
        let (Some(next), IrqChip::User) = (self.next, self.chip) else {
            return false;
        };
        if !vcpu.interrupts_on() {
            return false;
        }
        let until = deadline.map_or(next, |d| d.min(next));
        loop {
            let now = Instant::now();
            if now >= until || crate::signals::interrupted() {
                return true;
            }
            // the thread's timer kicks at every period: wait on
            wait_kick(until - now);
        }
    }

    /// At a HLT that ends the run with the user-space controller: a line
    /// saying why, when the guest halted with interrupts on (it waits for
    /// an interrupt the host will never inject: no `--inject-every` for
    /// this vCPU).
    pub fn hlt_note(&self, vcpu: &mut Vcpu) -> Option<String> {
        (self.chip == IrqChip::User && self.inject.is_none() && vcpu.interrupts_on()).then(|| {
            "the guest halted with interrupts on, but nothing will interrupt it (--irqchip user without --inject-every for this vCPU): the HLT ends the run".to_string()
        })
    }

    /// At a fault: the vector the guest was serving (in-kernel controller:
    /// the local APIC's in-service register); None with the user-space
    /// controller, where no end of interrupt tells when a handler ends.
    pub fn serving(&self, vcpu: &Vcpu) -> Option<u8> {
        if self.chip != IrqChip::Kernel {
            return None;
        }
        vcpu.in_service().ok().flatten()
    }

    /// At a kick, with the in-kernel controller: whether the guest is
    /// halted with interrupts off, which ends the run as a HLT exit does.
    pub fn halted_for_good(&self, vcpu: &Vcpu) -> Result<bool, KvmError> {
        if self.chip != IrqChip::Kernel {
            return Ok(false);
        }
        vcpu.halted_for_good()
    }
}

/// Waits up to `max` for a kick (the thread's timer, or a stop request)
/// and dequeues it.
fn wait_kick(max: Duration) {
    let set = crate::signals::set_of(&[crate::signals::kick_signal()]);
    let t = libc::timespec {
        tv_sec: max.as_secs() as libc::time_t,
        tv_nsec: max.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the kick is blocked in this thread outside KVM_RUN;
    // sigtimedwait waits for one pending instance until the timeout and
    // dequeues it (a timeout or EINTR is fine: the caller looks again).
    unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &t) };
}
