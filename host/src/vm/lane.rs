//! One vCPU's run loop: KVM_RUN, then serve the exit, until the vCPU halts,
//! faults, times out or is stopped. `Vm::run` drives vCPU 0 with it on the
//! calling thread; with several vCPUs each runs it on its own thread.

use super::{End, Fault, VmError, call};
use crate::exit::{Dir, ExitReason, ExitStats};
use crate::hypercall::{self, Env, HostError, Io};
use crate::simvirtio::SimVirtio;
use crate::trace::Tracer;
use crate::translate::Paging;
use hypercall_abi::Hypercall;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use vm_memory::GuestMemoryMmap;

/// What one vCPU's loop works with.
pub(super) struct Lane<'a> {
    pub vcpu: &'a mut VcpuFd,
    pub mem: &'a GuestMemoryMmap,
    pub stats: &'a mut ExitStats,
    pub guest_errors: &'a mut u64,
    pub trace: &'a mut Option<Tracer>,
    pub run_size: usize,
    pub deadline: Option<Instant>,
    /// Set when another vCPU ended the VM (checked before every KVM_RUN;
    /// the setter also kicks this thread out of KVM_RUN).
    pub stop: Option<&'a AtomicBool>,
    /// The SIMVIRTIO device (shared by the VM's vCPUs).
    pub device: &'a Mutex<SimVirtio>,
    /// Polling mode: drain the device's TX queue at every exit.
    pub polling: bool,
    /// `--stats`: time the host's handling of each exit.
    pub profile: bool,
}

fn device<'a>(d: &'a Mutex<SimVirtio>) -> std::sync::MutexGuard<'a, SimVirtio> {
    // a vCPU thread that panicked while holding it left a usable device
    d.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the vCPU until it halts, faults, times out or is stopped.
pub(super) fn run_loop(
    l: &mut Lane,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<End, VmError> {
    loop {
        if l.stop.is_some_and(|s| s.load(Ordering::Acquire)) {
            return Ok(End::Stopped);
        }
        let exit = l.vcpu.run();
        let t0 = l.profile.then(Instant::now);
        if l.polling {
            device(l.device).poll(l.mem, out, diag)?;
        }
        let exit = match exit {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                l.stats.record(ExitReason::Intr);
                if let Some(t) = &mut *l.trace {
                    t.exit_errno(l.vcpu.as_raw_fd(), e.errno());
                }
                crate::signals::consume_kicks();
                if crate::signals::interrupted() {
                    return Ok(End::Interrupt);
                }
                if l.deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(End::Timeout);
                }
                if let Some(t0) = t0 {
                    l.stats.charge(t0.elapsed());
                }
                continue;
            }
            Err(e) => return Err(VmError::kvm("KVM_RUN")(e)),
        };
        // Borrows below are field by field: `exit` holds `self.vcpu`.
        let pending = match exit {
            VcpuExit::IoOut(port, data) => {
                let mut v = [0u8; 4];
                let n = data.len().min(4);
                v[..n].copy_from_slice(&data[..n]);
                let io = Io {
                    dir: Dir::Out,
                    size: data.len(),
                    value: u32::from_le_bytes(v),
                };
                Some((port, io))
            }
            VcpuExit::IoIn(port, data) => {
                let seen = l.stats.record_io(Dir::In, port);
                let io = Io {
                    dir: Dir::In,
                    size: data.len(),
                    value: 0,
                };
                let v = match Hypercall::from_port(port) {
                    Some(hc) => {
                        let mut env = Env {
                            mem: l.mem,
                            stats: &*l.stats,
                            out: &mut *out,
                            diag: &mut *diag,
                            guest_errors: &mut *l.guest_errors,
                        };
                        // `in` hypercalls never walk page tables (the
                        // transport check stops an `in` on a block port).
                        hypercall::dispatch(hc, io, &mut env, || {
                            Err(HostError::Internal("page-table walk during an `in` exit"))
                        })?
                    }
                    None => {
                        if seen == 1 {
                            hypercall::host_line(
                                out,
                                diag,
                                format_args!(
                                    "guest read port {port:#x}, which has no device: it reads as all ones"
                                ),
                            )?;
                        }
                        u32::MAX
                    }
                };
                let bytes = v.to_le_bytes();
                for (i, d) in data.iter_mut().enumerate() {
                    *d = bytes.get(i % 4).copied().unwrap_or(0xff);
                }
                None
            }
            VcpuExit::MmioRead(addr, data) if SimVirtio::claims(addr) => {
                l.stats.record_mmio(Dir::In, addr);
                device(l.device).read(l.mem, addr, data);
                None
            }
            VcpuExit::MmioWrite(addr, data) if SimVirtio::claims(addr) => {
                l.stats.record_mmio(Dir::Out, addr);
                device(l.device).write(l.mem, addr, data, out, diag)?;
                None
            }
            VcpuExit::MmioRead(addr, data) => {
                if l.stats.record_mmio(Dir::In, addr) == 1 {
                    hypercall::host_line(
                        out,
                        diag,
                        format_args!(
                            "guest read GPA {addr:#x}, which has no memory or device: it reads as all ones"
                        ),
                    )?;
                }
                data.fill(0xff);
                None
            }
            VcpuExit::MmioWrite(addr, _) => {
                if l.stats.record_mmio(Dir::Out, addr) == 1 {
                    hypercall::host_line(
                        out,
                        diag,
                        format_args!(
                            "guest wrote GPA {addr:#x}, which has no memory or device: ignored"
                        ),
                    )?;
                }
                None
            }
            VcpuExit::Hlt => {
                l.stats.record(ExitReason::Hlt);
                return Ok(End::Halt);
            }
            VcpuExit::Shutdown => {
                l.stats.record(ExitReason::Shutdown);
                return Ok(End::Fault(Fault::TripleFault));
            }
            VcpuExit::FailEntry(reason, cpu) => {
                l.stats.record(ExitReason::FailEntry);
                return Ok(End::Fault(Fault::FailEntry { reason, cpu }));
            }
            VcpuExit::InternalError => {
                l.stats.record(ExitReason::InternalError);
                return Ok(End::Fault(Fault::InternalError { suberror: 0 }));
            }
            VcpuExit::MemoryFault { gpa, .. } => {
                l.stats.record(ExitReason::Other);
                return Ok(End::Fault(Fault::MemoryFault { gpa }));
            }
            _ => {
                l.stats.record(ExitReason::Other);
                return Ok(End::Fault(Fault::Unhandled { exit_reason: 0 }));
            }
        };
        if let Some((port, io)) = pending {
            let seen = l.stats.record_io(Dir::Out, port);
            let mut env = Env {
                mem: l.mem,
                stats: &*l.stats,
                out: &mut *out,
                diag: &mut *diag,
                guest_errors: &mut *l.guest_errors,
            };
            match Hypercall::from_port(port) {
                Some(hc) => {
                    let vcpu = &*l.vcpu;
                    let trace = &mut *l.trace;
                    hypercall::dispatch(hc, io, &mut env, || {
                        let s = vcpu.get_sregs().map_err(|source| HostError::Kvm {
                            what: "KVM_GET_SREGS",
                            source,
                        })?;
                        if let Some(t) = trace {
                            t.defer(call(
                                format!("vcpu {}", vcpu.as_raw_fd()),
                                "KVM_GET_SREGS",
                                String::new(),
                                format!("0, CR3 {:#x}", s.cr3),
                                "gva_to_hva: the guest's CR0/CR3/CR4/EFER for the walk",
                            ));
                        }
                        Ok(Paging::from_sregs(&s))
                    })?;
                }
                None if seen == 1 => {
                    hypercall::host_line(
                        out,
                        diag,
                        format_args!(
                            "guest wrote {:#x} to port {port:#x}, which has no device: ignored",
                            io.value
                        ),
                    )?;
                }
                None => {}
            }
        }
        if l.trace.is_some() {
            trace_exit(l.vcpu, l.run_size, l.trace, false);
        }
        if let Some(t0) = t0 {
            l.stats.charge(t0.elapsed());
        }
    }
}

