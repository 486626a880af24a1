//! What a VM is built with ([`VmConfig`]) and how it runs ([`RunConfig`]),
//! each given once and checked before anything is created.

use crate::trace::TraceFormat;
use crate::x86::CpuMode;
use hypercall_abi::layout;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration that cannot work; the message says why and what would.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// --mem out of range.
    #[error("guest memory of {size} is not usable: it must be a multiple of 4 KiB between {min} and {max}", size = crate::size::human(*.0), min = crate::size::human(layout::MIN_MEM), max = crate::size::human(layout::MAX_MEM))]
    MemSize(u64),
    /// Too much memory for the CPU mode.
    #[error("{mode} mode maps at most {max} of guest memory", mode = .0, max = crate::size::human(*.1))]
    ModeMem(CpuMode, u64),
    /// A vCPU count this VM cannot have, or options that do not go with it.
    #[error("{0}")]
    Vcpus(String),
}

/// Which interrupt controller a VM has (`--irqchip`; by default what the
/// guest's ABI note asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IrqChip {
    /// None: nothing interrupts the guest (HLT exits to the host).
    #[default]
    None,
    /// The host injects vectors with KVM_INTERRUPT when the guest can take
    /// one, asking for an interrupt window when it cannot; HLT exits to the
    /// host.
    User,
    /// KVM's in-kernel PIC, IOAPIC and local APICs (KVM_CREATE_IRQCHIP)
    /// and PIT (KVM_CREATE_PIT2); HLT sleeps in the kernel.
    Kernel,
}

impl IrqChip {
    /// The controller a guest's ABI note flags ask for.
    pub fn from_note(flags: u32) -> IrqChip {
        use hypercall_abi::note::{FLAG_IRQ_KERNEL, FLAG_IRQ_USER};
        if flags & FLAG_IRQ_KERNEL != 0 {
            IrqChip::Kernel
        } else if flags & FLAG_IRQ_USER != 0 {
            IrqChip::User
        } else {
            IrqChip::None
        }
    }
}

/// `--inject-every PERIOD[:N]`: the host interrupts the guest every period:
/// vector N through KVM_INTERRUPT (user-space controller), or IRQ line N
/// through an irqfd (in-kernel controller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inject {
    /// How often.
    pub period: Duration,
    /// The vector (user) or IRQ line (kernel).
    pub n: u32,
    /// The vCPU the user-space controller interrupts (`@VCPU`; the
    /// in-kernel controller routes its lines itself: always 0 there).
    pub vcpu: u32,
    /// In-kernel controller: raise the line with KVM_IRQ_LINE (raise, then
    /// lower: a VM ioctl per tick) instead of an irqfd write.
    pub irq_line_ioctl: bool,
}

/// How to build a VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Guest memory in bytes.
    pub mem_size: u64,
    /// The KVM device.
    pub kvm_path: PathBuf,
    /// The CPU mode the vCPUs start in.
    pub mode: CpuMode,
    /// Record every KVM call and exit (`--trace-kvm`).
    pub trace: Option<TraceFormat>,
    /// vCPUs (1..=layout::MAX_VCPUS); more than one needs long mode.
    pub vcpus: u32,
    /// Give the vCPUs KVM's supported CPUID (KVM_GET_SUPPORTED_CPUID and
    /// KVM_SET_CPUID2, ~0.4 ms). `run::prepare` sets it from the guest's
    /// ABI note (`note::FLAG_CPUID`); a flat image, which declares
    /// nothing, gets it.
    pub cpuid: bool,
    /// The interrupt controller; `None`: what the guest's note asks for.
    pub irqchip: Option<IrqChip>,
}

impl VmConfig {
    /// Checks the memory size (a 4 KiB multiple in `MIN_MEM..=MAX_MEM`, and
    /// what the mode can map) and the vCPU count.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let size = self.mem_size;
        if !size.is_multiple_of(4096) || !(layout::MIN_MEM..=layout::MAX_MEM).contains(&size) {
            return Err(ConfigError::MemSize(size));
        }
        if size > self.mode.max_mem() {
            return Err(ConfigError::ModeMem(self.mode, self.mode.max_mem()));
        }
        if self.vcpus == 0 || u64::from(self.vcpus) > layout::MAX_VCPUS {
            return Err(ConfigError::Vcpus(format!(
                "a VM has 1 to {} vCPUs, not {}",
                layout::MAX_VCPUS,
                self.vcpus
            )));
        }
        // (the calls kept for --html and --trace-out: set-up on this thread)
        if self.vcpus > 1 && self.trace.is_some_and(|t| t != TraceFormat::Keep) {
            return Err(ConfigError::Vcpus(
                "--trace-kvm follows a single vCPU: it cannot be combined with --vcpus".into(),
            ));
        }
        if self.vcpus > 1 && self.mode != CpuMode::Long {
            return Err(ConfigError::Vcpus(format!(
                "several vCPUs need long mode (each gets its own stack in the long-mode layout), not {} mode",
                self.mode
            )));
        }
        Ok(())
    }
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            mem_size: 2 << 20,
            kvm_path: PathBuf::from("/dev/kvm"),
            mode: CpuMode::Long,
            vcpus: 1,
            trace: None,
            cpuid: true,
            irqchip: None,
        }
    }
}

