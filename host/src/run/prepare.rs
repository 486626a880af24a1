//! Resolving, reading, checking and loading a guest into a VM.

pub use super::prepared::Prepared;
use crate::config::{RunConfig, VmConfig};
use crate::guests::{self, GuestError};
use crate::loader::{self, LoadError, Plan};
use crate::vm::{Vm, VmError};
use std::io::Write;
use std::path::PathBuf;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A built guest's name or a file path.
    pub guest: String,
    /// VM configuration.
    pub vm: VmConfig,
    /// How it runs (timeout, seccomp, pinning, polling, profiling, 42
    /// check).
    pub run: RunConfig,
    /// Load the file as a flat image at this address (entry there too).
    pub flat: Option<u64>,
    /// With `vm.trace`: write the trace here instead of standard error.
    pub trace_file: Option<PathBuf>,
    /// `--gdb ADDR`: wait for gdb there and run under it (`super::debug`).
    pub gdb: Option<String>,
    /// The guest's arguments (`host run GUEST -- ARGS`), written to
    /// `hypercall_abi::args::AREA` before the first instruction.
    pub args: Vec<String>,
    /// `--snapshot FILE`: where the run stops (`run.snapshot_at`), save it
    /// here.
    pub snapshot: Option<PathBuf>,
    /// `--restore FILE`: continue this snapshot instead of starting.
    pub restore: Option<PathBuf>,
    /// `--trace-out FILE`: write the run as Chrome trace-event JSON
    /// (`run.timeline` keeps what it needs).
    pub trace_out: Option<PathBuf>,
    /// `--html FILE`: keep what the page draws (the layout as set up, the
    /// timeline, the KVM calls); the CLI writes the page.
    pub html: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            guest: "hello".into(),
            vm: VmConfig::default(),
            run: RunConfig::default(),
            flat: None,
            trace_file: None,
            gdb: None,
            args: Vec::new(),
            snapshot: None,
            restore: None,
            trace_out: None,
            html: false,
        }
    }
}

/// Why a guest could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Unknown guest name.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command-line value that does not fit this VM.
    #[error("{0}")]
    Usage(String),
    /// The guest path is not a regular file.
    #[error(
        "{path} is {kind}, not a regular file: give an ELF file, or a raw binary with --flat ADDR"
    )]
    NotAFile {
        /// The path as given.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// The file is larger than any guest memory (or, flat, than this one).
    #[error("{path} is {size}, more than the {max} it could be loaded into", size = crate::size::human(*size), max = crate::size::human(*max))]
    TooLarge {
        /// The path as given.
        path: String,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// Not an ELF, and no `--flat` address.
    #[error(
        "{path} is not an ELF file (it does not start with 0x7f 'E' 'L' 'F'): for a raw binary, give the address it is linked to run at with --flat ADDR (docs/cpu-modes.md says where each mode loads)"
    )]
    NotElf {
        /// The path as given.
        path: String,
    },
    /// An output file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The image was refused.
    #[error("{path}: {source}")]
    Load {
        /// The file.
        path: String,
        /// Why.
        source: LoadError,
    },
    /// KVM or the run loop failed.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// `--gdb` could not wait for or serve gdb.
    #[error(transparent)]
    Gdb(#[from] crate::gdb::GdbError),
}

/// Why `--record` refuses the in-kernel controllers (asked for with
/// `--irqchip kernel`, or by the guest's note).
pub const KERNEL_CHIP: &str = "the in-kernel controllers and timers interrupt the guest at moments a replay cannot meet (--irqchip kernel, or the guest's note asks for it)";

/// The one-line refusal of `--record` for `why`.
pub fn refuse_record(why: &str) -> RunError {
    RunError::Usage(format!("--record cannot replay this run: {why}"))
}

/// How reports name the guest: as the user gave it, except that a guest
/// in cargo's guest target folder (what `cargo run -p guest-kernel --bin
/// NAME` hands the host) is named by its file name; control characters
/// escaped (a file name is the file system's text).
pub fn display_name(guest: &str) -> String {
    let name = match guest.rsplit_once("/x86_64-unknown-none/") {
        Some((_, rest)) => rest.rsplit('/').next().unwrap_or(rest),
        None => guest,
    };
    crate::diag::escape(name).into_owned()
}

/// Resolves a guest name (or path) and reads the file: only a regular
/// file of at most `max_len` bytes, and, with `require_elf`, only once its
/// first four bytes say ELF (so a FIFO never blocks, /dev/zero is never
/// read, and a huge raw file is refused before it is read). Errors name
/// the guest as the user gave it, not the artifact path.
pub fn read_guest(
    guest: &str,
    max_len: u64,
    require_elf: bool,
) -> Result<(PathBuf, Vec<u8>), RunError> {
    read_guest_file(guest, max_len, require_elf).map(|(path, bytes, _)| (path, bytes))
}

