//! `host run --snapshot FILE` and `host run --restore FILE`: the guest's
//! output kept for the snapshot, the file made before the run (the vCPU
//! thread cannot open one once jailed), the save when the run stopped
//! where `--snapshot-at` said, and a VM made from a snapshot instead of
//! from the guest's image (docs/snapshots.md).

use super::prepare::{
    Prepared, RunError, RunOptions, display_name, encode_args, plan_guest, read_guest_file,
};
use crate::config::SnapAt;
use crate::snapshot::{self, SnapError, format::MAX_OUTPUT};
use crate::vcpu::Stop;
use crate::vm::snapshot::{GuestId, RunSoFar};
use crate::vm::{RunOutcome, Vm, VmError};
use crate::wire::{FNV_START, fold, hash};
use std::io::Write;
use std::path::Path;

/// The guest's output passed on, and its last [`MAX_OUTPUT`] bytes kept
/// for a snapshot.
pub struct Keep<'a> {
    inner: &'a mut dyn Write,
    /// What was kept.
    pub kept: Vec<u8>,
}

impl<'a> Keep<'a> {
    /// Where the output goes.
    pub fn inner(&mut self) -> &mut dyn Write {
        &mut *self.inner
    }

    /// Passes output on to `inner`, keeping `before` (a restored run's
    /// output so far) and what follows.
    pub fn new(inner: &'a mut dyn Write, before: Vec<u8>) -> Keep<'a> {
        Keep {
            inner,
            kept: before,
        }
    }
}

impl Write for Keep<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.kept.extend_from_slice(&b[..n]);
        if self.kept.len() > 2 * MAX_OUTPUT {
            self.kept.drain(..self.kept.len() - MAX_OUTPUT);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn snap_err(e: SnapError) -> RunError {
    RunError::Vm(VmError::Snapshot(e))
}

fn escaped(p: &Path) -> String {
    crate::diag::escape(&p.display().to_string()).into_owned()
}

/// What snapshots do not cover yet, refused in one line each.
pub fn check(opts: &RunOptions) -> Result<(), RunError> {
    // the output files are made before the run: none may be an input
    let guest = Path::new(&opts.guest);
    let inputs = [opts.restore.as_deref(), guest.is_file().then_some(guest)];
    let outputs = [
        ("--snapshot", opts.snapshot.as_deref()),
        ("--trace-out", opts.trace_out.as_deref()),
    ];
    for (flag, out) in outputs.iter().filter_map(|(f, o)| Some((f, (*o)?))) {
        let clash = inputs.iter().flatten().any(|i| same_file(out, i))
            || outputs
                .iter()
                .any(|(g, o)| g != flag && o.is_some_and(|o| same_file(out, o)));
        if clash {
            return Err(RunError::Usage(format!(
                "{flag} {} names a file this run reads or also writes: it would be emptied first; give another file",
                escaped(out)
            )));
        }
    }
    if opts.snapshot.is_none() && opts.restore.is_none() {
        return Ok(());
    }
    let no = |what: &str| {
        Err(RunError::Usage(format!(
            "--snapshot and --restore {what} (docs/snapshots.md, \"What is refused\")"
        )))
    };
    if opts.run.ioeventfd {
        return no("need the device served on the vCPU thread: not with --ioeventfd");
    }
    if opts.gdb.is_some() && opts.restore.is_some() {
        return Err(RunError::Usage(
            "--restore and --gdb do not go together: a restored run under gdb is not built yet (docs/snapshots.md, \"What is refused\")".into(),
        ));
    }
    if opts.restore.is_some() && opts.flat.is_some() {
        return no("restore ELF guests: not with --flat");
    }
    Ok(())
}

/// Whether two paths name one file (the same path, or the same device and
/// inode).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a == b
        || matches!(
            (std::fs::metadata(a), std::fs::metadata(b)),
            (Ok(x), Ok(y)) if x.dev() == y.dev() && x.ino() == y.ino()
        )
}

/// The file `--snapshot` writes, made now (before the jail).
pub fn create(path: &Path) -> Result<std::fs::File, RunError> {
    std::fs::File::create(path).map_err(|source| RunError::Create {
        path: escaped(path),
        source,
    })
}

/// Whether a run that ended with `stop` is saved, given `--snapshot-at`.
pub fn due(stop: &Stop, at: Option<SnapAt>) -> bool {
    matches!(
        (stop, at),
        (Stop::Snapshot, _)
            | (
                Stop::Interrupted | Stop::TimedOut { .. },
                Some(SnapAt::Stop)
            )
    )
}

/// A guest image's identity: what it loads (each segment's address, size
/// and bytes), its entry point and its ABI note's flags; not its symbols
/// or DWARF, which only reports read.
fn identity(plan: &crate::loader::Plan, bytes: &[u8]) -> u64 {
    let h = plan.segments.iter().fold(FNV_START, |h, s| {
        let data = bytes.get(s.file.clone()).unwrap_or_default();
        fold(fold(fold(h, s.gpa), s.memsz), hash(data))
    });
    fold(fold(h, plan.entry), u64::from(plan.flags))
}

/// Which guest `p` is.
pub fn guest_id(p: &Prepared) -> GuestId {
    GuestId {
        name: p.name.clone(),
        path: p.path.display().to_string(),
        hash: identity(&p.plan, &p.bytes),
    }
}

/// Saves the VM of `p`, which stopped with `outcome`, into `file`; the
/// line that says so.
pub fn save(
    p: &mut Prepared,
    file: &std::fs::File,
    path: &Path,
    outcome: &RunOutcome,
    output: &[u8],
) -> Result<String, RunError> {
    let name = escaped(path);
    let id = guest_id(p);
    let so_far = RunSoFar {
        output,
        stats: outcome.vcpus.iter().map(|v| &v.stats).collect(),
        halted: outcome
            .vcpus
            .iter()
            .map(|v| v.stop == Stop::Halted)
            .collect(),
        elapsed: outcome.elapsed,
    };
    let saved = p.vm.save_snapshot(file, &name, &id, &so_far)?;
    Ok(format!(
        "snapshot: saved {} at exit {} to {name}: {} pages with data of {} guest memory, {} written",
        p.name,
        outcome.stats.total(),
        saved.pages,
        crate::size::human(p.vm.mem_size()),
        crate::size::human(saved.bytes),
    ))
}

/// A VM made from the snapshot at `path` instead of from the guest's
/// image: the snapshot's mode, memory size, controller and CPUID; the
/// guest file (`opts.guest` if given, else the one the snapshot names)
/// read for its symbols and checked against the snapshot's; run options
/// from `opts`. Returns the guest's output before the snapshot.
pub fn prepare_restore(opts: &RunOptions, path: &Path) -> Result<(Prepared, Vec<u8>), RunError> {
    let o = snapshot::open_restorable(path).map_err(snap_err)?;
    let name = escaped(path);
    let s = &o.snap;
    let bad = |why: String| {
        snap_err(SnapError::Bad {
            path: name.clone(),
            why,
        })
    };
    let guest = match opts.guest.as_str() {
        "" if Path::new(&s.guest_path).is_file() => s.guest_path.clone(),
        "" => s.guest.clone(),
        g => g.to_string(),
    };
    let (gpath, bytes, file) = read_guest_file(&guest, hypercall_abi::layout::MAX_MEM, false)?;
    let cfg = s.vm_config(&opts.vm);
    let flat = opts.flat;
    let plan = plan_guest(&guest, &bytes, flat, &cfg)
        .ok()
        .filter(|p| identity(p, &bytes) == s.guest_hash)
        .ok_or_else(|| {
            bad(format!(
                "it was saved from {} ({}), and {} is not that file (rebuilt since?): give the guest it was saved from",
                crate::diag::escape(&s.guest),
                crate::diag::escape(&s.guest_path),
                display_name(&guest)
            ))
        })?;
    let mut vm = Vm::for_restore(&cfg, opts.run.clone(), (&o.file, o.pages_off))?;
    vm.restore_snapshot(&o, &name, true)?;
    let output = o.snap.output.clone();
    // new arguments, for a guest that reads them after its snapshot call
    if !opts.args.is_empty() {
        vm.write_guest(hypercall_abi::args::AREA, &encode_args(&opts.args)?)?;
    }
    let linked_here = flat.is_none() && cfg.mode == crate::x86::CpuMode::Long;
    Ok((
        Prepared::new(
            match opts.guest.as_str() {
                "" => crate::diag::escape(&s.guest).into_owned(),
                g => display_name(g),
            },
            (gpath, bytes, file),
            plan,
            vm,
            linked_here,
        ),
        output,
    ))
}
