//! The hot path of one vCPU, top to bottom: KVM_RUN returns -> count and
//! serve the exit where it arrives (the device bus for I/O and MMIO, the
//! end of the run for HLT and fatal exits, the stop requests for a kick)
//! -> write the answer back -> KVM_RUN again. No allocation and no extra
//! vCPU ioctl on this path unless a hypercall needs one (`gva_to_hva` reads
//! the special registers).

use super::outcome::{Pause, Stop, VcpuError};
use crate::devices::hypercall::Io;
use crate::devices::{Bus, Ctx};
use crate::diag::HostError;
use crate::kvm::fault::Fault;
use crate::kvm::{KvmError, Vcpu, vcpu::is_kick};
use crate::stats::Dir;
use crate::stats::{ExitReason, ExitStats};
use crate::trace::Tracer;
use crate::x86::{Regs, exception};
use hypercall_abi::layout;
use kvm_ioctls::VcpuExit;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;
use vm_memory::{Bytes, GuestAddress};

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
    /// ([`super::driver::Others`]).
    pub others: Option<&'a super::driver::Others>,
}

impl ExitLoop<'_> {
    /// Runs the vCPU until it halts, faults, times out, is interrupted or
    /// cancelled; returns how it ended and its registers then.
    pub fn run(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(Stop, Regs), VcpuError> {
        match self.serve(false, out, diag)? {
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
            let exit = self.vcpu.run();
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
                        && let Some(p) = exception(self.vcpu, self.trace, &mut cx, port)?
                    {
                        return Ok(p);
                    }
                    let (vcpu, trace) = (&*self.vcpu, &mut *self.trace);
                    self.bus
                        .io_out(&mut cx, port, io, || vcpu.paging_now(trace))?;
                }
                Ok(VcpuExit::IoIn(port, data)) => self.bus.io_in(&mut cx, port, data)?,
                Ok(VcpuExit::MmioRead(addr, data)) => self.bus.mmio_read(&mut cx, addr, data)?,
                Ok(VcpuExit::MmioWrite(addr, data)) => self.bus.mmio_write(&mut cx, addr, data)?,
                Ok(VcpuExit::Hlt) => {
                    self.stats.record(ExitReason::Hlt);
                    return self.end(Stop::Halted, out);
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
                    return Ok(Pause::Ended(stop, regs));
                }
                Err(e) if is_kick(&e) => {
                    self.stats.record(ExitReason::Intr);
                    if let Some(t) = &mut *self.trace {
                        t.exit_errno(self.vcpu.fd_raw(), e.errno());
                    }
                    crate::signals::consume_kicks();
                    if crate::signals::interrupted() {
                        return self.end(Stop::Interrupted, out);
                    }
                    if let Some((at, after)) = self.deadline
                        && Instant::now() >= at
                    {
                        let after_ms = after.as_millis() as u64;
                        return self.end(Stop::TimedOut { after_ms }, out);
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
/// a crash (Fault::Panic). An `out` to the exception port: from one of
/// the host's exception stubs (RIP says which vector), the guest took an
/// exception it has no handler for. The run ends with it, the registers as they were
/// when it happened: the CPU's frame on the exception stack has RIP,
/// RFLAGS and RSP, the stub saved RDX below it. From anywhere else it
/// is an ordinary port (None).
fn exception(
    vcpu: &mut Vcpu,
    trace: &mut Option<Tracer>,
    cx: &mut Ctx,
    port: u16,
) -> Result<Option<Pause>, VcpuError> {
    let mut regs = vcpu.regs(trace)?;
    let vector = exception::vector_at(regs.rip);
    if vector.is_none() && port == layout::EXCEPTION_PORT {
        return Ok(None);
    }
    cx.stats.record_io(Dir::Out, port);
    cx.out.flush().map_err(HostError::from)?;
    vcpu.trace_exit(trace, true);
    let s = vcpu.sregs("control registers for the exception report", trace)?;
    let Some(vector) = vector else {
        // guest-rt's panic handler: the registers are its own
        let stop = Stop::faulted(Fault::Panic, &s);
        return Ok(Some(Pause::Ended(stop, regs)));
    };
    // the exception stack: the stub's saved RDX, the error code for the
    // vectors that have one, then the CPU's frame: RIP, CS, RFLAGS, RSP, SS
    let word = |at: u64| cx.mem.read_obj::<u64>(GuestAddress(at)).ok();
    let has_code = exception::has_error_code(vector);
    let error_code = has_code.then(|| word(regs.rsp + 8)).flatten();
    let at = regs.rsp + if has_code { 16 } else { 8 };
    if let (Some(rip), Some(rflags), Some(rsp), Some(rdx)) =
        (word(at), word(at + 16), word(at + 24), word(regs.rsp))
    {
        (regs.rip, regs.rflags, regs.rsp, regs.rdx) = (rip, rflags, rsp, rdx);
    }
    let fault = Fault::Exception {
        vector,
        mnemonic: exception::name(vector).0,
        error_code,
        cr2: (vector == 14).then_some(s.cr2),
    };
    let stop = Stop::faulted(fault, &s);
    Ok(Some(Pause::Ended(stop, regs)))
}
