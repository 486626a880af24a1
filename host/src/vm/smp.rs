//! Several vCPUs: one thread each (named `vcpu<i>`), each set up like the
//! single-vCPU path (`ThreadSetup`) and running the same exit loop. Their
//! output comes to the calling thread line by line over a channel, so lines
//! from different vCPUs never mix. A vCPU that faults cancels the others;
//! one that halts just ends its thread.

use super::machine::{Vm, VmError};
use super::outcome::{RunOutcome, VcpuReport};
use crate::config::IrqChip;
use crate::devices::Bus;
use crate::diag::HostError;
use crate::kvm::Vcpu;
use crate::stats::ExitStats;
use crate::vcpu::irq::IrqRun;
use crate::vcpu::others::Others;
use crate::vcpu::thread::ThreadSetup;
use crate::vcpu::{Driver, ExitLoop, Stop, VcpuError};
use crate::x86::Regs;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;

impl Vm {
    /// Runs every vCPU on a thread of its own; see the module comment.
    pub(super) fn run_smp(
        &mut self,
        mut driver: Option<&mut dyn Driver>,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<RunOutcome, VmError> {
        // VmConfig::validate refused --trace-kvm with several vCPUs.
        let cancel = AtomicBool::new(false);
        let tids = Mutex::new(Vec::new());
        // bounded: a vCPU that prints faster than the output drains waits
        let (tx, rx) = mpsc::sync_channel::<(Stream, Vec<u8>)>(LINES_IN_FLIGHT);
        let start = Instant::now();
        if self.run.timeline {
            self.bus.keep_history(start);
        }
        let others = Others::new(self.vcpus.len() - 1);
        let job = VcpuJob {
            others: &others,
            mem: self.vm.memory(),
            bus: &self.bus,
            deadline: self.run.timeout.map(|t| (start + t, t)),
            cancel: &cancel,
            tids: &tids,
            profile: self.run.profile,
            snapshot_at: self.run.snapshot_at,
            timeline: self.run.timeline.then_some(start),
        };
        let first = !self.state.started;
        self.state.started = true;
        let run = &self.run;
        let (irqchip, irqfd) = (self.irqchip, self.irqfd.as_ref());
        // `--ioeventfd`: the device thread ends once every vCPU thread has
        // (the last one signals `stop`), so the pump below can end too
        let notify = self.notify.as_ref();
        let stop = vmm_sys_util::eventfd::EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK)
            .map_err(HostError::Spawn)?;
        let self_vcpus = self.vcpus.len();
        let remaining = AtomicUsize::new(self_vcpus);
        let vcpu_done = || {
            if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _ = stop.write(1);
            }
        };
        let vm_fd = std::os::fd::AsRawFd::as_raw_fd(self.vm.fd());
        let (results, pumped) = std::thread::scope(|s| {
            let mut handles = Vec::new();
            let mut spawn_error = None;
            let device = match notify {
                Some(n) => {
                    let tx = tx.clone();
                    let (job, stop, seccomp) = (&job, &stop, run.seccomp);
                    let h = std::thread::Builder::new()
                        .name("simvirtio".into())
                        .spawn_scoped(s, move || {
                            let mut out = ChanWriter::new(tx.clone(), Stream::Out);
                            let mut diag = ChanWriter::new(tx, Stream::Diag);
                            let r = super::device_thread::serve(
                                n, stop, job.bus, job.mem, seccomp, &mut out, &mut diag,
                            );
                            let _ = out.flush();
                            let _ = diag.flush();
                            if r.is_err() {
                                job.cancel_all();
                            }
                            r
                        });
                    match h {
                        Ok(h) => Some(h),
                        Err(e) => {
                            spawn_error = Some(e);
                            None
                        }
                    }
                }
                None => None,
            };
            for (i, (vcpu, stats)) in self
                .vcpus
                .iter_mut()
                .zip(self.state.stats.iter_mut())
                .enumerate()
            {
                if self.state.ended.get(i).copied().unwrap_or(false) {
                    // halted for good when the VM was saved: it stays so
                    let r = vcpu
                        .regs(&mut None)
                        .map(|regs| (Stop::Halted, regs, Default::default(), Duration::ZERO, None))
                        .map_err(VcpuError::from);
                    handles.push(Slot::Done(r));
                    vcpu_done();
                    if i > 0 {
                        job.others.ended();
                    }
                    continue;
                }
                let tx = tx.clone();
                // --inject-every interrupts the vCPU it names (0 by default)
                let inject = run.inject.filter(|x| x.vcpu as usize == i);
                let setup = ThreadSetup {
                    arm: true,
                    timeout: run.timeout,
                    // the polling timer runs on vCPU 0's thread
                    poll: IrqRun::kick_period(run.polling.filter(|_| i == 0), irqchip, inject),
                    pin: run.pin.get(i).copied().filter(|_| first),
                    seccomp: run.seccomp,
                    debugger: driver.as_ref().filter(|_| i == 0).map(|d| d.fd()),
                    // the VM is saved on the calling thread, not here
                    snapshot: false,
                    // KVM's counters are read on the calling thread too
                    reads: Vec::new(),
                };
                // the debugger drives vCPU 0; the others run on
                let driver = if i == 0 { driver.take() } else { None };
                let job = &job;
                let h = std::thread::Builder::new()
                    .name(format!("vcpu{i}"))
                    .spawn_scoped(s, move || {
                        // says this vCPU ended even if the thread unwinds
                        let _done = OnDrop(&vcpu_done);
                        let mut out = ChanWriter::new(tx.clone(), Stream::Out);
                        let mut diag = ChanWriter::new(tx, Stream::Diag);
                        let irq = (irqchip != IrqChip::None).then(|| {
                            IrqRun::new(irqchip, inject, irqfd.filter(|_| inject.is_some()))
                                .with_vm(vm_fd)
                        });
                        let r = job.run(&setup, i, vcpu, stats, driver, irq, &mut out, &mut diag);
                        if i > 0 {
                            job.others.ended();
                        }
                        let _ = out.flush();
                        let _ = diag.flush();
                        if !matches!(r, Ok((Stop::Halted, ..))) {
                            // A fault, an error, a timeout or an interrupt
                            // ends the whole VM.
                            job.cancel_all();
                        }
                        r
                    });
                match h {
                    Ok(h) => handles.push(Slot::Thread(h)),
                    Err(e) => {
                        spawn_error = Some(e);
                        job.cancel_all();
                        break;
                    }
                }
            }
            drop(tx);
            // vCPU threads that never started will not say they ended
            for _ in handles.len()..self_vcpus {
                vcpu_done();
            }
            // This thread writes what the vCPU threads print, in order.
            let mut pumped: std::io::Result<()> = Ok(());
            for (stream, bytes) in rx {
                let w: &mut dyn Write = match stream {
                    Stream::Out => &mut *out,
                    Stream::Diag => {
                        let _ = out.flush();
                        &mut *diag
                    }
                };
                if let Err(e) = w.write_all(&bytes).and_then(|()| w.flush())
                    && pumped.is_ok()
                {
                    pumped = Err(e);
                    job.cancel_all();
                }
            }
            let results: Vec<_> = handles
                .into_iter()
                .map(|h| match h {
                    Slot::Thread(h) => h.join().unwrap_or(Err(VcpuError::Host(
                        HostError::Internal("a vCPU thread panicked"),
                    ))),
                    Slot::Done(r) => r,
                })
                .collect();
            let device = device.map(|h| {
                h.join()
                    .unwrap_or(Err(HostError::Internal("the device thread panicked")))
            });
            match (spawn_error, device) {
                (Some(e), _) => (Err(VmError::Host(HostError::Spawn(e))), pumped),
                (None, Some(Err(e))) => (Err(VmError::Host(e)), pumped),
                (None, _) => (Ok(results), pumped),
            }
        });
        let mut elapsed = start.elapsed();
        pumped.map_err(HostError::from)?;
        let mut per = Vec::new();
        for (id, r) in results?.into_iter().enumerate() {
            let (stop, regs, guest_errors, stopped, timeline) = r?;
            // the guest's time: not the time vCPU 0 was stopped for a
            // debugger after the others had ended
            elapsed = elapsed.saturating_sub(stopped);
            self.state.guest_errors.count += guest_errors.count;
            per.push(VcpuReport {
                id,
                stop,
                regs,
                stats: std::mem::take(&mut self.state.stats[id]),
                timeline,
            });
        }
        self.outcome(per, elapsed, out, diag)
    }
}