/// The shortest timer period the host serves (`--poll-interval`, the
/// matrix's `--quantum`): below it the kicks come faster than a KVM_RUN
/// round trip (tens of µs here) and the loop would do nothing else.
pub const MIN_PERIOD: Duration = Duration::from_micros(100);

/// How a VM runs: given once when the VM is made.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Stop the guest after this long (`--timeout`).
    pub timeout: Option<Duration>,
    /// Run each vCPU thread under the seccomp filter (`crate::seccomp`).
    pub seccomp: bool,
    /// Pin vCPU i's thread to host CPU `pin[i]` (empty: no pinning; else
    /// one CPU per vCPU).
    pub pin: Vec<usize>,
    /// SIMVIRTIO polling mode: the host drains TX at every exit and on a
    /// timer of this period (`--polling`); `None`: exit mode.
    pub polling: Option<Duration>,
    /// SIMVIRTIO ioeventfd mode (`--ioeventfd`): KVM catches the driver's
    /// notify writes (KVM_IOEVENTFD) and wakes a device thread; no exit.
    pub ioeventfd: bool,
    /// Time the host's handling of every exit (`--stats`).
    pub profile: bool,
    /// Do the 42 check at HLT even if the guest's note does not ask for it.
    pub check_42: bool,
    /// `--inject-every`: interrupt the guest periodically.
    pub inject: Option<Inject>,
    /// `--snapshot FILE --snapshot-at ...`: where the run stops for a
    /// snapshot (`crate::snapshot`).
    pub snapshot_at: Option<SnapAt>,
    /// `--kvm-stats`: read KVM's own counters of the VM and each vCPU at
    /// the end (`crate::kvm::stats`).
    pub kvm_stats: bool,
    /// `--trace-out`: keep each vCPU's KVM_RUN and exit-handling slices
    /// (`crate::timeline`).
    pub timeline: bool,
    /// `--record` under `--gdb`: time travel, its checkpoints within this
    /// many bytes (`crate::gdb::record`).
    pub record: Option<u64>,
}

/// Where a run stops to be saved (`--snapshot-at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapAt {
    /// Right after exit number N (`exits:N`, N >= 1).
    Exits(u64),
    /// At the guest's `snapshot` hypercall (`call`, the default).
    Call,
    /// At Ctrl-C or `--timeout`, instead of only ending (`stop`).
    Stop,
    /// Right after the guest's own exit number N (kicks and debugger stops
    /// not counted): the marks of gdb's time travel (`crate::gdb::record`),
    /// never a snapshot file.
    GuestExits(u64),
}

impl SnapAt {
    /// `exits:N`, `call` or `stop`.
    pub fn parse(s: &str) -> Result<SnapAt, String> {
        match s {
            "call" => Ok(SnapAt::Call),
            "stop" => Ok(SnapAt::Stop),
            _ => match s.strip_prefix("exits:").map(str::parse::<u64>) {
                Some(Ok(n)) if n > 0 => Ok(SnapAt::Exits(n)),
                _ => Err(format!(
                    "'{}': give exits:N (N >= 1, after that exit), call (at the guest's snapshot hypercall) or stop (at Ctrl-C or --timeout)",
                    crate::diag::escape(s)
                )),
            },
        }
    }
}

impl RunConfig {
    /// Checks the settings against a VM with `vcpus` vCPUs.
    pub fn validate(&self, vcpus: u32) -> Result<(), ConfigError> {
        let n = vcpus as usize;
        if !self.pin.is_empty() && self.pin.len() != n {
            return Err(ConfigError::Vcpus(format!(
                "--pin names {} CPU{}, but the VM has {} vCPU{}: give one CPU per vCPU",
                self.pin.len(),
                if self.pin.len() == 1 { "" } else { "s" },
                n,
                if n == 1 { "" } else { "s" },
            )));
        }
        Ok(())
    }
}
