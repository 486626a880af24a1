//! `host run`: resolve a guest, check and load it, run it, report.
//! The CLI and the integration tests both go through here.

use crate::config::{RunConfig, VmConfig};
use crate::guests::{self, GuestError};
use crate::loader::{self, LoadError, Plan};
use crate::vcpu::Stop;
use crate::vm::{Check42, RunOutcome, Vm, VmError};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// Process exit codes of `host run` (documented in the README).
pub mod code {
    /// The guest halted (and passed the 42 check when it asked for one).
    pub const OK: i32 = 0;
    /// The host could not set up or run the VM (KVM, file, ELF, ABI, memory).
    pub const HOST_ERROR: i32 = 1;
    /// Bad command-line usage (clap's code).
    pub const USAGE: i32 = 2;
    /// The guest crashed: triple fault, failed entry, internal error.
    pub const GUEST_FAULT: i32 = 3;
    /// The guest halted but failed the 42 check.
    pub const CHECK_FAILED: i32 = 4;
    /// `--timeout` expired with the guest still running.
    pub const TIMEOUT: i32 = 5;
    /// Stopped by SIGINT/SIGTERM (Ctrl-C): 128 + SIGINT, as shells do.
    pub const INTERRUPTED: i32 = 130;
    /// The vCPU thread made a system call the seccomp filter blocks.
    pub const SECCOMP: i32 = crate::seccomp::SECCOMP_EXIT;
}

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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            guest: "hello".into(),
            vm: VmConfig::default(),
            run: RunConfig::default(),
            flat: None,
            trace_file: None,
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
}

/// A guest ready to run.
pub struct Prepared {
    /// Display name (the guest name or the path).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The checked plan.
    pub plan: Plan,
    /// The VM, loaded.
    pub vm: Vm,
}