/// A vCPU's end: its thread, or (halted in the snapshot the VM continues)
/// its end already.
enum Slot<'s, T> {
    Thread(std::thread::ScopedJoinHandle<'s, T>),
    Done(T),
}

/// Runs its closure when dropped.
struct OnDrop<'a>(&'a dyn Fn());

impl Drop for OnDrop<'_> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Lines on their way from the vCPU threads to the writing thread.
const LINES_IN_FLIGHT: usize = 1024;
/// Longest piece of a line a vCPU thread holds before sending it.
const MAX_LINE: usize = 4096;

/// Which stream a vCPU thread's bytes are for.
#[derive(Clone, Copy)]
enum Stream {
    Out,
    Diag,
}

/// A vCPU thread's `out` or `diag`: sends whole lines to the thread that
/// writes them.
struct ChanWriter {
    tx: mpsc::SyncSender<(Stream, Vec<u8>)>,
    stream: Stream,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn new(tx: mpsc::SyncSender<(Stream, Vec<u8>)>, stream: Stream) -> ChanWriter {
        ChanWriter {
            tx,
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, n: usize) -> std::io::Result<()> {
        let rest = self.buf.split_off(n);
        let line = std::mem::replace(&mut self.buf, rest);
        self.tx
            .send((self.stream, line))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if let Some(p) = self.buf.iter().rposition(|&c| c == b'\n') {
            self.send(p + 1)?;
        } else if self.buf.len() >= MAX_LINE {
            // a line without an end goes out in pieces: the buffer is bounded
            self.send(self.buf.len())?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send(self.buf.len())
    }
}

/// What every vCPU thread of one run shares.
struct VcpuJob<'a> {
    /// The vCPUs other than 0, for vCPU 0's debugger clock.
    others: &'a Others,
    mem: &'a GuestMemoryMmap,
    bus: &'a Bus,
    deadline: Option<(Instant, Duration)>,
    /// Set by the first vCPU that ends the VM.
    cancel: &'a AtomicBool,
    /// The vCPU threads' ids, to kick them out of KVM_RUN.
    tids: &'a Mutex<Vec<libc::pid_t>>,
    profile: bool,
    /// `--snapshot-at`: the first vCPU to reach it ends the VM, the others
    /// are kicked out of KVM_RUN, and all are saved where they stopped.
    snapshot_at: Option<crate::config::SnapAt>,
    /// `--trace-out`: the run's start, which every vCPU's slices count from.
    timeline: Option<Instant>,
}

/// How a vCPU thread ended: its stop, registers, guest errors, the time a
/// debugger kept it stopped, and its slices (`--trace-out`).
type VcpuEnd = (
    Stop,
    Regs,
    crate::devices::hypercall::GuestErrors,
    Duration,
    Option<crate::timeline::Timeline>,
);

impl VcpuJob<'_> {
    /// Sets up this thread for `vcpu` (number `id`) and runs it to its
    /// end; returns how it ended, its registers, the guest errors it
    /// reported and how long a debugger kept it stopped while no other
    /// vCPU ran.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        setup: &ThreadSetup,
        id: usize,
        vcpu: &mut Vcpu,
        stats: &mut ExitStats,
        driver: Option<&mut dyn Driver>,
        irq: Option<IrqRun<'_>>,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<VcpuEnd, VcpuError> {
        let mut no_trace = None;
        // Registered before the first look at `cancel`: a vCPU that ends
        // the VM after that look kicks this thread out of its KVM_RUN.
        let register = || {
            if let Ok(mut t) = self.tids.lock() {
                t.push(crate::signals::gettid());
            }
        };
        let mut driver = driver;
        let armed = setup.apply(vcpu, &mut no_trace, || {
            register();
            if let Some(d) = driver.as_deref_mut() {
                d.prepare_thread();
            }
        })?;
        let mut guest_errors = crate::devices::hypercall::GuestErrors::default();
        let mut timeline = self.timeline.map(crate::timeline::Timeline::new);
        let mut lp = ExitLoop {
            timeline: timeline.as_mut(),
            vcpu,
            mem: self.mem,
            bus: self.bus,
            stats,
            guest_errors: &mut guest_errors,
            trace: &mut no_trace,
            deadline: self.deadline,
            cancel: Some(self.cancel),
            profile: self.profile,
            others: (id == 0).then_some(self.others),
            irq,
            snapshot_at: self.snapshot_at,
        };
        let (stop, regs, stopped) = match driver {
            Some(d) => {
                let (stop, regs) = d.drive(&mut lp, armed.timeout(), out, diag)?;
                (stop, regs, d.stopped())
            }
            None => {
                let (stop, regs) = lp.run(out, diag)?;
                (stop, regs, Duration::ZERO)
            }
        };
        Ok((stop, regs, guest_errors, stopped, timeline))
    }

    /// Ends the VM: every vCPU thread leaves KVM_RUN and stops.
    fn cancel_all(&self) {
        self.cancel.store(true, Ordering::Release);
        if let Ok(t) = self.tids.lock() {
            crate::signals::kick(&t);
        }
    }
}