/// [`read_guest`], and the open file (an ELF's DWARF is mapped from it for
/// crash reports: `loader::FileMap`).
pub(super) fn read_guest_file(
    guest: &str,
    max_len: u64,
    require_elf: bool,
) -> Result<(PathBuf, Vec<u8>, std::fs::File), RunError> {
    use std::io::Read as _;
    let path = guests::resolve(guest)?;
    let read_err = |source| RunError::Read {
        path: guest.into(),
        source,
    };
    let meta = std::fs::metadata(&path).map_err(read_err)?;
    if !meta.is_file() {
        use std::os::unix::fs::FileTypeExt as _;
        let t = meta.file_type();
        let kind = if t.is_dir() {
            "a folder"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(RunError::NotAFile {
            path: guest.into(),
            kind,
        });
    }
    if meta.len() > max_len {
        return Err(RunError::TooLarge {
            path: guest.into(),
            size: meta.len(),
            max: max_len,
        });
    }
    let mut f = std::fs::File::open(&path).map_err(read_err)?;
    let mut bytes = Vec::new();
    std::io::Read::by_ref(&mut f)
        .take(4)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    // (an empty file goes on to the loader, which says it is empty)
    if require_elf && !bytes.is_empty() && !bytes.starts_with(b"\x7fELF") {
        return Err(RunError::NotElf { path: guest.into() });
    }
    if bytes.starts_with(b"\x7fELF") {
        // only the headers and what occupies memory: not the DWARF
        // (loader::read_needed), as long as the file was when measured
        let bytes = crate::loader::read_needed(&f, meta.len()).map_err(read_err)?;
        return Ok((path, bytes, f));
    }
    // the file may have grown since it was measured: never read past the cap
    std::io::Read::by_ref(&mut f)
        .take(max_len - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    Ok((path, bytes, f))
}

/// Checks an image for `vm`: flat at `flat`, else the ELF's code for the
/// VM's mode (its mode section, or its own segments in long mode).
pub fn plan_guest(
    guest: &str,
    bytes: &[u8],
    flat: Option<u64>,
    vm: &VmConfig,
) -> Result<Plan, RunError> {
    let mem = vm.mem_size;
    let area = vm.mode.image_area(mem);
    match (flat, vm.mode.section()) {
        (Some(addr), _) => loader::plan_flat_in(bytes.len(), addr, &area, mem),
        (None, Some(section)) => loader::plan_section(bytes, section, &area, mem),
        (None, None) => loader::plan_elf(bytes, mem),
    }
    .map_err(|source| RunError::Load {
        path: guest.into(),
        source,
    })
}

/// The arguments area for `args` (docs/abi.md, "Arguments"), or one line
/// saying they do not fit.
pub(super) fn encode_args(args: &[String]) -> Result<Vec<u8>, RunError> {
    if args.is_empty() {
        // nothing to write: the area is zero in fresh memory (argc 0)
        return Ok(Vec::new());
    }
    let mut area = vec![0u8; hypercall_abi::args::CAPACITY];
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let n = hypercall_abi::args::encode(&strs, &mut area).map_err(|e| {
        RunError::Usage(format!(
            "the guest's {} argument{} take{} {} bytes in guest memory, more than the {} the ABI has room for (docs/abi.md, \"Arguments\")",
            args.len(),
            if args.len() == 1 { "" } else { "s" },
            if args.len() == 1 { "s" } else { "" },
            e.needed,
            hypercall_abi::args::CAPACITY
        ))
    })?;
    area.truncate(n);
    Ok(area)
}

/// Resolves, reads, checks and loads a guest into a new VM.
pub fn prepare(opts: &RunOptions) -> Result<Prepared, RunError> {
    opts.vm.validate().map_err(VmError::from)?;
    let vcpus = opts.vm.vcpus as usize;
    if let Some(d) = opts.run.polling.filter(|&d| d < crate::config::MIN_PERIOD) {
        return Err(RunError::Usage(format!(
            "--poll-interval {d:?} is shorter than the {:?} this host can serve: the polling timer would leave the guest no time to run",
            crate::config::MIN_PERIOD
        )));
    }
    let max = match opts.flat {
        Some(_) => opts.vm.mem_size,
        None => hypercall_abi::layout::MAX_MEM,
    };
    let area = encode_args(&opts.args)?;
    let (path, bytes, file) = read_guest_file(&opts.guest, max, opts.flat.is_none())?;
    let plan = plan_guest(&opts.guest, &bytes, opts.flat, &opts.vm)?;
    if !opts.args.is_empty() {
        let range = hypercall_abi::args::AREA..hypercall_abi::args::AREA_END;
        if let Some(s) = plan
            .segments
            .iter()
            .find(|s| s.gpa < range.end && range.start < s.range().end)
        {
            return Err(RunError::Usage(format!(
                "the image's segment at {:#x} covers the arguments area ({:#x}..{:#x}): a guest that takes arguments leaves it free (docs/abi.md, \"Arguments\")",
                s.gpa, range.start, range.end
            )));
        }
    }
    if vcpus > 1 && plan.flags & hypercall_abi::note::FLAG_SMP == 0 {
        return Err(RunError::Usage(format!(
            "{} does not run on several vCPUs: only a guest whose main is declared with guest_rt::smp_entry! (ABI note flag SMP) may get --vcpus {vcpus}",
            opts.guest
        )));
    }
    // The trace file is opened before the VM so that a bad path costs nothing.
    let sink: Option<Box<dyn Write + Send>> = match (&opts.vm.trace, &opts.trace_file) {
        (Some(_), Some(f)) => Some(Box::new(std::fs::File::create(f).map_err(|source| {
            RunError::Create {
                path: f.display().to_string(),
                source,
            }
        })?)),
        (Some(_), None) => Some(Box::new(std::io::stderr())),
        (None, _) => None,
    };
    let sink_name = match &opts.trace_file {
        Some(f) => f.display().to_string(),
        None => "standard error".to_string(),
    };
    // the interrupt controller: --irqchip, else what the note asks for
    let irqchip = opts
        .vm
        .irqchip
        .unwrap_or(crate::config::IrqChip::from_note(plan.flags));
    if opts.run.record.is_some() && irqchip == crate::config::IrqChip::Kernel {
        return Err(refuse_record(KERNEL_CHIP));
    }
    if opts.run.inject.is_some() && irqchip == crate::config::IrqChip::None {
        return Err(RunError::Usage(format!(
            "--inject-every needs an interrupt controller, and {} asks for none: add --irqchip user (KVM_INTERRUPT) or --irqchip kernel (in-kernel PIC/APIC, through an irqfd)",
            display_name(&opts.guest)
        )));
    }
    // the supported CPUID only for a guest that declares it needs it, a
    // flat image (which cannot say) or the in-kernel controller: KVM
    // derives the local APIC's timer modes from CPUID leaf 1 (without it
    // the LVT timer keeps neither the periodic nor the TSC-deadline bit)
    if opts.run.ioeventfd && opts.vm.mode != crate::x86::CpuMode::Long {
        return Err(RunError::Usage(format!(
            "--ioeventfd serves SIMVIRTIO, a long-mode device: not in {} mode",
            opts.vm.mode
        )));
    }
    if opts.run.ioeventfd
        && opts
            .vm
            .trace
            .is_some_and(|t| t != crate::trace::TraceFormat::Keep)
    {
        return Err(RunError::Usage(
            "--trace-kvm follows one vCPU on the calling thread, and --ioeventfd runs the device on a thread of its own: use one at a time".into(),
        ));
    }
    if let Some(i) = opts.run.inject.filter(|i| i.n < 32)
        && irqchip == crate::config::IrqChip::User
        && opts.vm.mode != crate::x86::CpuMode::Real
    {
        return Err(RunError::Usage(format!(
            "--inject-every ...:{}: vectors 0-31 are the CPU's exceptions in {} mode; an interrupt there would run the exception's handler without the error code it may expect (only real mode's IVT takes device interrupts on them, e.g. the PC's IRQs 0-7 on 8-15)",
            i.n, opts.vm.mode
        )));
    }
    if let Some(i) = opts.run.inject.filter(|i| i.vcpu > 0) {
        if irqchip == crate::config::IrqChip::Kernel {
            return Err(RunError::Usage(format!(
                "--inject-every ...@{}: the in-kernel controller sends IRQ line {} where the guest's PIC or IOAPIC routes it, not to a vCPU the host picks (use --irqchip user to pick one)",
                i.vcpu, i.n
            )));
        }
        if i.vcpu >= opts.vm.vcpus {
            return Err(RunError::Usage(format!(
                "--inject-every ...@{}: the VM has {} vCPU(s), numbered from 0",
                i.vcpu, opts.vm.vcpus
            )));
        }
    }
    let cfg = VmConfig {
        cpuid: opts.vm.cpuid
            && (opts.flat.is_some()
                || plan.flags & hypercall_abi::note::FLAG_CPUID != 0
                || irqchip == crate::config::IrqChip::Kernel),
        irqchip: Some(irqchip),
        ..opts.vm.clone()
    };
    let mut vm = Vm::new(&cfg, opts.run.clone())?;
    if let Some(s) = sink {
        vm.trace_to(s, &sink_name)?;
    }
    vm.load(&plan, &bytes)?;
    if !opts.args.is_empty() {
        vm.write_guest(hypercall_abi::args::AREA, &area)?;
    }
    Ok(Prepared::new(
        display_name(&opts.guest),
        (path, bytes, file),
        plan,
        vm,
        opts.flat.is_none() && opts.vm.mode == crate::x86::CpuMode::Long,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_name_cargo_built_guests_by_file_name_and_escape_the_rest() {
        use super::display_name;
        assert_eq!(display_name("hello"), "hello");
        assert_eq!(
            display_name("/w/target/x86_64-unknown-none/debug/hello"),
            "hello"
        );
        assert_eq!(
            display_name("/w/target/x86_64-unknown-none/debug/deps/guest_rt-0a1b"),
            "guest_rt-0a1b"
        );
        assert_eq!(display_name("./my/guest.elf"), "./my/guest.elf");
        assert_eq!(display_name("./\x1b[2J\nx"), "./\\x1b[2J\\x0ax");
    }
}