/// Resolves a guest name (or path) and reads the file. Errors name the
/// guest as the user gave it, not the artifact path.
pub fn read_guest(guest: &str) -> Result<(PathBuf, Vec<u8>), RunError> {
    let path = guests::resolve(guest)?;
    let bytes = std::fs::read(&path).map_err(|source| RunError::Read {
        path: guest.into(),
        source,
    })?;
    Ok((path, bytes))
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

/// Resolves, reads, checks and loads a guest into a new VM.
pub fn prepare(opts: &RunOptions) -> Result<Prepared, RunError> {
    opts.vm.validate().map_err(VmError::from)?;
    let vcpus = opts.vm.vcpus as usize;
    if opts.run.polling.is_some_and(|d| d.is_zero()) {
        return Err(RunError::Usage("--poll-interval must be above zero".into()));
    }
    let (path, bytes) = read_guest(&opts.guest)?;
    let plan = plan_guest(&opts.guest, &bytes, opts.flat, &opts.vm)?;
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
    let mut vm = Vm::new(&opts.vm, opts.run.clone())?;
    if let Some(s) = sink {
        vm.trace_to(s)?;
    }
    vm.load(&plan, &bytes)?;
    Ok(Prepared {
        name: opts.guest.clone(),
        path,
        plan,
        vm,
    })
}

/// The result of `host run`.
#[derive(Debug, Clone)]
pub struct Report {
    /// Guest name or path.
    pub name: String,
    /// What the run produced.
    pub outcome: RunOutcome,
}

/// Prepares and runs a guest.
pub fn run(
    opts: &RunOptions,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<Report, RunError> {
    let mut p = prepare(opts)?;
    let outcome = p.vm.run(out, diag)?;
    Ok(Report {
        name: p.name,
        outcome,
    })
}

fn check_line(c: &Check42) -> String {
    format!(
        "check 42: {} (memory[{:#x}] = {}, RAX = {})",
        if c.pass { "pass" } else { "FAIL" },
        hypercall_abi::layout::CHECK_ADDR,
        c.memory,
        c.rax
    )
}

impl Report {
    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> i32 {
        match (&self.outcome.stop, &self.outcome.check) {
            (Stop::Faulted { .. } | Stop::Cancelled, _) => code::GUEST_FAULT,
            (Stop::TimedOut { .. }, _) => code::TIMEOUT,
            (Stop::Interrupted, _) => code::INTERRUPTED,
            (Stop::Halted, Some(c)) if !c.pass => code::CHECK_FAILED,
            (Stop::Halted, _) => code::OK,
        }
    }

    /// The human summary: outcome line, check, register dump on a fault,
    /// then the exit table.
    pub fn human(&self) -> String {
        let o = &self.outcome;
        let smp = o.vcpus.len() > 1;
        let who = if smp {
            format!("{} (vcpu {})", self.name, o.vcpu)
        } else {
            self.name.clone()
        };
        let mut s = match &o.stop {
            Stop::Halted if smp => format!(
                "host: {} halted: all {} vCPUs, {} exits in {:.3} ms\n",
                self.name,
                o.vcpus.len(),
                o.stats.total(),
                o.elapsed.as_secs_f64() * 1e3
            ),
            Stop::Halted => format!(
                "host: {} halted after {} exits in {:.3} ms\n",
                self.name,
                o.stats.total(),
                o.elapsed.as_secs_f64() * 1e3
            ),
            Stop::TimedOut { after_ms } => format!(
                "host: {} stopped: timeout after {:.3} s, guest still running at RIP {:#x} ({} exits)\n",
                who,
                *after_ms as f64 / 1e3,
                o.regs.rip,
                o.stats.total()
            ),
            Stop::Interrupted => format!(
                "host: {} stopped: interrupted (SIGINT/SIGTERM) at RIP {:#x} after {:.3} s ({} exits)\n",
                who,
                o.regs.rip,
                o.elapsed.as_secs_f64(),
                o.stats.total()
            ),
            Stop::Faulted {
                fault,
                cr0,
                cr3,
                cr4,
                efer,
            } => format!(
                "host: {} stopped: {fault} at RIP {:#x}\n{}\n  cr0={cr0:#x} cr3={cr3:#x} cr4={cr4:#x} efer={efer:#x}\n",
                who,
                o.regs.rip,
                o.regs.dump()
            ),
            Stop::Cancelled => format!("host: {who} stopped: another vCPU ended the VM\n"),
        };
        if let Some(c) = &o.check {
            s.push_str(&format!("host: {}\n", check_line(c)));
        }
        let d = &o.device;
        if d.used() {
            s.push_str(&format!(
                "simvirtio: {} bytes from TX ({} notifies, {} polls), {} bytes to RX, {} device errors\n",
                d.tx_bytes, d.notifies, d.polls, d.rx_bytes, d.errors
            ));
        }
        if smp {
            for v in &o.vcpus {
                let end = match &v.stop {
                    Stop::Halted => "halted".to_string(),
                    Stop::TimedOut { .. } => "timed out".to_string(),
                    Stop::Interrupted => "interrupted".to_string(),
                    Stop::Cancelled => "stopped by another vCPU".to_string(),
                    Stop::Faulted { fault, .. } => fault.to_string(),
                };
                s.push_str(&format!(
                    "vcpu {}: {end} at RIP {:#x}, {} exits\n",
                    v.id,
                    v.regs.rip,
                    v.stats.total()
                ));
                for line in v.stats.table().lines().skip(1) {
                    s.push_str(&format!("  {line}\n"));
                }
            }
            s.push_str("all vCPUs:\n");
        }
        s.push_str(&o.stats.table());
        s
    }

    /// The same as JSON, with the guest's output as a string.
    pub fn json(&self, output: &[u8]) -> serde_json::Value {
        let o = &self.outcome;
        json!({
            "guest": self.name,
            "output": String::from_utf8_lossy(output),
            "stop": o.stop,
            "exit_code": self.exit_code(),
            "check_42": o.check,
            "regs": o.regs,
            "guest_errors": o.guest_errors,
            "elapsed_us": o.elapsed.as_secs_f64() * 1e6,
            "exits": {
                "total": o.stats.total(),
                "timed": o.stats.timed(),
                "by_reason": o.stats.reasons(),
                "io": o.stats.ports(),
                "mmio": o.stats.mmio(),
            },
            "simvirtio": o.device,
            "vcpu": o.vcpu,
            "vcpus": o.vcpus.iter().map(|v| json!({
                "id": v.id,
                "stop": v.stop,
                "regs": v.regs,
                "exits": {
                    "total": v.stats.total(),
                    "by_reason": v.stats.reasons(),
                    "io": v.stats.ports(),
                    "mmio": v.stats.mmio(),
                },
            })).collect::<Vec<_>>(),
        })
    }
}
