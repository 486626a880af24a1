//! One VM with one vCPU: creation, memory, long-mode set-up, image loading
//! and the run loop (the hot path: KVM_RUN -> copy -> count -> dispatch ->
//! answer -> KVM_RUN, with no allocation and no extra vCPU ioctl unless a
//! hypercall needs one).

mod lane;
pub mod paging;

use crate::exit::ExitStats;
use crate::hypercall::HostError;
use crate::loader::Plan;
use crate::simvirtio::SimVirtio;
use crate::trace::{Call, Phase, TraceFormat, Tracer};
use crate::translate::Paging;
use hypercall_abi::{layout, note};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use lane::Lane;
use serde::Serialize;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use x86_64::structures::gdt::DescriptorFlags;

/// Where KVM's three TSS pages go (needed by VMX without unrestricted guest):
/// above guest RAM, which ends at or below `layout::MAX_MEM`.
pub const TSS_ADDR: u64 = 0xfffb_d000;
/// Selector of the 64-bit code segment in the host's GDT.
pub const CODE_SELECTOR: u16 = 0x08;
/// Selector of the data segment.
pub const DATA_SELECTOR: u16 = 0x10;
/// The KVM API version this host speaks.
pub const KVM_API_VERSION: i32 = 12;

/// Why a VM could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// /dev/kvm could not be opened.
    #[error("cannot open {path}: {hint}")]
    KvmOpen {
        /// The device path.
        path: String,
        /// What it means.
        hint: String,
    },
    /// Unexpected KVM API version.
    #[error("KVM API version is {0}, this host needs {KVM_API_VERSION}")]
    ApiVersion(i32),
    /// A KVM ioctl failed.
    #[error("{what} failed: {source}")]
    Kvm {
        /// The ioctl.
        what: &'static str,
        /// errno.
        source: kvm_ioctls::Error,
    },
    /// --mem out of range.
    #[error("guest memory of {size} is not usable: it must be a multiple of 4 KiB between {min} and {max}", size = crate::size::human(*.0), min = crate::size::human(layout::MIN_MEM), max = crate::size::human(layout::MAX_MEM))]
    MemSize(u64),
    /// Too much memory for the CPU mode.
    #[error("{mode} mode maps at most {max} of guest memory", mode = .0, max = crate::size::human(*.1))]
    ModeMem(CpuMode, u64),
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
    /// `--pin` names a CPU this host does not have, or pinning failed.
    #[error("cannot pin the vCPU thread to CPU {cpu}: {why}")]
    Pin {
        /// The CPU asked for.
        cpu: usize,
        /// Why not.
        why: String,
    },
    /// A vCPU count this VM cannot have, or a guest that cannot use it.
    #[error("{0}")]
    Vcpus(String),
    /// mmap of guest memory failed.
    #[error("cannot allocate {size} of guest memory: {why}", size = crate::size::human(*.0), why = .1)]
    Alloc(u64, String),
    /// Writing the host's structures or the image failed.
    #[error("cannot write guest memory: {0}")]
    Write(String),
    /// The host could not go on while running.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Signal or timer set-up failed.
    #[error(transparent)]
    Signal(#[from] crate::signals::SignalError),
    /// The seccomp filter could not be installed.
    #[error(transparent)]
    Jail(#[from] crate::jail::JailError),
}

/// A traced ioctl on `target`.
fn call(
    target: String,
    name: &'static str,
    args: String,
    ret: String,
    purpose: &'static str,
) -> Call {
    Call {
        ioctl: true,
        target,
        name,
        args,
        ret,
        purpose,
        phase: Phase::Setup,
    }
}

impl VmError {
    fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
        move |source| VmError::Kvm { what, source }
    }
}

/// The CPU mode a guest starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuMode {
    /// 16-bit real mode from the reset state, CS = DS = SS = 0.
    Real,
    /// 32-bit protected mode, flat 4 GiB segments, no paging.
    Protected,
    /// 32-bit protected mode with 2-level paging (a 4 MiB PSE page for the
    /// first 4 MiB, 4 KiB page tables beyond).
    Paged32,
    /// 64-bit long mode, identity map with 2 MiB pages.
    #[default]
    Long,
}

impl std::fmt::Display for CpuMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CpuMode::Real => "real",
            CpuMode::Protected => "protected",
            CpuMode::Paged32 => "paged32",
            CpuMode::Long => "long",
        })
    }
}

impl CpuMode {
    /// The ELF section with this mode's code (None: the ELF's own segments).
    pub fn section(self) -> Option<&'static str> {
        match self {
            CpuMode::Real => Some(hypercall_abi::mode_section::REAL),
            CpuMode::Protected | CpuMode::Paged32 => Some(hypercall_abi::mode_section::PROT32),
            CpuMode::Long => None,
        }
    }

    /// Largest guest memory in this mode.
    pub fn max_mem(self) -> u64 {
        match self {
            CpuMode::Paged32 => paging::PAGED32_MAX_MEM,
            _ => layout::MAX_MEM,
        }
    }
}

/// How to build a VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Guest memory in bytes.
    pub mem_size: u64,
    /// The KVM device.
    pub kvm_path: PathBuf,
    /// The CPU mode the vCPU starts in.
    pub mode: CpuMode,
    /// Record every KVM call and exit (`--trace-kvm`).
    pub trace: Option<TraceFormat>,
    /// vCPUs (1..=layout::MAX_VCPUS); more than one needs long mode.
    pub vcpus: u32,
}

