//! The host's one-line diagnostics and the error type of everything that
//! runs while the guest does (the exit loop, devices, hypercalls).
//!
//! A diagnostic is one `host: ...` line on the diagnostic stream, written
//! after the guest's output so far is flushed, so the two streams stay in
//! order on a terminal.

use std::io::Write;

/// The host could not carry on (the guest is not at fault).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Writing the guest's output failed (e.g. a closed pipe).
    #[error("cannot write guest output: {0}")]
    Output(#[from] std::io::Error),
    /// A vCPU ioctl needed while serving an exit failed.
    #[error("{what} failed: {source}")]
    Kvm {
        /// The ioctl.
        what: &'static str,
        /// errno.
        source: kvm_ioctls::Error,
    },
    /// A host bug caught without a panic.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Writes one "host: ..." line on `diag`, after flushing the guest's output
/// so far.
pub fn host_line(
    out: &mut dyn Write,
    diag: &mut dyn Write,
    msg: std::fmt::Arguments,
) -> Result<(), HostError> {
    out.flush()?;
    writeln!(diag, "host: {msg}")?;
    Ok(())
}
