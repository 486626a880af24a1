//! Setting the matrix's VMs up: each guest read and planned once, then one
//! VM per `--vm`.

use super::options::{MatrixError, MatrixOptions};
use super::report::VmState;
use crate::config::{RunConfig, VmConfig};
use crate::loader::LoadError;
use crate::run::{self, RunError};
use crate::stats::ExitStats;
use crate::vm::Vm;
use crate::x86::CpuMode;
use hypercall_abi::layout;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsRawFd;

/// One VM of the matrix and what the scheduler keeps about it.
pub(super) struct Guest {
    pub name: String,
    pub vm: Vm,
    pub vmfd: i32,
    pub weight: u32,
    pub size: u64,
    pub quanta: u64,
    pub run_ns: u64,
    pub stats: ExitStats,
    pub state: VmState,
}

/// The most VMs one `--vm NAME:count=N` makes.
pub const MAX_COUNT: usize = 10_000;

/// `--vm` entries with `:count=N` suffixes: each entry's name and how many
/// VMs run it.
pub fn counts(vms: &[String]) -> Result<Vec<(String, usize)>, MatrixError> {
    vms.iter()
        .map(|v| match split_count(v) {
            None => Ok((v.clone(), 1)),
            Some((name, n)) => match n.parse::<usize>() {
                Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok((name.to_string(), n)),
                _ => Err(MatrixError::Weights(format!(
                    "--vm {}: count={} is not a number of VMs from 1 to {MAX_COUNT}",
                    crate::diag::escape(name),
                    crate::diag::escape(n)
                ))),
            },
        })
        .collect()
}

/// A `--vm` entry's name and the N of its `:count=N`, if it has one.
fn split_count(entry: &str) -> Option<(&str, &str)> {
    entry.rsplit_once(":count=")
}

/// The file or guest name of a `--vm` entry (without `:count=N`).
pub fn vm_name(entry: &str) -> &str {
    split_count(entry).map_or(entry, |(name, _)| name)
}

/// A snapshot opened and checked once, for every VM cloned from it.
struct Snap {
    opened: crate::snapshot::Opened,
    cfg: VmConfig,
}

/// A VM cloned from the snapshot at `path` (`--vm FILE.snap`): the file
/// is read and checked at the first VM only, and every clone maps its pages
/// MAP_PRIVATE, so clones share the pages none of them wrote.
fn clone_of(
    path: &str,
    cfg: &VmConfig,
    snaps: &mut HashMap<String, Snap>,
) -> Result<(Vm, u64), MatrixError> {
    let s = match snaps.entry(path.to_string()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let opened = crate::snapshot::open_restorable(std::path::Path::new(path))
                .map_err(|e| MatrixError::Vm(e.into()))?;
            if opened.snap.vcpus.len() > 1 {
                return Err(MatrixError::Weights(format!(
                    "--vm {}: a snapshot of {} vCPUs; the matrix runs one vCPU per VM (restore it with host run --restore)",
                    crate::diag::escape(path),
                    opened.snap.vcpus.len()
                )));
            }
            let cfg = opened.snap.vm_config(cfg);
            e.insert(Snap { opened, cfg })
        }
    };
    let mut vm = Vm::for_restore(
        &s.cfg,
        RunConfig::default(),
        (&s.opened.file, s.opened.pages_off),
    )?;
    vm.restore_snapshot(&s.opened, &crate::diag::escape(path), false)?;
    Ok((vm, s.opened.snap.pages() * crate::snapshot::format::PAGE))
}

/// A guest read and planned once, for every VM that runs it.
struct Image {
    bytes: Vec<u8>,
    plan: crate::loader::Plan,
    /// Bytes loaded (the assignment's "Loaded Program with size").
    size: u64,
    cfg: VmConfig,
}

fn image(name: &str, cfg: &VmConfig) -> Result<Image, MatrixError> {
    let (_, bytes) = run::read_guest(name, hypercall_abi::layout::MAX_MEM, false)?;
    // the assignment's guests are flat binaries; ours are ELFs with real-mode code
    let flat = (!bytes.starts_with(b"\x7fELF")).then_some(layout::REAL_LOAD);
    let plan = run::plan_guest(name, &bytes, flat, cfg).map_err(|e| match e {
        RunError::Load {
            source: LoadError::NoModeSection(_),
            ..
        } => MatrixError::NotRealMode(crate::diag::escape(name).into_owned()),
        e => e.into(),
    })?;
    let size = plan.segments.iter().map(|s| s.file.len() as u64).sum();
    // the supported CPUID only for a guest that asks (as `host run` does)
    let cfg = VmConfig {
        cpuid: flat.is_some() || plan.flags & hypercall_abi::note::FLAG_CPUID != 0,
        ..cfg.clone()
    };
    Ok(Image {
        bytes,
        plan,
        size,
        cfg,
    })
}

/// A VM running `name`: its image is read and planned at the first VM of
/// that name only (1000 VMs of one guest read its file once).
fn load(
    name: &str,
    cfg: &VmConfig,
    images: &mut HashMap<String, Image>,
) -> Result<(Vm, u64), MatrixError> {
    let img = match images.entry(name.to_string()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(image(name, cfg)?),
    };
    let mut vm = Vm::new(&img.cfg, RunConfig::default())?;
    vm.load(&img.plan, &img.bytes)?;
    Ok((vm, img.size))
}

/// One VM per `opts.vms` entry, with its weight; the "Loaded Program"
/// event lines go to `out`.
pub(super) fn set_up(
    opts: &MatrixOptions,
    names: &[String],
    weights: &[u32],
    out: &mut dyn Write,
) -> Result<Vec<Guest>, MatrixError> {
    let cfg = VmConfig {
        mem_size: opts.mem_size,
        kvm_path: opts.kvm_path.clone(),
        mode: CpuMode::Real,
        trace: None,
        vcpus: 1,
        // `image` keeps it for the guests that ask
        cpuid: true,
        // the matrix's guests are not interrupted
        irqchip: Some(crate::config::IrqChip::None),
    };
    let mut gs = Vec::with_capacity(names.len());
    let mut images = HashMap::new();
    let mut snaps = HashMap::new();
    for (name, &weight) in names.iter().zip(weights) {
        let (vm, size) = match crate::snapshot::is_snapshot(std::path::Path::new(name)) {
            true => clone_of(name, &cfg, &mut snaps)?,
            false => load(name, &cfg, &mut images)?,
        };
        let vmfd = vm.vm_object().fd().as_raw_fd();
        if opts.events {
            writeln!(out, "VMFD: {vmfd}, Loaded Program with size: {size}")?;
        }
        gs.push(Guest {
            name: name.clone(),
            vm,
            vmfd,
            weight,
            size,
            quanta: 0,
            run_ns: 0,
            stats: ExitStats::default(),
            state: VmState::Running,
        });
    }
    Ok(gs)
}

/// This process's resident memory now (VmRSS of /proc/self/status), KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
