//! The hot path of one vCPU, top to bottom: KVM_RUN returns -> count and
//! serve the exit where it arrives (the device bus for I/O and MMIO, the
//! end of the run for HLT and fatal exits, the stop requests for a kick)
//! -> write the answer back -> KVM_RUN again. No allocation and no extra
//! vCPU ioctl on this path unless a hypercall needs one (`gva_to_hva` reads
//! the special registers).

use super::outcome::{Pause, Stop, VcpuError};
use crate::config::SnapAt;
use crate::devices::hypercall::Io;
use crate::devices::{Bus, Ctx};
use crate::diag::HostError;
use crate::kvm::fault::Fault;
use crate::kvm::{KvmError, Vcpu, vcpu::is_kick};
use crate::stats::Dir;
use crate::stats::{ExitReason, ExitStats};
use crate::trace::Tracer;
use crate::x86::{Regs, exception};
use hypercall_abi::block::Block;
use hypercall_abi::{ExceptionReport, REPORT_CR2, REPORT_ERROR_CODE, layout};
use kvm_ioctls::VcpuExit;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;
use vm_memory::{Bytes, GuestAddress};

/// The `snapshot` hypercall's port.
const SNAPSHOT_PORT: u16 = hypercall_abi::Hypercall::Snapshot.port();

/// What one vCPU's loop works with.
pub struct ExitLoop<'a> {
    /// The vCPU.
    pub vcpu: &'a mut Vcpu,
    /// Guest memory.
    pub mem: &'a GuestMemoryMmap,
    /// The VM's devices (shared by its vCPUs).
    pub bus: &'a Bus,
    /// This vCPU's exit counts.
    pub stats: &'a mut ExitStats,
    /// Bad hypercall arguments reported by this vCPU.
    pub guest_errors: &'a mut crate::devices::hypercall::GuestErrors,
    /// `--trace-kvm` (one vCPU only).
    pub trace: &'a mut Option<Tracer>,
    /// `--timeout`: when, and how long it was.
    pub deadline: Option<(Instant, Duration)>,
    /// Set when another vCPU ended the VM (checked before every KVM_RUN;
    /// the setter also kicks this thread out of KVM_RUN).
    pub cancel: Option<&'a AtomicBool>,
    /// `--stats`: time the host's handling of each exit.
    pub profile: bool,
    /// vCPU 0 of several: the others, for a driver's clock
    /// ([`super::others::Others`]).
    pub others: Option<&'a super::others::Others>,
    /// Interrupts: the controller, `--inject-every` (None: a VM without a
    /// controller, whose loop has nothing to do for them).
    pub irq: Option<super::irq::IrqRun<'a>>,
    /// `--snapshot-at`: stop for a snapshot after exit N or at the guest's
    /// `snapshot` hypercall (a stop at Ctrl-C or `--timeout` is the VM's).
    pub snapshot_at: Option<SnapAt>,
    /// `--trace-out`: this vCPU's KVM_RUN and exit-handling slices.
    pub timeline: Option<&'a mut crate::timeline::Timeline>,
}

