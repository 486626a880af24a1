//! A VM: its KVM objects, the configuration it was built and runs with,
//! its run state and its device bus. `Vm::new` is the list of KVM calls
//! that set a VM up; `Vm::run` sets up the calling thread and runs the
//! exit loop of vCPU 0 (or hands several vCPUs to `super::smp`).

use super::outcome::{RunOutcome, VcpuReport};
use crate::config::{ConfigError, IrqChip, RunConfig, VmConfig};
use crate::devices::{Bus, Serving};
use crate::diag::HostError;
use crate::kvm::stats::StatsFd;
use crate::kvm::{KvmError, System, Vcpu, VmObject};
use crate::stats::ExitStats;
use crate::trace::Tracer;
use crate::vcpu::irq::IrqRun;
use crate::vcpu::thread::ThreadSetup;
use crate::vcpu::{Driver, ExitLoop, VcpuError};
use crate::x86::{CpuMode, cpuid};
use hypercall_abi::note;
use std::io::Write;
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;

/// Why a VM could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A KVM object could not be made or set.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// A vCPU could not be set up or run.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// The host could not go on (output, trace).
    #[error(transparent)]
    Host(#[from] HostError),
    /// A snapshot could not be written or taken in.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapError),
    /// KVM dropped part of the mode the host set (kvm-pvm clears CR0.PG
    /// without EFER.LME: it cannot run 32-bit paging).
    #[error("this KVM did not take {mode} mode: the host set CR0 {want:#x}, KVM reports CR0 {got:#x}{hint}", hint = if std::path::Path::new("/sys/module/kvm_pvm").exists() { " (this /dev/kvm is kvm-pvm, which cannot run 32-bit paging; the other modes work)" } else { "" })]
    ModeRefused {
        /// The mode.
        mode: CpuMode,
        /// CR0 set.
        want: u64,
        /// CR0 read back.
        got: u64,
    },
}

/// What changes as a VM runs.
pub(super) struct RunState {
    /// ABI note flags of the loaded image (and `RunConfig::check_42`).
    pub flags: u32,
    /// Exit counts, per vCPU.
    pub stats: Vec<ExitStats>,
    /// Bad hypercall arguments reported.
    pub guest_errors: crate::devices::hypercall::GuestErrors,
    /// The calling thread was set up for vCPU 0 (signal mask, pinning).
    pub started: bool,
    /// `--trace-kvm`.
    pub trace: Option<Tracer>,
    /// The VM continues a snapshot (`super::snapshot`).
    pub restored: bool,
    /// vCPU i had halted for good when the snapshot was taken: it is not
    /// run again (several vCPUs; empty otherwise).
    pub ended: Vec<bool>,
}

/// A VM with its vCPUs and memory.
pub struct Vm {
    // Field order is drop order: vCPUs, then the VM and its memory, then
    // /dev/kvm.
    /// vCPU i at index i.
    pub(super) vcpus: Vec<Vcpu>,
    pub(super) vm: VmObject,
    _sys: System,
    pub(super) config: VmConfig,
    pub(super) run: RunConfig,
    pub(super) state: RunState,
    pub(super) bus: Bus,
    /// The interrupt controller, and with the in-kernel one and
    /// `--inject-every` how its IRQ line is raised.
    pub(super) irqchip: IrqChip,
    pub(super) irqfd: Option<crate::kvm::Raiser>,
    /// `--ioeventfd`: the eventfd KVM signals at each SIMVIRTIO notify
    /// write (the device thread waits on it).
    pub(super) notify: Option<vmm_sys_util::eventfd::EventFd>,
    /// `--kvm-stats`: KVM's statistics fds of the VM and of each vCPU.
    pub(super) kvm_stats: Option<(StatsFd, Vec<StatsFd>)>,
}

impl Vm {
    /// Opens KVM, creates the VM, its memory and its vCPUs, and puts every
    /// vCPU in `cfg.mode` with the host's GDT and page tables.
    pub fn new(cfg: &VmConfig, run: RunConfig) -> Result<Vm, VmError> {
        Vm::create(cfg, run, None)
    }

    /// Like `new`, without the start state (tables in memory, the mode's
    /// special registers), and with the snapshot's memory image (`image`:
    /// its file and where the image starts) as guest RAM: a VM that the
    /// snapshot's state goes into next (`Vm::restore_snapshot`).
    pub fn for_restore(
        cfg: &VmConfig,
        run: RunConfig,
        image: (&std::fs::File, u64),
    ) -> Result<Vm, VmError> {
        Vm::create(cfg, run, Some(image))
    }