impl VmConfig {
    /// Checks the memory size: a 4 KiB multiple in `MIN_MEM..=MAX_MEM`.
    pub fn validate(&self) -> Result<(), VmError> {
        let size = self.mem_size;
        if !size.is_multiple_of(4096) || !(layout::MIN_MEM..=layout::MAX_MEM).contains(&size) {
            return Err(VmError::MemSize(size));
        }
        if size > self.mode.max_mem() {
            return Err(VmError::ModeMem(self.mode, self.mode.max_mem()));
        }
        if self.vcpus == 0 || u64::from(self.vcpus) > layout::MAX_VCPUS {
            return Err(VmError::Vcpus(format!(
                "a VM has 1 to {} vCPUs, not {}",
                layout::MAX_VCPUS,
                self.vcpus
            )));
        }
        if self.vcpus > 1 && self.trace.is_some() {
            return Err(VmError::Vcpus(
                "--trace-kvm follows a single vCPU: it cannot be combined with --vcpus".into(),
            ));
        }
        if self.vcpus > 1 && self.mode != CpuMode::Long {
            return Err(VmError::Vcpus(format!(
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
        }
    }
}

/// General-purpose registers, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

impl From<&kvm_regs> for Regs {
    fn from(r: &kvm_regs) -> Regs {
        Regs {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rsp: r.rsp,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
        }
    }
}

impl Regs {
    /// Four lines of `name=value`.
    pub fn dump(&self) -> String {
        let r = self;
        format!(
            "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n  \
             rsi={:#018x} rdi={:#018x} rsp={:#018x} rbp={:#018x}\n  \
             r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}\n  \
             r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n  \
             rip={:#018x} rflags={:#x}",
            r.rax,
            r.rbx,
            r.rcx,
            r.rdx,
            r.rsi,
            r.rdi,
            r.rsp,
            r.rbp,
            r.r8,
            r.r9,
            r.r10,
            r.r11,
            r.r12,
            r.r13,
            r.r14,
            r.r15,
            r.rip,
            r.rflags
        )
    }
}

/// A fatal exit: the guest cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// KVM_EXIT_SHUTDOWN: a triple fault.
    TripleFault,
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry {
        /// hardware_entry_failure_reason.
        reason: u64,
        /// The physical CPU.
        cpu: u32,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError {
        /// kvm_run.internal.suberror.
        suberror: u32,
    },
    /// KVM could not reach guest memory (KVM_EXIT_MEMORY_FAULT).
    MemoryFault {
        /// The address.
        gpa: u64,
    },
    /// An exit this host does not handle.
    Unhandled {
        /// KVM_EXIT_* number.
        exit_reason: u32,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::TripleFault => write!(f, "triple fault (KVM_EXIT_SHUTDOWN, exit reason 8)"),
            Fault::FailEntry { reason, cpu } => write!(
                f,
                "VM entry failed (KVM_EXIT_FAIL_ENTRY, exit reason 9): hardware reason {reason:#x} on CPU {cpu}"
            ),
            Fault::InternalError { suberror } => write!(
                f,
                "KVM internal error (KVM_EXIT_INTERNAL_ERROR, exit reason 17), suberror {suberror}{}",
                match suberror {
                    1 => " (instruction emulation failed)",
                    2 => " (simultaneous exceptions)",
                    3 => " (delivery event failed)",
                    _ => "",
                }
            ),
            Fault::MemoryFault { gpa } => {
                write!(f, "memory fault at GPA {gpa:#x} (KVM_EXIT_MEMORY_FAULT)")
            }
            Fault::Unhandled { exit_reason } => write!(f, "unhandled exit reason {exit_reason}"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Stop {
    /// The guest executed `hlt`.
    Halted,
    /// `--timeout` expired with the guest still running.
    TimedOut {
        /// The limit.
        after_ms: u64,
    },
    /// SIGINT or SIGTERM (Ctrl-C) stopped the run.
    Interrupted,
    /// Another vCPU ended the VM (it faulted or failed); this one was
    /// stopped where it was.
    Stopped,
    /// A fatal exit.
    Faulted {
        /// What.
        fault: Fault,
        /// CR0, CR3, CR4, EFER at the time.
        cr0: u64,
        /// CR3.
        cr3: u64,
        /// CR4.
        cr4: u64,
        /// EFER.
        efer: u64,
    },
}

/// The 42 check: the 32-bit value at `layout::CHECK_ADDR` and RAX at HLT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check42 {
    /// Value read from guest memory.
    pub memory: u32,
    /// RAX.
    pub rax: u64,
    /// Both are 42.
    pub pass: bool,
}

/// How one vCPU ended.
#[derive(Debug, Clone)]
pub struct VcpuReport {
    /// The vCPU id.
    pub id: usize,
    /// How its loop ended.
    pub stop: Stop,
    /// Its registers at the end.
    pub regs: Regs,
    /// Its exits.
    pub stats: ExitStats,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How it ended (with several vCPUs: the first fault, else the first
    /// timeout or interrupt, else halted).
    pub stop: Stop,
    /// Registers at the end, of vCPU `vcpu`.
    pub regs: Regs,
    /// The vCPU that `stop` and `regs` are about.
    pub vcpu: usize,
    /// Exit counts, all vCPUs together.
    pub stats: ExitStats,
    /// Each vCPU's end and exits.
    pub vcpus: Vec<VcpuReport>,
    /// What the SIMVIRTIO device did.
    pub device: crate::simvirtio::DeviceStats,
    /// The 42 check, when the guest asked for it.
    pub check: Option<Check42>,
    /// Bad hypercall arguments reported.
    pub guest_errors: u64,
    /// Wall time in the run loop.
    pub elapsed: Duration,
}

/// A VM with its vCPUs and memory.
pub struct Vm {
    // Field order is drop order: vCPUs, then VM, then memory, then /dev/kvm.
    /// vCPU i at index i.
    vcpus: Vec<VcpuFd>,
    vm: VmFd,
    mem: GuestMemoryMmap,
    _kvm: Kvm,
    mem_size: u64,
    mode: CpuMode,
    flags: u32,
    /// Per vCPU.
    stats: Vec<ExitStats>,
    guest_errors: u64,
    timeout: Option<Duration>,
    signals_armed: bool,
    seccomp: bool,
    jailed: bool,
    trace: Option<Tracer>,
    /// Host CPU for vCPU i's thread.
    pin: Vec<usize>,
    /// Size of the vCPU's kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE).
    run_size: usize,
    /// The SIMVIRTIO device at `simvirtio::MMIO_BASE`.
    device: Mutex<SimVirtio>,
    /// `--polling`: drain TX at every exit and on a timer of this period.
    poll: Option<Duration>,
    /// `--stats`: time the host's handling of each exit.
    profile: bool,
}

/// How the run loop ended.
enum End {
    Halt,
    Fault(Fault),
    Timeout,
    Interrupt,
    /// Another vCPU ended the VM.
    Stopped,
}

/// The supported CPUID with vCPU `id`'s initial APIC id (leaf 1 EBX[31:24],
/// leaves 0xB and 0x1F EDX) and the logical processor count (leaf 1).
fn cpuid_for(supported: &kvm_bindings::CpuId, id: u32, count: u32) -> kvm_bindings::CpuId {
    let mut c = supported.clone();
    for e in c.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24) | ((count & 0xff) << 16);
                if count > 1 {
                    e.edx |= 1 << 28; // HTT: the count field is valid
                }
            }
            0xb | 0x1f => e.edx = id,
            _ => {}
        }
    }
    c
}

fn open_kvm(path: &std::path::Path) -> Result<Kvm, VmError> {
    let shown = path.display().to_string();
    use std::os::unix::ffi::OsStrExt;
    let cpath =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| VmError::KvmOpen {
            path: shown.clone(),
            hint: "the path contains a NUL byte".into(),
        })?;
    let kvm = Kvm::new_with_path(cpath).map_err(|e| VmError::KvmOpen {
        path: shown.clone(),
        hint: match e.errno() {
            libc::ENOENT => "no such device: KVM is not available here (is the kvm module loaded, and virtualization enabled?)".into(),
            libc::EACCES | libc::EPERM => "permission denied: add your user to the 'kvm' group or run as root".into(),
            _ => e.to_string(),
        },
    })?;
    let v = kvm.get_api_version();
    if v != KVM_API_VERSION {
        return Err(VmError::ApiVersion(v));
    }
    Ok(kvm)
}

fn segment(selector: u16, flags: DescriptorFlags) -> kvm_segment {
    let f = flags.bits();
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: ((f >> 40) & 0xf) as u8,
        present: ((f >> 47) & 1) as u8,
        dpl: ((f >> 45) & 3) as u8,
        db: ((f >> 54) & 1) as u8,
        s: ((f >> 44) & 1) as u8,
        l: ((f >> 53) & 1) as u8,
        g: ((f >> 55) & 1) as u8,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Pins the calling thread to one host CPU.
pub fn pin_this_thread(cpu: usize) -> Result<(), VmError> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as usize;
    if cpu >= n || cpu >= libc::CPU_SETSIZE as usize {
        return Err(VmError::Pin {
            cpu,
            why: format!("this host has CPUs 0..={}", n - 1),
        });
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes bit `cpu`
    // (< CPU_SETSIZE, checked above); sched_setaffinity(0) reads the set for
    // the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(VmError::Pin {
            cpu,
            why: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}

impl Vm {
    /// Opens KVM, creates the VM, its memory and one vCPU, and puts the vCPU
    /// in 64-bit long mode with the host's GDT and identity page tables.
    pub fn new(cfg: &VmConfig) -> Result<Vm, VmError> {
        cfg.validate()?;
        let size = cfg.mem_size;
        let kvm = open_kvm(&cfg.kvm_path)?;
        let mut trace = cfg.trace.map(Tracer::new);
        let kfd = format!("/dev/kvm {}", kvm.as_raw_fd());
        if let Some(t) = &mut trace {
            t.call(Call {
                ioctl: false,
                target: String::new(),
                name: "open",
                args: format!("\"{}\", O_RDWR | O_CLOEXEC", cfg.kvm_path.display()),
                ret: kvm.as_raw_fd().to_string(),
                purpose: "open the KVM device",
                phase: Phase::Setup,
            });
            t.call(call(
                kfd.clone(),
                "KVM_GET_API_VERSION",
                String::new(),
                KVM_API_VERSION.to_string(),
                "check the API is the stable one (12)",
            ));
        }
        let vm = loop {
            match kvm.create_vm() {
                Err(e) if e.errno() == libc::EINTR => continue,
                r => break r.map_err(VmError::kvm("KVM_CREATE_VM"))?,
            }
        };
        // kvm-ioctls asked KVM_GET_VCPU_MMAP_SIZE inside create_vm
        let run_size = vm.run_size();
        let vfd = format!("vm {}", vm.as_raw_fd());
        if let Some(t) = &mut trace {
            t.call(call(
                kfd.clone(),
                "KVM_CREATE_VM",
                "type 0".into(),
                vm.as_raw_fd().to_string(),
                "create an empty VM: no memory, no vCPU",
            ));
            t.call(call(
                kfd,
                "KVM_GET_VCPU_MMAP_SIZE",
                String::new(),
                run_size.to_string(),
                "size of the kvm_run area each vCPU shares with us (made by kvm-ioctls inside create_vm)",
            ));
        }
        vm.set_tss_address(TSS_ADDR as usize)
            .map_err(VmError::kvm("KVM_SET_TSS_ADDR"))?;
        if let Some(t) = &mut trace {
            t.call(call(
                vfd.clone(),
                "KVM_SET_TSS_ADDR",
                format!("{TSS_ADDR:#x}"),
                "0".into(),
                "3 pages above guest RAM for the TSS that Intel VMX needs",
            ));
        }

        // vm-memory maps anonymous memory MAP_PRIVATE | MAP_NORESERVE.
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)])
            .map_err(|e| VmError::Alloc(size, e.to_string()))?;
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|e| VmError::Alloc(size, e.to_string()))?;
        if let Some(t) = &mut trace {
            t.call(Call {
                ioctl: false,
                target: String::new(),
                name: "mmap",
                args: format!("{size:#x} bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE"),
                ret: format!("{host:p}"),
                purpose: "allocate the guest's RAM in our address space",
                phase: Phase::Setup,
            });
        }
        // SAFETY: `host` is the start of the `size`-byte mapping vm-memory
        // just made; madvise only changes how the kernel may share its pages.
        unsafe { libc::madvise(host.cast(), size as usize, libc::MADV_MERGEABLE) };
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: the region is exactly the mapping owned by `mem`, which
        // outlives the VM (field order in `Vm`: the VM fd drops first).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(VmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        if let Some(t) = &mut trace {
            t.call(call(
                vfd.clone(),
                "KVM_SET_USER_MEMORY_REGION",
                format!("slot 0, GPA 0x0, size {size:#x}, HVA {host:p}"),
                "0".into(),
                "make that memory the guest's physical memory from GPA 0",
            ));
        }
        // The CPUID the vCPUs report: what this KVM supports. Without it the
        // guest sees no features and, e.g., cannot set EFER.SCE for SYSCALL.
        // KVM's supported CPUID is a property of the module: asked once per
        // process.
        static SUPPORTED: std::sync::OnceLock<kvm_bindings::CpuId> = std::sync::OnceLock::new();
        let cached = SUPPORTED.get().is_some();
        let supported = match SUPPORTED.get() {
            Some(c) => c.clone(),
            None => {
                let c = kvm
                    .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                    .map_err(VmError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
                SUPPORTED.get_or_init(|| c).clone()
            }
        };
        if let Some(t) = &mut trace
            && !cached
        {
            t.call(call(
                format!("/dev/kvm {}", kvm.as_raw_fd()),
                "KVM_GET_SUPPORTED_CPUID",
                format!("{} entries max", kvm_bindings::KVM_MAX_CPUID_ENTRIES),
                format!("0, {} entries", supported.as_slice().len()),
                "the CPUID leaves this KVM can give a guest (asked once per process)",
            ));
        }
        let mut vcpus = Vec::with_capacity(cfg.vcpus as usize);
        for id in 0..cfg.vcpus {
            let mut vcpu = vm
                .create_vcpu(u64::from(id))
                .map_err(VmError::kvm("KVM_CREATE_VCPU"))?;
            if let Some(t) = &mut trace {
                t.call(call(
                    vfd.clone(),
                    "KVM_CREATE_VCPU",
                    format!("id {id}"),
                    vcpu.as_raw_fd().to_string(),
                    "create a vCPU in its reset state",
                ));
                let kvm_run: *const kvm_bindings::kvm_run = vcpu.get_kvm_run();
                t.call(Call {
                    ioctl: false,
                    target: String::new(),
                    name: "mmap",
                    args: format!(
                        "{run_size:#x} bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu fd {}",
                        vcpu.as_raw_fd()
                    ),
                    ret: format!("{kvm_run:p}"),
                    purpose: "map the vCPU's kvm_run area (made by kvm-ioctls inside create_vcpu)",
                    phase: Phase::Setup,
                });
            }
            let cpuid = cpuid_for(&supported, id, cfg.vcpus);
            vcpu.set_cpuid2(&cpuid)
                .map_err(VmError::kvm("KVM_SET_CPUID2"))?;
            if let Some(t) = &mut trace {
                t.call(call(
                    format!("vcpu {}", vcpu.as_raw_fd()),
                    "KVM_SET_CPUID2",
                    format!("{} entries, APIC id {id}", cpuid.as_slice().len()),
                    "0".into(),
                    "the features the guest sees (SYSCALL, NX, ...) and this vCPU's APIC id",
                ));
            }
            vcpus.push(vcpu);
        }

        let mut this = Vm {
            vcpus,
            vm,
            mem,
            _kvm: kvm,
            mem_size: size,
            mode: cfg.mode,
            flags: 0,
            stats: vec![ExitStats::default(); cfg.vcpus as usize],
            guest_errors: 0,
            timeout: None,
            signals_armed: false,
            seccomp: false,
            jailed: false,
            trace,
            pin: Vec::new(),
            run_size,
            device: Mutex::new(SimVirtio::new(false)),
            poll: None,
            profile: false,
        };
        this.setup_mode()?;
        Ok(this)
    }

    fn trace_call(&mut self, name: &'static str, args: String, ret: String, purpose: &'static str) {
        self.trace_call_on(0, name, args, ret, purpose)
    }

    fn trace_call_on(
        &mut self,
        i: usize,
        name: &'static str,
        args: String,
        ret: String,
        purpose: &'static str,
    ) {
        let target = format!("vcpu {}", self.vcpus[i].as_raw_fd());
        if let Some(t) = &mut self.trace {
            t.call(call(target, name, args, ret, purpose));
        }
    }

    fn traced_sregs(&mut self, purpose: &'static str) -> Result<kvm_sregs, VmError> {
        let s = self.vcpus[0]
            .get_sregs()
            .map_err(VmError::kvm("KVM_GET_SREGS"))?;
        let ret = format!(
            "0, CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
            s.cr0, s.cr3, s.cr4, s.efer
        );
        self.trace_call("KVM_GET_SREGS", String::new(), ret, purpose);
        Ok(s)
    }

    fn setup_mode(&mut self) -> Result<(), VmError> {
        let mut s: kvm_sregs = self.vcpus[0]
            .get_sregs()
            .map_err(VmError::kvm("KVM_GET_SREGS"))?;
        self.trace_call(
            "KVM_GET_SREGS",
            String::new(),
            format!("0, CS base {:#x} CR0 {:#x}", s.cs.base, s.cr0),
            "read the reset state's segments and control registers",
        );
        if self.mode == CpuMode::Real {
            // The reset state has CS base 0xffff0000: start at segment 0.
            for seg in [
                &mut s.cs, &mut s.ds, &mut s.es, &mut s.fs, &mut s.gs, &mut s.ss,
            ] {
                seg.selector = 0;
                seg.base = 0;
            }
            self.vcpus[0]
                .set_sregs(&s)
                .map_err(VmError::kvm("KVM_SET_SREGS"))?;
            self.trace_call(
                "KVM_SET_SREGS",
                "CS = DS = ES = FS = GS = SS = 0, base 0, CR0.PE clear".into(),
                "0".into(),
                "real mode from segment 0 instead of the reset vector's CS base 0xffff0000",
            );
            return Ok(());
        }
        let code = match self.mode {
            CpuMode::Long => DescriptorFlags::KERNEL_CODE64,
            _ => DescriptorFlags::KERNEL_CODE32,
        };
        let gdt = [0u64, code.bits(), DescriptorFlags::KERNEL_DATA.bits()];
        for (i, d) in gdt.iter().enumerate() {
            self.mem
                .write_obj(*d, GuestAddress(layout::GDT + 8 * i as u64))
                .map_err(|e| VmError::Write(e.to_string()))?;
        }
        s.cs = segment(CODE_SELECTOR, code);
        let data = segment(DATA_SELECTOR, DescriptorFlags::KERNEL_DATA);
        (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
        s.gdt.base = layout::GDT;
        s.gdt.limit = (gdt.len() * 8 - 1) as u16;
        let werr = |e: paging::PagingError| VmError::Write(e.to_string());
        match self.mode {
            CpuMode::Long => paging::build_identity_map(&self.mem, self.mem_size).map_err(werr)?,
            CpuMode::Paged32 => paging::build_paged32(&self.mem, self.mem_size).map_err(werr)?,
            CpuMode::Protected | CpuMode::Real => Vec::new(),
        };
        let p = Paging::at_start(self.mode);
        (s.cr0, s.cr3, s.cr4, s.efer) = (p.cr0, p.cr3, p.cr4, p.efer);
        let purpose = match self.mode {
            CpuMode::Long => "enter 64-bit long mode: GDT, 64-bit CS, paging on",
            CpuMode::Paged32 => "enter 32-bit protected mode with 2-level paging",
            _ => "enter 32-bit protected mode, flat segments, no paging",
        };
        // Every vCPU starts in the same mode with the same tables.
        for i in 0..self.vcpus.len() {
            self.vcpus[i]
                .set_sregs(&s)
                .map_err(VmError::kvm("KVM_SET_SREGS"))?;
            self.trace_call_on(
                i,
                "KVM_SET_SREGS",
                format!("CS {CODE_SELECTOR:#x} DS/SS {DATA_SELECTOR:#x}, GDT {:#x}, CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}", s.gdt.base, s.cr0, s.cr3, s.cr4, s.efer),
                "0".into(),
                purpose,
            );
        }
        Ok(())
    }

    /// Copies a checked plan's segments into guest memory (bss is zero: the
    /// memory is freshly mapped) and points every vCPU at the entry: vCPU i
    /// with RSP = `layout::STACK_TOP - i * layout::VCPU_STACK_SIZE`, RDI = i,
    /// RSI = the number of vCPUs.
    pub fn load(&mut self, plan: &Plan, bytes: &[u8]) -> Result<(), VmError> {
        for s in &plan.segments {
            let data = bytes
                .get(s.file.clone())
                .ok_or_else(|| VmError::Write("segment outside the file".into()))?;
            self.mem
                .write_slice(data, GuestAddress(s.gpa))
                .map_err(|e| VmError::Write(e.to_string()))?;
        }
        self.flags = plan.flags;
        let n = self.vcpus.len() as u64;
        for i in 0..self.vcpus.len() {
            let id = i as u64;
            let regs = kvm_regs {
                rip: plan.entry,
                rsp: match self.mode {
                    CpuMode::Real => layout::REAL_STACK_TOP,
                    _ => layout::STACK_TOP - id * layout::VCPU_STACK_SIZE,
                },
                rdi: id,
                rsi: n,
                rflags: 0x2,
                ..Default::default()
            };
            self.vcpus[i]
                .set_regs(&regs)
                .map_err(VmError::kvm("KVM_SET_REGS"))?;
            self.trace_call_on(
                i,
                "KVM_SET_REGS",
                format!(
                    "RIP {:#x} RSP {:#x} RDI {id} RSI {n} RFLAGS 0x2",
                    regs.rip, regs.rsp
                ),
                "0".into(),
                "point the vCPU at the guest's entry and its stack; RDI = vCPU id, RSI = vCPUs",
            );
        }
        Ok(())
    }

    /// Asks for the 42 check at HLT (flat images have no note to ask for it).
    pub fn set_check_42(&mut self, on: bool) {
        if on {
            self.flags |= note::FLAG_CHECK_42;
        } else {
            self.flags &= !note::FLAG_CHECK_42;
        }
    }

    /// Pins the thread that runs vCPU i to host CPU `cpus[i]` (from the
    /// start of the next `run` on). Empty: no pinning.
    pub fn set_pin(&mut self, cpus: &[usize]) -> Result<(), VmError> {
        if !cpus.is_empty() && cpus.len() != self.vcpus.len() {
            return Err(VmError::Vcpus(format!(
                "--pin names {} CPU{}, but the VM has {} vCPU{}: give one CPU per vCPU",
                cpus.len(),
                if cpus.len() == 1 { "" } else { "s" },
                self.vcpus.len(),
                if self.vcpus.len() == 1 { "" } else { "s" },
            )));
        }
        self.pin = cpus.to_vec();
        Ok(())
    }

    /// SIMVIRTIO polling mode: the host drains TX at every exit and every
    /// `interval` (a timer kicks the vCPU); the driver sees CTL_POLLING and
    /// does not notify. `None`: exit mode.
    pub fn set_polling(&mut self, interval: Option<Duration>) {
        self.poll = interval;
        self.device = Mutex::new(SimVirtio::new(interval.is_some()));
    }

    /// Measures the host's handling time of every exit (`--stats`).
    pub fn set_profile(&mut self, on: bool) {
        self.profile = on;
    }

    /// Stops the run with `Stop::TimedOut` once `t` has passed.
    pub fn set_timeout(&mut self, t: Option<Duration>) {
        self.timeout = t;
    }

    /// Runs the vCPU thread under the seccomp filter (`crate::jail`) from
    /// the start of the next `run` on. The filter stays on that thread.
    pub fn set_seccomp(&mut self, on: bool) {
        self.seccomp = on;
    }

    /// Sends the `--trace-kvm` output to `sink` (what was recorded so far
    /// first). Without a call, `run` sends it to standard error.
    pub fn trace_to(&mut self, sink: Box<dyn Write + Send>) -> Result<(), VmError> {
        if let Some(t) = &mut self.trace {
            t.attach(sink).map_err(HostError::from)?;
        }
        Ok(())
    }

    /// Size of the vCPU's kvm_run mapping, from KVM_GET_VCPU_MMAP_SIZE.
    pub fn kvm_run_size(&self) -> usize {
        self.run_size
    }

    /// Host address of the vCPU's kvm_run mapping.
    pub fn kvm_run_addr(&mut self) -> u64 {
        let p: *const kvm_bindings::kvm_run = self.vcpus[0].get_kvm_run();
        p as u64
    }

    /// Guest memory.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// The CPU mode the vCPU started in.
    pub fn mode(&self) -> CpuMode {
        self.mode
    }

    /// Guest memory size.
    pub fn mem_size(&self) -> u64 {
        self.mem_size
    }

    /// vCPU 0.
    pub fn vcpu(&self) -> &VcpuFd {
        &self.vcpus[0]
    }

    /// vCPU 0, to run it from outside `Vm::run` (`host matrix`).
    pub fn vcpu_mut(&mut self) -> &mut VcpuFd {
        &mut self.vcpus[0]
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// The VM.
    pub fn vm_fd(&self) -> &VmFd {
        &self.vm
    }

    /// Runs the VM until every vCPU has halted, or one faults, or the run
    /// times out or is interrupted. Guest output goes to `out`, the host's
    /// one-line diagnostics to `diag`. One vCPU runs on the calling thread;
    /// several run on one thread each (see `run_smp`).
    pub fn run(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<RunOutcome, VmError> {
        if self.vcpus.len() > 1 {
            return self.run_smp(out, diag);
        }
        if let Some(t) = &mut self.trace {
            // Mermaid collects everything and writes at the end; text would
            // have gone out as it happened if a sink had been attached.
            if !t.attached() {
                t.attach(Box::new(std::io::stderr()))
                    .map_err(HostError::from)?;
            }
        }
        if self.mode == CpuMode::Paged32 {
            // Check that KVM kept CR0.PG: kvm-pvm silently clears it, and
            // the guest would then die at its first instruction.
            let s = self.traced_sregs("check that KVM kept CR0.PG for 32-bit paging")?;
            let want = Paging::at_start(self.mode).cr0;
            if s.cr0 != want {
                return Err(VmError::ModeRefused {
                    mode: self.mode,
                    want,
                    got: s.cr0,
                });
            }
        }
        if !self.signals_armed {
            crate::signals::arm_vcpu(&self.vcpus[0])?;
            self.signals_armed = true;
            self.trace_call(
                "KVM_SET_SIGNAL_MASK",
                format!(
                    "this thread's mask with signal {} unblocked",
                    crate::signals::kick_signal()
                ),
                "0".into(),
                "the kick signal is blocked in this thread except inside KVM_RUN",
            );
        }
        let start = Instant::now();
        let mut timer = None;
        if let Some(t) = self.timeout {
            let tm = crate::signals::Timer::for_this_thread()?;
            tm.arm(t)?;
            timer = Some(tm);
            if let Some(tr) = &mut self.trace {
                tr.call(Call {
                    ioctl: false,
                    target: String::new(),
                    name: "timer_create",
                    args: format!("CLOCK_MONOTONIC, SIGEV_THREAD_ID, fires in {t:?}"),
                    ret: "0".into(),
                    purpose: "--timeout: a signal to this thread ends the next KVM_RUN",
                    phase: Phase::Setup,
                });
            }
        }
        let deadline = self.timeout.map(|t| start + t);
        let poll_timer = self.poll_timer()?;
        if let Some(&cpu) = self.pin.first() {
            pin_this_thread(cpu)?;
            self.pin.clear();
        }
        if self.seccomp && !self.jailed {
            // Everything the loop needs exists now; from here on the thread
            // may only run the guest, read registers, write output and exit.
            crate::jail::apply()?;
            self.jailed = true;
            if let Some(tr) = &mut self.trace {
                tr.call(Call {
                    ioctl: false,
                    target: String::new(),
                    name: "seccomp",
                    args: "SECCOMP_SET_MODE_FILTER, allowlist of host/src/jail.rs".into(),
                    ret: "0".into(),
                    purpose: "from here on this thread may only run the guest and report",
                    phase: Phase::Setup,
                });
            }
        }
        let end = lane::run_loop(
            &mut Lane {
                vcpu: &mut self.vcpus[0],
                mem: &self.mem,
                stats: &mut self.stats[0],
                guest_errors: &mut self.guest_errors,
                trace: &mut self.trace,
                run_size: self.run_size,
                deadline,
                stop: None,
                device: &self.device,
                polling: self.poll.is_some(),
                profile: self.profile,
            },
            out,
            diag,
        )?;
        let elapsed = start.elapsed();
        drop(timer);
        drop(poll_timer);
        self.finish_device(out, diag)?;
        out.flush().map_err(HostError::from)?;
        let (stop, regs) = stop_of(
            &mut self.vcpus[0],
            self.run_size,
            end,
            self.timeout,
            &mut self.trace,
        )?;
        let per = vec![VcpuReport {
            id: 0,
            stop,
            regs,
            stats: self.stats[0].clone(),
        }];
        self.outcome(per, elapsed)
    }

    /// `--polling`: a periodic timer that kicks this thread, so the loop
    /// drains TX even while the guest makes no exit.
    fn poll_timer(&self) -> Result<Option<crate::signals::Timer>, VmError> {
        let Some(period) = self.poll else {
            return Ok(None);
        };
        let t = crate::signals::Timer::for_this_thread()?;
        let first = crate::signals::monotonic_ns() + period.as_nanos() as u64;
        t.arm_periodic(first, period)?;
        Ok(Some(t))
    }

    /// After the run: the device takes what is left in TX (polling mode)
    /// and ends an unfinished line.
    fn finish_device(&mut self, out: &mut dyn Write, diag: &mut dyn Write) -> Result<(), VmError> {
        let d = self.device.get_mut().unwrap_or_else(|p| p.into_inner());
        d.finish(&self.mem, out, diag)?;
        out.flush().map_err(HostError::from)?;
        Ok(())
    }

    /// Several vCPUs: one thread each (named `vcpu<i>`), each set up like
    /// the single-vCPU path (kick signal, timer, pin, seccomp) and running
    /// the same loop. Their output comes to this thread line by line over a
    /// channel, so lines from different vCPUs never mix. A vCPU that faults
    /// stops the others; one that halts just ends its thread.
    fn run_smp(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<RunOutcome, VmError> {
        // VmConfig::validate refused --trace-kvm with several vCPUs.
        let stop = AtomicBool::new(false);
        let tids = Mutex::new(Vec::new());
        let (tx, rx) = mpsc::channel::<(Stream, Vec<u8>)>();
        let start = Instant::now();
        let job = VcpuJob {
            mem: &self.mem,
            run_size: self.run_size,
            deadline: self.timeout.map(|t| start + t),
            timeout: self.timeout,
            seccomp: self.seccomp,
            stop: &stop,
            tids: &tids,
            device: &self.device,
            poll: self.poll,
            profile: self.profile,
        };
        let pins = std::mem::take(&mut self.pin);
        let (results, pumped) = std::thread::scope(|s| {
            let mut handles = Vec::new();
            let mut spawn_error = None;
            for (i, (vcpu, stats)) in self.vcpus.iter_mut().zip(self.stats.iter_mut()).enumerate() {
                let tx = tx.clone();
                let pin = pins.get(i).copied();
                let job = &job;
                let h = std::thread::Builder::new()
                    .name(format!("vcpu{i}"))
                    .spawn_scoped(s, move || {
                        let mut out = ChanWriter::new(tx.clone(), Stream::Out);
                        let mut diag = ChanWriter::new(tx, Stream::Diag);
                        let r = job.run(i == 0, vcpu, stats, pin, &mut out, &mut diag);
                        let _ = out.flush();
                        let _ = diag.flush();
                        if !matches!(r, Ok((Stop::Halted, ..))) {
                            // A fault, an error, a timeout or an interrupt
                            // ends the whole VM.
                            job.stop_all();
                        }
                        r
                    });
                match h {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        spawn_error = Some(e);
                        job.stop_all();
                        break;
                    }
                }
            }
            drop(tx);
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
                    job.stop_all();
                }
            }
            let results: Vec<_> = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or(Err(VmError::Host(HostError::Internal(
                        "a vCPU thread panicked",
                    ))))
                })
                .collect();
            match spawn_error {
                Some(e) => (Err(VmError::Host(HostError::from(e))), pumped),
                None => (Ok(results), pumped),
            }
        });
        let elapsed = start.elapsed();
        pumped.map_err(HostError::from)?;
        let mut per = Vec::new();
        for (id, r) in results?.into_iter().enumerate() {
            let (stop, regs, guest_errors) = r?;
            self.guest_errors += guest_errors;
            per.push(VcpuReport {
                id,
                stop,
                regs,
                stats: self.stats[id].clone(),
            });
        }
        self.finish_device(out, diag)?;
        self.outcome(per, elapsed)
    }

    /// The run's outcome from each vCPU's: the VM's stop is the first
    /// fault, else the first timeout or interrupt, else "halted"; the exit
    /// counts are summed; the 42 check reads memory and vCPU 0's RAX.
    fn outcome(&mut self, per: Vec<VcpuReport>, elapsed: Duration) -> Result<RunOutcome, VmError> {
        let main = per
            .iter()
            .position(|v| matches!(v.stop, Stop::Faulted { .. }))
            .or_else(|| {
                per.iter()
                    .position(|v| !matches!(v.stop, Stop::Halted | Stop::Stopped))
            })
            .unwrap_or(0);
        let stop = per[main].stop.clone();
        let regs = per[main].regs;
        let all_halted = per.iter().all(|v| v.stop == Stop::Halted);
        let check = (all_halted && self.flags & note::FLAG_CHECK_42 != 0).then(|| {
            let memory: u32 = self
                .mem
                .read_obj(GuestAddress(layout::CHECK_ADDR))
                .unwrap_or(0);
            let want = layout::CHECK_VALUE;
            let rax = per[0].regs.rax;
            Check42 {
                memory,
                rax,
                pass: u64::from(memory) == want && rax == want,
            }
        });
        if let Some(t) = &mut self.trace {
            t.finish().map_err(HostError::from)?;
        }
        let mut stats = ExitStats::default();
        for v in &per {
            stats.merge(&v.stats);
        }
        Ok(RunOutcome {
            stop,
            regs,
            vcpu: main,
            stats,
            check,
            guest_errors: self.guest_errors,
            elapsed,
            vcpus: per,
            device: self.device.get_mut().map(|d| d.stats()).unwrap_or_default(),
        })
    }
}

