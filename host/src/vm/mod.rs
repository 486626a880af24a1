//! One VM with one vCPU: creation, memory, long-mode set-up, image loading
//! and the run loop (the hot path: KVM_RUN -> copy -> count -> dispatch ->
//! answer -> KVM_RUN, with no allocation and no extra vCPU ioctl unless a
//! hypercall needs one).

pub mod paging;

use crate::exit::{Dir, ExitReason, ExitStats};
use crate::hypercall::{self, Env, HostError, Io};
use crate::loader::Plan;
use crate::translate::Paging;
use hypercall_abi::{Hypercall, layout, note};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
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
    #[error("{mode:?} mode maps at most {max} of guest memory", mode = .0, max = crate::size::human(*.1))]
    ModeMem(CpuMode, u64),
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
        Ok(())
    }
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            mem_size: 2 << 20,
            kvm_path: PathBuf::from("/dev/kvm"),
            mode: CpuMode::Long,
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

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How it ended.
    pub stop: Stop,
    /// Registers at the end.
    pub regs: Regs,
    /// Exit counts.
    pub stats: ExitStats,
    /// The 42 check, when the guest asked for it.
    pub check: Option<Check42>,
    /// Bad hypercall arguments reported.
    pub guest_errors: u64,
    /// Wall time in the run loop.
    pub elapsed: Duration,
}

/// A VM with one vCPU and its memory.
pub struct Vm {
    // Field order is drop order: vCPU, then VM, then memory, then /dev/kvm.
    vcpu: VcpuFd,
    vm: VmFd,
    mem: GuestMemoryMmap,
    _kvm: Kvm,
    mem_size: u64,
    mode: CpuMode,
    flags: u32,
    stats: ExitStats,
    guest_errors: u64,
    timeout: Option<Duration>,
    signals_armed: bool,
    seccomp: bool,
    jailed: bool,
}

