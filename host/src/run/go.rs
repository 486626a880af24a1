//! `host run` from options to report: prepare, then run, under gdb with
//! `--gdb`.

use super::prepare::{RunError, RunOptions, prepare};
use super::report::Report;
use super::snapshot;
use crate::loader::Symbols;
use crate::vcpu::Stop;
use std::io::Write;

/// Prepares and runs a guest.
pub fn run(
    opts: &RunOptions,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<Report, RunError> {
    snapshot::check(opts)?;
    super::debug::check_record(opts)?;
    let trace_file = match &opts.trace_out {
        Some(path) => Some(super::trace_out::create(path)?),
        None => None,
    };
    let file = match &opts.snapshot {
        Some(path) => Some(snapshot::create(path)?),
        None => None,
    };
    let (mut p, before) = match &opts.restore {
        Some(path) => snapshot::prepare_restore(opts, path)?,
        None => (prepare(opts)?, Vec::new()),
    };
    // the page draws the VM as it was set up (the guest may change it)
    let layout = match opts.html {
        true => Some(crate::inspect::describe(&mut p.vm, &p.plan, None)?),
        false => None,
    };
    // a restored run prints the output it had, as if never stopped
    out.write_all(&before)
        .map_err(|e| crate::vm::VmError::Host(e.into()))?;
    let mut keep = super::snapshot::Keep::new(out, before);
    let out: &mut dyn Write = match file {
        Some(_) => &mut keep,
        None => keep.inner(),
    };
    let outcome = match &opts.gdb {
        Some(addr) => super::debug::run(&mut p, addr, &opts.vm, opts.run.record, out, diag)?,
        None => p.vm.run(out, diag)?,
    };
    if let (Some(f), Some(path)) = (&file, &opts.snapshot) {
        let line = match snapshot::due(&outcome.stop, opts.run.snapshot_at) {
            true => snapshot::save(&mut p, f, path, &outcome, &keep.kept)?,
            false => format!(
                "snapshot: none taken: the run ended before {}; {} is left empty",
                match opts.run.snapshot_at {
                    Some(crate::config::SnapAt::Exits(n)) => format!("exit {n}"),
                    Some(crate::config::SnapAt::Stop) => "Ctrl-C or --timeout".into(),
                    _ => "the guest's snapshot hypercall".into(),
                },
                crate::diag::escape(&path.display().to_string())
            ),
        };
        crate::diag::host_line(keep.inner(), diag, format_args!("{line}"))
            .map_err(crate::vm::VmError::Host)?;
    }
    if let (Some(f), Some(path)) = (&trace_file, &opts.trace_out) {
        let line = super::trace_out::write(f, path, &p.name, &outcome)?;
        crate::diag::host_line(&mut std::io::sink(), diag, format_args!("{line}"))
            .map_err(crate::vm::VmError::Host)?;
    }
    let crash = match &outcome.stop {
        Stop::Faulted { fault, .. } => {
            // (no file can be opened now: this thread is under seccomp)
            let symbols = match p.linked_here {
                true => Symbols::from_elf(&p.bytes),
                false => Symbols::default(),
            };
            // the DWARF, through the mapping made before the jail
            let lines = p
                .file
                .as_ref()
                .and_then(|f| f.bytes())
                .and_then(crate::loader::Lines::from_elf);
            let id = outcome.vcpu;
            let stats = outcome.vcpus.get(id).map_or(&outcome.stats, |v| &v.stats);
            let names = super::explain::Names {
                symbols: &symbols,
                lines: lines.as_ref(),
            };
            super::explain::explain(&p.vm, id, &outcome.regs, fault, stats, &names)
        }
        _ => None,
    };
    Ok(Report {
        name: p.name,
        outcome,
        crash,
        layout,
    })
}
