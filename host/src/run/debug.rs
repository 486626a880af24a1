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

/// Runs a prepared guest under gdb at `addr`.
pub fn run(
    p: &mut Prepared,
    addr: &str,
    vm: &VmConfig,
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
    Ok(p.vm.run_driven(Some(&mut session), out, diag)?)
}

impl From<GdbError> for VmError {
    fn from(e: GdbError) -> VmError {
        VmError::Host(e.into())
    }
}
