//! `host run` from options to report: prepare, then run, under gdb with
//! `--gdb`.

use super::prepare::{RunError, RunOptions, prepare};
use super::report::Report;
use crate::loader::Symbols;
use crate::vcpu::Stop;
use std::io::Write;

/// Prepares and runs a guest.
pub fn run(
    opts: &RunOptions,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<Report, RunError> {
    let mut p = prepare(opts)?;
    let outcome = match &opts.gdb {
        Some(addr) => super::debug::run(&mut p, addr, &opts.vm, out, diag)?,
        None => p.vm.run(out, diag)?,
    };
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
    })
}