impl ExitLoop<'_> {
    /// Runs the vCPU until it halts, faults, times out, is interrupted or
    /// cancelled; returns how it ended and its registers then.
    pub fn run(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(Stop, Regs), VcpuError> {
        let r = self.serve(false, out, diag);
        if let Some(t) = self.timeline.as_deref_mut() {
            t.handled(self.stats.last_raw());
        }
        match r? {
            Pause::Ended(stop, regs) => Ok((stop, regs)),
            // serve(false, ..) ends only with Ended
            Pause::Debug { .. } | Pause::Kicked => {
                Err(HostError::Internal("a debugger stop in a run without a debugger").into())
            }
        }
    }

    /// Like `run`, for a debugger (`crate::gdb`): it also comes back at a
    /// KVM_EXIT_DEBUG (a single step or a breakpoint set with
    /// `Vcpu::set_guest_debug`) and at a kick that was not for a stop
    /// request (data from the debugger, `--polling`), with the guest's
    /// state left as it was for the debugger to read and resume.
    pub fn run_debug(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<Pause, VcpuError> {
        self.serve(true, out, diag)
    }

    fn serve(
        &mut self,
        debug: bool,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<Pause, VcpuError> {
        // A SIGINT/SIGTERM before this thread was registered for kicks
        // (signals::arm_thread) left no kick pending: look once here.
        if crate::signals::interrupted() {
            return self.end(Stop::Interrupted, out);
        }
        loop {
            if self.cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
                return self.end(Stop::Cancelled, out);
            }
            // the last exit (of any kind) was served: stop here for a
            // snapshot after exit N
            match self.snapshot_at {
                Some(SnapAt::Exits(n)) if self.stats.total() >= n => {
                    return self.end(Stop::Snapshot, out);
                }
                Some(SnapAt::GuestExits(n)) if self.stats.guest_exits() >= n => {
                    return self.end(Stop::Snapshot, out);
                }
                _ => {}
            }
            if let Some(t) = self.timeline.as_deref_mut() {
                t.handled(self.stats.last_raw());
            }
            if let Some(irq) = &mut self.irq {
                irq.before_entry(self.vcpu, self.stats, self.trace)?;
            }
            let entered = self.timeline.is_some().then(Instant::now);
            let exit = self.vcpu.run();
            if let (Some(t), Some(from)) = (self.timeline.as_deref_mut(), entered) {
                t.ran(from);
            }
            let t0 = self.profile.then(Instant::now);
            self.bus.poll(self.mem, out, diag)?;
            let mut cx = Ctx {
                mem: self.mem,
                stats: &mut *self.stats,
                out: &mut *out,
                diag: &mut *diag,
                guest_errors: &mut *self.guest_errors,
            };
            match exit {
                Ok(VcpuExit::IoOut(port, data)) => {
                    // the data bytes are copied: the vCPU is free again
                    let io = Io::out(data);
                    if (port == layout::EXCEPTION_PORT || port == layout::PANIC_PORT)
                        && let Some(p) = exception(self.vcpu, self.trace, &mut cx, port, io)?
                    {
                        return Ok(self.with_serving(p));
                    }
                    let (vcpu, trace) = (&*self.vcpu, &mut *self.trace);
                    self.bus
                        .io_out(&mut cx, port, io, || vcpu.paging_now(trace))?;
                    if port == SNAPSHOT_PORT && self.snapshot_at == Some(SnapAt::Call) {
                        self.vcpu.trace_exit(self.trace, false);
                        return self.end(Stop::Snapshot, out);
                    }
                }
                Ok(VcpuExit::IoIn(port, data)) => self.bus.io_in(&mut cx, port, data)?,
                Ok(VcpuExit::MmioRead(addr, data)) => self.bus.mmio_read(&mut cx, addr, data)?,
                Ok(VcpuExit::MmioWrite(addr, data)) => self.bus.mmio_write(&mut cx, addr, data)?,
                Ok(VcpuExit::Hlt) => {
                    self.stats.record(ExitReason::Hlt);
                    // halted with interrupts on and a tick to come: it waits
                    let deadline = self.deadline.map(|(at, _)| at);
                    if !self
                        .irq
                        .as_mut()
                        .is_some_and(|i| i.wait_at_hlt(self.vcpu, deadline))
                    {
                        if let Some(line) = self.irq.as_ref().and_then(|i| i.hlt_note(self.vcpu)) {
                            crate::diag::host_line(out, diag, format_args!("{line}"))?;
                        }
                        return self.end(Stop::Halted, out);
                    }
                    if let Some(stop) = self.stop_request() {
                        return self.end(stop, out);
                    }
                }
                Ok(VcpuExit::IrqWindowOpen) => {
                    self.stats.record(ExitReason::IrqWindow);
                }
                Ok(VcpuExit::Debug(d)) if debug => {
                    self.stats.record(ExitReason::Debug);
                    self.vcpu.trace_exit(self.trace, false);
                    out.flush().map_err(HostError::from)?;
                    return Ok(Pause::Debug {
                        exception: d.exception,
                        pc: d.pc,
                        dr6: d.dr6,
                    });
                }
                Ok(_) => {
                    // Every other exit is fatal: shutdown (triple fault),
                    // failed entry, internal error, memory fault, or one
                    // this host does not handle.
                    let (reason, fault) = self.vcpu.fault();
                    self.stats.record(reason);
                    out.flush().map_err(HostError::from)?;
                    self.vcpu.trace_exit(self.trace, true);
                    let regs = self.vcpu.regs(self.trace)?;
                    let s = self
                        .vcpu
                        .sregs("control registers for the fault report", self.trace)?;
                    let stop = Stop::faulted(fault, &s);
                    return Ok(self.with_serving(Pause::Ended(stop, regs)));
                }
                Err(e) if is_kick(&e) => {
                    self.stats.record(ExitReason::Intr);
                    if let Some(t) = &mut *self.trace {
                        t.exit_errno(self.vcpu.fd_raw(), e.errno());
                    }
                    crate::signals::consume_kicks();
                    if let Some(stop) = self.stop_request() {
                        return self.end(stop, out);
                    }
                    // the in-kernel controller: a HLT with interrupts off
                    // does not exit; the kick timer looks for it
                    if let Some(irq) = &self.irq
                        && irq.halted_for_good(self.vcpu)?
                    {
                        self.stats.record(ExitReason::Hlt);
                        return self.end(Stop::Halted, out);
                    }
                    if let Some(t0) = t0 {
                        self.stats.charge(t0.elapsed());
                    }
                    if debug {
                        out.flush().map_err(HostError::from)?;
                        return Ok(Pause::Kicked);
                    }
                    continue;
                }
                Err(e) => return Err(KvmError::ioctl("KVM_RUN")(e).into()),
            }
            self.vcpu.trace_exit(self.trace, false);
            if let Some(t0) = t0 {
                self.stats.charge(t0.elapsed());
            }
        }
    }

    /// A stop request that is due: Ctrl-C (or SIGTERM), or `--timeout`.
    fn stop_request(&self) -> Option<Stop> {
        if crate::signals::interrupted() {
            return Some(Stop::Interrupted);
        }
        match self.deadline {
            Some((at, after)) if Instant::now() >= at => Some(Stop::TimedOut {
                after_ms: after.as_millis() as u64,
            }),
            _ => None,
        }
    }

    /// A fault's pause, with the interrupt vector the guest was serving.
    fn with_serving(&self, mut p: Pause) -> Pause {
        if let Pause::Ended(Stop::Faulted { serving, .. }, _) = &mut p {
            *serving = self.irq.as_ref().and_then(|i| i.serving(self.vcpu));
        }
        p
    }

    /// Ends a run that did not fault: the guest's output so far goes out
    /// (before the trace's last lines), a final HLT exit is recorded, and
    /// the registers the guest stopped with are read.
    fn end(&mut self, stop: Stop, out: &mut dyn Write) -> Result<Pause, VcpuError> {
        out.flush().map_err(HostError::from)?;
        if stop == Stop::Halted {
            self.vcpu.trace_exit(self.trace, true);
        }
        let regs = self.vcpu.regs(self.trace)?;
        Ok(Pause::Ended(stop, regs))
    }
}

/// An `out` to the panic port: guest-rt's panic handler; the run ends as
/// a crash (Fault::Panic). A one-byte `out` to the exception port from one
/// of the host's exception stubs (the vector is which stub: RIP, in the
/// table of the CPU's mode): the guest took an exception it has no
/// handler for; the registers become those of the moment it happened,
/// from the frame the CPU pushed. A four-byte `out` there: the guest's
/// own report (`hypercall_abi::ExceptionReport` at the GPA in EAX, the
/// guest kernel's trap handler). The run ends with it. Anything else on
/// that port is an ordinary port (None).
fn exception(
    vcpu: &mut Vcpu,
    trace: &mut Option<Tracer>,
    cx: &mut Ctx,
    port: u16,
    io: Io,
) -> Result<Option<Pause>, VcpuError> {
    let mut regs = vcpu.regs(trace)?;
    let mut s = vcpu.sregs("control registers for the exception report", trace)?;
    let mode = exception::StubMode::of(&s);
    let from_stub = exception::vector_at(mode, mode.linear(s.cs.base, regs.rip));
    let report = if port == layout::EXCEPTION_PORT && from_stub.is_none() && io.size == 4 {
        let mut b = ExceptionReport::default();
        match cx
            .mem
            .read_slice(b.as_bytes_mut(), GuestAddress(u64::from(io.value)))
        {
            Ok(()) if b.vector < 256 => Some(b),
            _ => None,
        }
    } else {
        None
    };
    if port == layout::EXCEPTION_PORT && from_stub.is_none() && report.is_none() {
        return Ok(None);
    }
    cx.stats.record_io(Dir::Out, port);
    cx.out.flush().map_err(HostError::from)?;
    vcpu.trace_exit(trace, true);
    let fault = if let Some(r) = report {
        regs = Regs::from(&r);
        let vector = r.vector as u8;
        Fault::Exception {
            vector,
            // an interrupt guest-rt's IDT has no handler for
            mnemonic: if vector >= 32 {
                "IRQ"
            } else {
                exception::name(vector).0
            },
            error_code: (r.flags & REPORT_ERROR_CODE != 0).then_some(r.error_code),
            cr2: (r.flags & REPORT_CR2 != 0).then_some(r.cr2),
        }
    } else if let Some(vector) = from_stub {
        let stack = match mode {
            exception::StubMode::Real => s.ss.base + (regs.rsp & 0xffff),
            _ => s.ss.base + regs.rsp,
        };
        let word = |at: u64, n: usize| -> Option<u64> {
            let mut b = [0u8; 8];
            cx.mem.read_slice(&mut b[..n], GuestAddress(at)).ok()?;
            Some(u64::from_le_bytes(b))
        };
        let cs_base = |cs: u16| match mode {
            exception::StubMode::Real => u64::from(cs) << 4,
            _ => s.cs.base,
        };
        let int_before = |ip: u64, cs: u16| {
            let at = mode.linear(cs_base(cs), ip.wrapping_sub(2));
            let mut b = [0u8; 2];
            cx.mem.read_slice(&mut b, GuestAddress(at)).is_ok() && b == [0xcd, vector]
        };
        let frame = exception::frame_at(mode, vector, stack, word, int_before);
        if let Some(f) = frame {
            (regs.rip, regs.rflags, regs.rsp, regs.rdx) = (f.ip, f.flags, f.sp, f.dx);
            if mode == exception::StubMode::Real {
                // the faulting code's segment, for the report's disassembly
                s.cs.selector = f.cs;
                s.cs.base = u64::from(f.cs) << 4;
            }
        }
        let software = frame.is_some_and(|f| f.software);
        Fault::Exception {
            vector,
            mnemonic: if software {
                "INT"
            } else {
                exception::name(vector).0
            },
            error_code: frame.and_then(|f| f.error_code),
            cr2: (vector == 14 && !software).then_some(s.cr2),
        }
    } else {
        // guest-rt's panic handler: the registers are its own
        Fault::Panic
    };
    let stop = Stop::faulted(fault, &s);
    Ok(Some(Pause::Ended(stop, regs)))
}
