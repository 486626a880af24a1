//! `host run GUEST --gdb [ADDR]`: probe what this KVM can debug, listen,
//! say where gdb should connect, wait for it, and run the guest with vCPU
//! 0 driven by the gdb stub (`crate::gdb`).

use super::prepare::{Prepared, RunError};
use crate::config::VmConfig;
use crate::diag::host_line;
use crate::gdb::{GdbError, Listener, Session};
use crate::vm::{RunOutcome, VmError};
use crate::x86::CpuMode;
use std::io::Write;

/// What `--record` cannot replay, refused in one line (exit 2): several
/// vCPUs run at once in an order no one records; interrupts from KVM's
/// own timers and controllers, the polling timer and a device thread come
/// at moments a re-execution cannot meet; a snapshot would stop the run
/// the marks of time travel need; each checkpoint compares all of guest
/// RAM with its copy (at most 256 MiB of RAM), and that copy lives in the
/// budget.
pub fn check_record(opts: &super::prepare::RunOptions) -> Result<(), RunError> {
    if opts.run.record.is_none() {
        return Ok(());
    }
    let why = if opts.vm.vcpus > 1 {
        Some("several vCPUs run at once, in an order a replay cannot repeat".to_string())
    } else if opts.vm.irqchip == Some(crate::config::IrqChip::Kernel) {
        Some(super::prepare::KERNEL_CHIP.into())
    } else if opts.run.inject.is_some() {
        Some("--inject-every interrupts at moments a replay cannot meet".into())
    } else if opts.run.polling.is_some() {
        Some("--polling drains the device on a timer, at moments a replay cannot meet".into())
    } else if opts.run.ioeventfd {
        Some("--ioeventfd serves the device on a thread of its own".into())
    } else if opts.snapshot.is_some() {
        Some("--snapshot stops the run where time travel's marks are".into())
    } else if opts.vm.mem_size > crate::gdb::record::MAX_RECORD_MEM {
        Some(format!(
            "each checkpoint compares all guest RAM with its copy: at most {} MiB (--mem)",
            crate::gdb::record::MAX_RECORD_MEM >> 20
        ))
    } else if let Some(b) = opts.run.record.filter(|&b| b < opts.vm.mem_size * 2) {
        return Err(RunError::Usage(format!(
            "--record-budget {} KiB is less than twice guest RAM ({} KiB): the recording keeps a copy of RAM and needs room for checkpoints beside it",
            b >> 10,
            opts.vm.mem_size >> 10
        )));
    } else {
        None
    };
    match why {
        Some(w) => Err(super::prepare::refuse_record(&w)),
        None => Ok(()),
    }
}

/// Runs a prepared guest under gdb at `addr` (`record`: `--record`'s
/// budget).
pub fn run(
    p: &mut Prepared,
    addr: &str,
    vm: &VmConfig,
    record: Option<u64>,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<RunOutcome, RunError> {
    if !addr.contains(':') && !addr.contains('/') {
        return Err(RunError::Usage(format!(
            "--gdb {addr}: not an address (HOST:PORT, :PORT, or a socket path with a '/'); give the guest first: host run {addr} --gdb"
        )));
    }
    let caps = crate::gdb::probe(&vm.kvm_path)?;
    let layout = crate::inspect::describe(&mut p.vm, &p.plan, None)?.text();
    let listener = Listener::bind(addr)?;
    let target = listener.target();
    let gdb_cmd = match vm.mode {
        // the ELF's symbols are long-mode addresses; the other modes run
        // a section loaded elsewhere, so gdb gets no file
        CpuMode::Long => format!("gdb {} -ex 'target remote {target}'", p.path.display()),
        _ => format!("gdb -ex 'target remote {target}'"),
    };
    let line = |out: &mut dyn Write, diag: &mut dyn Write, m: std::fmt::Arguments| {
        host_line(out, diag, m).map_err(|e| RunError::Vm(VmError::Host(e)))
    };
    line(out, diag, format_args!("gdb: {}", caps.summary()))?;
    line(
        out,
        diag,
        format_args!(
            "gdb: {} is stopped before its first instruction; waiting for gdb on {target}: {gdb_cmd}",
            p.name
        ),
    )?;
    diag.flush()
        .map_err(|e| RunError::Vm(VmError::Host(e.into())))?;
    let conn = listener.accept()?;
    drop(listener);
    let mut session = Session::new(conn, vm.mode, caps, layout);
    session.record = record;
    Ok(p.vm.run_driven(Some(&mut session), out, diag)?)
}

impl From<GdbError> for VmError {
    fn from(e: GdbError) -> VmError {
        VmError::Host(e.into())
    }
}