/// Records the exit in kvm_run (after the host answered it, so an `in`
/// shows the value returned).
pub(super) fn trace_exit(
    vcpu: &mut VcpuFd,
    run_size: usize,
    trace: &mut Option<Tracer>,
    last: bool,
) {
    use kvm_bindings as k;
    let fd = vcpu.as_raw_fd();
    let run = vcpu.get_kvm_run();
    let reason = run.exit_reason;
    let (kind, detail) = match reason {
        k::KVM_EXIT_IO => {
            // SAFETY: exit_reason is KVM_EXIT_IO, so `io` is the union
            // member the kernel filled.
            let io = unsafe { run.__bindgen_anon_1.io };
            let dir = if u32::from(io.direction) == k::KVM_EXIT_IO_OUT {
                "out"
            } else {
                "in"
            };
            let base = run as *const k::kvm_run as *const u8;
            let mut v = [0u8; 4];
            let n = usize::from(io.size).min(4);
            if (io.data_offset as usize) + n <= run_size {
                // SAFETY: data_offset + size lies inside the kvm_run
                // mapping of `run_size` bytes (checked just above).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        base.add(io.data_offset as usize),
                        v.as_mut_ptr(),
                        n,
                    )
                };
            }
            let hc = Hypercall::from_port(io.port)
                .map(|h| format!(" ({})", h.name()))
                .unwrap_or_default();
            (
                format!("exit 2 KVM_EXIT_IO {dir} port {:#x}{hc}", io.port),
                format!("size {}, data {:#x}", io.size, u32::from_le_bytes(v)),
            )
        }
        k::KVM_EXIT_MMIO => {
            // SAFETY: exit_reason is KVM_EXIT_MMIO: `mmio` is filled.
            let m = unsafe { run.__bindgen_anon_1.mmio };
            let dir = if m.is_write != 0 { "write" } else { "read" };
            (
                format!("exit 6 KVM_EXIT_MMIO {dir}"),
                format!("GPA {:#x}, {} bytes", m.phys_addr, m.len),
            )
        }
        r => {
            let name = ExitReason::ALL
                .iter()
                .find(|e| e.kvm_code() == Some(r))
                .map_or("(not handled)", |e| e.name());
            (format!("exit {r} {name}"), String::new())
        }
    };
    if let Some(t) = trace {
        t.exit(fd, kind, &detail, last);
    }
}