/// Which stream a vCPU thread's bytes are for.
#[derive(Clone, Copy)]
enum Stream {
    Out,
    Diag,
}

/// A vCPU thread's `out` or `diag`: sends whole lines to the thread that
/// writes them.
struct ChanWriter {
    tx: mpsc::Sender<(Stream, Vec<u8>)>,
    stream: Stream,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn new(tx: mpsc::Sender<(Stream, Vec<u8>)>, stream: Stream) -> ChanWriter {
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

/// What every vCPU thread of one `run_smp` shares.
struct VcpuJob<'a> {
    mem: &'a GuestMemoryMmap,
    run_size: usize,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    seccomp: bool,
    /// Set by the first vCPU that ends the VM.
    stop: &'a AtomicBool,
    /// The vCPU threads' ids, to kick them out of KVM_RUN.
    tids: &'a Mutex<Vec<libc::pid_t>>,
    device: &'a Mutex<SimVirtio>,
    /// Polling period (the timer runs on vCPU 0's thread).
    poll: Option<Duration>,
    profile: bool,
}

impl VcpuJob<'_> {
    /// Sets up this thread for vCPU `id` and runs it to its end.
    fn run(
        &self,
        first: bool,
        vcpu: &mut VcpuFd,
        stats: &mut ExitStats,
        pin: Option<usize>,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(Stop, Regs, u64), VmError> {
        crate::signals::arm_vcpu(vcpu)?;
        // Registered before the first look at `stop`: a vCPU that ends the
        // VM after that look kicks this thread out of its KVM_RUN.
        if let Ok(mut t) = self.tids.lock() {
            t.push(crate::signals::gettid());
        }
        let _timer = match self.timeout {
            Some(t) => {
                let tm = crate::signals::Timer::for_this_thread()?;
                tm.arm(t)?;
                Some(tm)
            }
            None => None,
        };
        let _poll_timer = match self.poll {
            Some(period) if first => {
                let t = crate::signals::Timer::for_this_thread()?;
                t.arm_periodic(
                    crate::signals::monotonic_ns() + period.as_nanos() as u64,
                    period,
                )?;
                Some(t)
            }
            _ => None,
        };
        if let Some(cpu) = pin {
            pin_this_thread(cpu)?;
        }
        if self.seccomp {
            crate::jail::apply()?;
        }
        let mut guest_errors = 0;
        let mut no_trace = None;
        let end = lane::run_loop(
            &mut Lane {
                vcpu,
                mem: self.mem,
                stats,
                guest_errors: &mut guest_errors,
                trace: &mut no_trace,
                run_size: self.run_size,
                deadline: self.deadline,
                stop: Some(self.stop),
                device: self.device,
                polling: self.poll.is_some(),
                profile: self.profile,
            },
            out,
            diag,
        );
        let end = end?;
        let (stop, regs) = stop_of(vcpu, self.run_size, end, self.timeout, &mut no_trace)?;
        Ok((stop, regs, guest_errors))
    }

    /// Ends the VM: every vCPU thread leaves KVM_RUN and stops.
    fn stop_all(&self) {
        self.stop.store(true, Ordering::Release);
        if let Ok(t) = self.tids.lock() {
            crate::signals::kick(&t);
        }
    }
}

/// A vCPU's stop and registers once its loop ended with `end`.
fn stop_of(
    vcpu: &mut VcpuFd,
    run_size: usize,
    end: End,
    timeout: Option<Duration>,
    trace: &mut Option<Tracer>,
) -> Result<(Stop, Regs), VmError> {
    let target = format!("vcpu {}", vcpu.as_raw_fd());
    if trace.is_some() && matches!(end, End::Halt | End::Fault(_)) {
        lane::trace_exit(vcpu, run_size, trace, true);
    }
    let regs = Regs::from(&vcpu.get_regs().map_err(VmError::kvm("KVM_GET_REGS"))?);
    if let Some(t) = trace {
        t.call(call(
            target.clone(),
            "KVM_GET_REGS",
            String::new(),
            format!("0, RIP {:#x} RAX {:#x}", regs.rip, regs.rax),
            "read the registers the guest stopped with",
        ));
    }
    let stop = match end {
        End::Halt => Stop::Halted,
        End::Timeout => Stop::TimedOut {
            after_ms: timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
        },
        End::Interrupt => Stop::Interrupted,
        End::Stopped => Stop::Stopped,
        End::Fault(mut fault) => {
            let run = vcpu.get_kvm_run();
            match &mut fault {
                Fault::InternalError { suberror } => {
                    // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so
                    // `internal` is the union member the kernel filled.
                    *suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                }
                Fault::Unhandled { exit_reason } => *exit_reason = run.exit_reason,
                _ => {}
            }
            let s = vcpu.get_sregs().map_err(VmError::kvm("KVM_GET_SREGS"))?;
            if let Some(t) = trace {
                t.call(call(
                    target,
                    "KVM_GET_SREGS",
                    String::new(),
                    format!(
                        "0, CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
                        s.cr0, s.cr3, s.cr4, s.efer
                    ),
                    "control registers for the fault report",
                ));
            }
            Stop::Faulted {
                fault,
                cr0: s.cr0,
                cr3: s.cr3,
                cr4: s.cr4,
                efer: s.efer,
            }
        }
    };
    Ok((stop, regs))
}
