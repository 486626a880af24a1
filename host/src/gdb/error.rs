//! What can go wrong with the debugger.

use crate::vcpu::VcpuError;

/// Why `--gdb` could not serve gdb.
#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    /// The address could not be listened on.
    #[error("--gdb: cannot listen on {addr}: {source}")]
    Bind {
        /// What the user gave.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for gdb failed.
    #[error("--gdb: waiting for gdb failed: {0}")]
    Accept(std::io::Error),
    /// The capability probe could not make its small VM.
    #[error("--gdb: cannot probe what this KVM can debug: {0}")]
    Probe(String),
}

impl From<GdbError> for VcpuError {
    fn from(e: GdbError) -> VcpuError {
        VcpuError::Host(crate::diag::HostError::Debugger(e.to_string()))
    }
}
