//! `host run` from options to report: prepare, then run, under gdb with
//! `--gdb`.

use super::prepare::{RunError, RunOptions, prepare};
use super::report::Report;
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
    Ok(Report {
        name: p.name,
        outcome,
    })
}