/// How the run loop ended.
enum End {
    Halt,
    Fault(Fault),
    Timeout,
    Interrupt,
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

impl Vm {
    /// Opens KVM, creates the VM, its memory and one vCPU, and puts the vCPU
    /// in 64-bit long mode with the host's GDT and identity page tables.
    pub fn new(cfg: &VmConfig) -> Result<Vm, VmError> {
        cfg.validate()?;
        let size = cfg.mem_size;
        let kvm = open_kvm(&cfg.kvm_path)?;
        let vm = loop {
            match kvm.create_vm() {
                Err(e) if e.errno() == libc::EINTR => continue,
                r => break r.map_err(VmError::kvm("KVM_CREATE_VM"))?,
            }
        };
        vm.set_tss_address(TSS_ADDR as usize)
            .map_err(VmError::kvm("KVM_SET_TSS_ADDR"))?;

        // vm-memory maps anonymous memory MAP_PRIVATE | MAP_NORESERVE.
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)])
            .map_err(|e| VmError::Alloc(size, e.to_string()))?;
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|e| VmError::Alloc(size, e.to_string()))?;
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
        let vcpu = vm.create_vcpu(0).map_err(VmError::kvm("KVM_CREATE_VCPU"))?;

        let this = Vm {
            vcpu,
            vm,
            mem,
            _kvm: kvm,
            mem_size: size,
            mode: cfg.mode,
            flags: 0,
            stats: ExitStats::default(),
            guest_errors: 0,
            timeout: None,
            signals_armed: false,
            seccomp: false,
            jailed: false,
        };
        this.setup_mode()?;
        Ok(this)
    }

    fn setup_mode(&self) -> Result<(), VmError> {
        let mut s: kvm_sregs = self
            .vcpu
            .get_sregs()
            .map_err(VmError::kvm("KVM_GET_SREGS"))?;
        if self.mode == CpuMode::Real {
            // The reset state has CS base 0xffff0000: start at segment 0.
            for seg in [
                &mut s.cs, &mut s.ds, &mut s.es, &mut s.fs, &mut s.gs, &mut s.ss,
            ] {
                seg.selector = 0;
                seg.base = 0;
            }
            return self
                .vcpu
                .set_sregs(&s)
                .map_err(VmError::kvm("KVM_SET_SREGS"));
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
        self.vcpu
            .set_sregs(&s)
            .map_err(VmError::kvm("KVM_SET_SREGS"))
    }

    /// Copies a checked plan's segments into guest memory (bss is zero: the
    /// memory is freshly mapped) and points the vCPU at its entry with RSP =
    /// `layout::STACK_TOP`.
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
        let regs = kvm_regs {
            rip: plan.entry,
            rsp: match self.mode {
                CpuMode::Real => layout::REAL_STACK_TOP,
                _ => layout::STACK_TOP,
            },
            rflags: 0x2,
            ..Default::default()
        };
        self.vcpu
            .set_regs(&regs)
            .map_err(VmError::kvm("KVM_SET_REGS"))
    }

    /// Asks for the 42 check at HLT (flat images have no note to ask for it).
    pub fn set_check_42(&mut self, on: bool) {
        if on {
            self.flags |= note::FLAG_CHECK_42;
        } else {
            self.flags &= !note::FLAG_CHECK_42;
        }
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

    /// The vCPU.
    pub fn vcpu(&self) -> &VcpuFd {
        &self.vcpu
    }

    /// The VM.
    pub fn vm_fd(&self) -> &VmFd {
        &self.vm
    }

    /// Runs the vCPU until it halts or faults. Guest output goes to `out`,
    /// the host's one-line diagnostics to `diag`.
    pub fn run(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<RunOutcome, VmError> {
        if !self.signals_armed {
            crate::signals::arm_vcpu(&self.vcpu)?;
            self.signals_armed = true;
        }
        let start = Instant::now();
        let mut timer = None;
        if let Some(t) = self.timeout {
            let tm = crate::signals::Timer::for_this_thread()?;
            tm.arm(t)?;
            timer = Some(tm);
        }
        let deadline = self.timeout.map(|t| start + t);
        if self.seccomp && !self.jailed {
            // Everything the loop needs exists now; from here on the thread
            // may only run the guest, read registers, write output and exit.
            crate::jail::apply()?;
            self.jailed = true;
        }
        let end = loop {
            let exit = match self.vcpu.run() {
                Ok(exit) => exit,
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    self.stats.record(ExitReason::Intr);
                    crate::signals::consume_kicks();
                    if crate::signals::interrupted() {
                        break End::Interrupt;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break End::Timeout;
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
                    let seen = self.stats.record_io(Dir::In, port);
                    let io = Io {
                        dir: Dir::In,
                        size: data.len(),
                        value: 0,
                    };
                    let v = match Hypercall::from_port(port) {
                        Some(hc) => {
                            let mut env = Env {
                                mem: &self.mem,
                                stats: &self.stats,
                                out: &mut *out,
                                diag: &mut *diag,
                                guest_errors: &mut self.guest_errors,
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
                VcpuExit::MmioRead(addr, data) => {
                    if self.stats.record_mmio(Dir::In, addr) == 1 {
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
                    if self.stats.record_mmio(Dir::Out, addr) == 1 {
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
                    self.stats.record(ExitReason::Hlt);
                    break End::Halt;
                }
                VcpuExit::Shutdown => {
                    self.stats.record(ExitReason::Shutdown);
                    break End::Fault(Fault::TripleFault);
                }
                VcpuExit::FailEntry(reason, cpu) => {
                    self.stats.record(ExitReason::FailEntry);
                    break End::Fault(Fault::FailEntry { reason, cpu });
                }
                VcpuExit::InternalError => {
                    self.stats.record(ExitReason::InternalError);
                    break End::Fault(Fault::InternalError { suberror: 0 });
                }
                VcpuExit::MemoryFault { gpa, .. } => {
                    self.stats.record(ExitReason::Other);
                    break End::Fault(Fault::MemoryFault { gpa });
                }
                _ => {
                    self.stats.record(ExitReason::Other);
                    break End::Fault(Fault::Unhandled { exit_reason: 0 });
                }
            };
            if let Some((port, io)) = pending {
                let seen = self.stats.record_io(Dir::Out, port);
                let mut env = Env {
                    mem: &self.mem,
                    stats: &self.stats,
                    out: &mut *out,
                    diag: &mut *diag,
                    guest_errors: &mut self.guest_errors,
                };
                match Hypercall::from_port(port) {
                    Some(hc) => {
                        let vcpu = &self.vcpu;
                        hypercall::dispatch(hc, io, &mut env, || {
                            vcpu.get_sregs()
                                .map(|s| Paging::from_sregs(&s))
                                .map_err(|source| HostError::Kvm {
                                    what: "KVM_GET_SREGS",
                                    source,
                                })
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
        };
        let elapsed = start.elapsed();
        drop(timer);
        out.flush().map_err(HostError::from)?;
        self.finish(end, elapsed)
    }

    fn finish(&mut self, end: End, elapsed: Duration) -> Result<RunOutcome, VmError> {
        let regs = Regs::from(&self.vcpu.get_regs().map_err(VmError::kvm("KVM_GET_REGS"))?);
        let stop = match end {
            End::Halt => Stop::Halted,
            End::Timeout => Stop::TimedOut {
                after_ms: self.timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
            },
            End::Interrupt => Stop::Interrupted,
            End::Fault(mut fault) => {
                let run = self.vcpu.get_kvm_run();
                match &mut fault {
                    Fault::InternalError { suberror } => {
                        // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so
                        // `internal` is the union member the kernel filled.
                        *suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                    }
                    Fault::Unhandled { exit_reason } => *exit_reason = run.exit_reason,
                    _ => {}
                }
                let s = self
                    .vcpu
                    .get_sregs()
                    .map_err(VmError::kvm("KVM_GET_SREGS"))?;
                Stop::Faulted {
                    fault,
                    cr0: s.cr0,
                    cr3: s.cr3,
                    cr4: s.cr4,
                    efer: s.efer,
                }
            }
        };
        let check = (stop == Stop::Halted && self.flags & note::FLAG_CHECK_42 != 0).then(|| {
            let memory: u32 = self
                .mem
                .read_obj(GuestAddress(layout::CHECK_ADDR))
                .unwrap_or(0);
            let want = layout::CHECK_VALUE;
            Check42 {
                memory,
                rax: regs.rax,
                pass: u64::from(memory) == want && regs.rax == want,
            }
        });
        Ok(RunOutcome {
            stop,
            regs,
            stats: self.stats.clone(),
            check,
            guest_errors: self.guest_errors,
            elapsed,
        })
    }
}