    fn create(
        cfg: &VmConfig,
        run: RunConfig,
        image: Option<(&std::fs::File, u64)>,
    ) -> Result<Vm, VmError> {
        cfg.validate()?;
        run.validate(cfg.vcpus)?;
        let t = &mut cfg.trace.map(Tracer::new);
        let sys = System::open(&cfg.kvm_path, t)?;
        let vm = VmObject::create_with(&sys, cfg.mem_size, image, t)?;
        // the in-kernel controllers come before the vCPUs
        let irqchip = cfg.irqchip.unwrap_or_default();
        if irqchip == IrqChip::Kernel {
            vm.create_irqchip(t)?;
        }
        // the SIMVIRTIO device's line, for a driver that takes interrupts
        let sv_irq = match irqchip {
            IrqChip::Kernel => Some(vm.irqfd(u32::from(hypercall_abi::simvirtio::IRQ_LINE), t)?),
            _ => None,
        };
        let notify = match run.ioeventfd {
            true => {
                use hypercall_abi::simvirtio as sv;
                Some(vm.ioeventfd(sv::MMIO_BASE + sv::reg::Q0_CTL, t)?)
            }
            false => None,
        };
        let irqfd = match (irqchip, run.inject) {
            (IrqChip::Kernel, Some(i)) => Some(vm.raiser(i.n, i.irq_line_ioctl, t)?),
            _ => None,
        };
        // Without the supported CPUID the guest sees no features and, e.g.,
        // cannot set EFER.SCE for SYSCALL; a guest that needs neither
        // skips the query (VmConfig::cpuid, from its ABI note).
        let supported = match cfg.cpuid {
            true => Some(sys.supported_cpuid(t)?),
            false => None,
        };
        let mut vcpus = Vec::with_capacity(cfg.vcpus as usize);
        for id in 0..cfg.vcpus {
            let vcpu = Vcpu::create(&vm, id, t)?;
            if let Some(s) = &supported {
                vcpu.set_cpuid(&cpuid::for_vcpu(s, id, cfg.vcpus), id, t)?;
            }
            vcpus.push(vcpu);
        }
        let kvm_stats = match run.kvm_stats {
            true => Some((
                StatsFd::open(vm.fd())?,
                vcpus
                    .iter()
                    .map(|v| StatsFd::open(v.fd()))
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            false => None,
        };
        if image.is_none() {
            super::start::start_state(cfg, &vcpus, &vm, irqchip, t)?;
        }
        Ok(Vm {
            vcpus,
            vm,
            _sys: sys,
            config: cfg.clone(),
            bus: Bus::new(
                match (run.polling.is_some(), run.ioeventfd) {
                    (true, _) => Serving::Polling,
                    (false, true) => Serving::Thread,
                    (false, false) => Serving::Exits,
                },
                sv_irq,
            ),
            irqchip,
            irqfd,
            notify,
            kvm_stats,
            state: RunState {
                flags: if run.check_42 { note::FLAG_CHECK_42 } else { 0 },
                stats: vec![ExitStats::default(); cfg.vcpus as usize],
                guest_errors: Default::default(),
                started: false,
                trace: t.take(),
                restored: false,
                ended: Vec::new(),
            },
            run,
        })
    }

    /// Sends the `--trace-kvm` output to `sink` (what was recorded so far
    /// first). Without a call, `run` sends it to standard error.
    pub fn trace_to(&mut self, sink: Box<dyn Write + Send>, name: &str) -> Result<(), VmError> {
        if let Some(t) = &mut self.state.trace {
            t.attach(sink, name).map_err(|source| HostError::Trace {
                name: name.to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// Runs the VM until every vCPU has halted, or one faults, or the run
    /// times out or is interrupted. Guest output goes to `out`, the host's
    /// one-line diagnostics to `diag`. One vCPU runs on the calling thread;
    /// several run on one thread each (see `super::smp`).
    pub fn run(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<RunOutcome, VmError> {
        self.run_driven(None, out, diag)
    }

    /// Like `run`, with vCPU 0's loop run by `driver` (the gdb stub) on
    /// vCPU 0's thread; the other vCPUs run as in `run`.
    pub fn run_driven(
        &mut self,
        mut driver: Option<&mut dyn Driver>,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<RunOutcome, VmError> {
        // several vCPUs, or a device thread beside the vCPU: threads
        if self.vcpus.len() > 1 || self.notify.is_some() {
            return self.run_smp(driver, out, diag);
        }
        let Vm {
            vcpus,
            vm,
            run,
            state,
            bus,
            irqchip,
            irqfd,
            ..
        } = self;
        let trace = &mut state.trace;
        if let Some(t) = trace
            && !t.attached()
        {
            // Mermaid collects everything and writes at the end; text would
            // have gone out as it happened if a sink had been attached.
            t.attach(Box::new(std::io::stderr()), "standard error")
                .map_err(|source| HostError::Trace {
                    name: "standard error".into(),
                    source,
                })?;
        }
        let vcpu = &mut vcpus[0];
        if self.config.mode == CpuMode::Paged32 && !state.restored {
            // Check that KVM kept CR0.PG: kvm-pvm silently clears it, and
            // the guest would then die at its first instruction.
            let s = vcpu.sregs("check that KVM kept CR0.PG for 32-bit paging", trace)?;
            let want = self.config.mode.start_paging().cr0;
            if s.cr0 != want {
                return Err(VmError::ModeRefused {
                    mode: self.config.mode,
                    want,
                    got: s.cr0,
                });
            }
        }
        let first = !state.started;
        state.started = true;
        let start = Instant::now();
        if run.timeline {
            bus.keep_history(start);
        }
        let armed = ThreadSetup {
            arm: first,
            timeout: run.timeout,
            poll: IrqRun::kick_period(run.polling, *irqchip, run.inject),
            pin: run.pin.first().copied().filter(|_| first),
            seccomp: run.seccomp,
            debugger: driver.as_ref().map(|d| d.fd()),
            // time travel's checkpoints read and write what a snapshot does
            snapshot: run.snapshot_at.is_some() || run.record.is_some(),
            reads: self
                .kvm_stats
                .iter()
                .flat_map(|(vm, v)| std::iter::once(vm).chain(v))
                .map(StatsFd::raw)
                .collect(),
        }
        .apply(vcpu, trace, || {
            if let Some(d) = driver.as_deref_mut() {
                d.prepare_thread();
            }
        })?;
        let mut timeline = run.timeline.then(|| crate::timeline::Timeline::new(start));
        let mut lp = ExitLoop {
            timeline: timeline.as_mut(),
            vcpu,
            mem: vm.memory(),
            bus,
            stats: &mut state.stats[0],
            guest_errors: &mut state.guest_errors,
            trace,
            deadline: run.timeout.map(|t| (start + t, t)),
            cancel: None,
            profile: run.profile,
            others: None,
            irq: (*irqchip != IrqChip::None).then(|| {
                IrqRun::new(*irqchip, run.inject, irqfd.as_ref())
                    .with_vm(std::os::fd::AsRawFd::as_raw_fd(vm.fd()))
            }),
            snapshot_at: run.snapshot_at,
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
        // the guest's time: not the time it was stopped for a debugger
        let elapsed = start.elapsed().saturating_sub(stopped);
        drop(armed);
        let report = VcpuReport {
            id: 0,
            stop,
            regs,
            stats: std::mem::take(&mut self.state.stats[0]),
            timeline,
        };
        self.outcome(vec![report], elapsed, out, diag)
    }

    /// Guest memory.
    pub fn memory(&self) -> &GuestMemoryMmap {
        self.vm.memory()
    }

    /// The CPU mode the vCPUs started in.
    pub fn mode(&self) -> CpuMode {
        self.config.mode
    }

    /// Guest memory size.
    pub fn mem_size(&self) -> u64 {
        self.config.mem_size
    }

    /// vCPU 0.
    pub fn vcpu(&self) -> &Vcpu {
        &self.vcpus[0]
    }

    /// vCPU `i`, if the VM has it.
    pub fn vcpu_by_id(&self, i: usize) -> Option<&Vcpu> {
        self.vcpus.get(i)
    }

    /// vCPU 0, to run it from outside `Vm::run` (`host matrix`).
    pub fn vcpu_mut(&mut self) -> &mut Vcpu {
        &mut self.vcpus[0]
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// The VM object.
    pub fn vm_object(&self) -> &VmObject {
        &self.vm
    }

    /// The interrupt controller.
    pub fn irqchip(&self) -> IrqChip {
        self.irqchip
    }
}
