//! What `host matrix` runs and how: policy, weights, quantum, limits.

use crate::run::RunError;
use crate::signals;
use crate::vm::VmError;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What ends a VM's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Every I/O or MMIO exit (assignment 2a).
    OnExit,
    /// The quantum timer only; exits are handled and the same VM goes on
    /// (assignment 2b/2c).
    Preempt,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// Built guest names (their `.kvmwb.real` code) or flat real-mode files.
    pub vms: Vec<String>,
    /// One weight per VM (empty: 7:3 for two VMs, else 1 each).
    pub weights: Vec<u32>,
    /// What ends a turn.
    pub policy: Policy,
    /// The timer period (preempt).
    pub quantum: Duration,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many turns in all.
    pub quanta: Option<u64>,
    /// Guest memory per VM.
    pub mem_size: u64,
    /// The KVM device.
    pub kvm_path: PathBuf,
    /// Print the event lines.
    pub events: bool,
    /// Record every turn (for `--timeline`).
    pub record_turns: bool,
    /// Run the loop under the seccomp filter.
    pub seccomp: bool,
}

impl Default for MatrixOptions {
    fn default() -> Self {
        MatrixOptions {
            vms: vec!["guest1".into(), "guest2".into()],
            weights: Vec::new(),
            policy: Policy::Preempt,
            quantum: Duration::from_secs(1),
            duration: None,
            quanta: None,
            mem_size: 1 << 20,
            kvm_path: PathBuf::from("/dev/kvm"),
            events: true,
            record_turns: false,
            seccomp: false,
        }
    }
}

/// Why the matrix could not run.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// Unknown guest, unreadable file or refused image.
    #[error(transparent)]
    Guest(#[from] RunError),
    /// Bad weights.
    #[error("{0}")]
    Weights(String),
    /// A guest with no real-mode code (a long-mode program).
    #[error(
        "{0} has no real-mode code: the matrix runs 16-bit real-mode programs (a guest's .kvmwb.real section, as guest1, guest2 and spin_real have, or a flat real-mode binary); {0} is a long-mode program: run it with `host run {0}`"
    )]
    NotRealMode(String),
    /// KVM failed.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// Timer or signal set-up failed.
    #[error(transparent)]
    Signal(#[from] signals::SignalError),
    /// A KVM call failed.
    #[error(transparent)]
    Kvm(#[from] crate::kvm::KvmError),
    /// The seccomp filter could not be installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// The weights to use: as given (one per VM); else, under `preempt`, 7:3
/// for two VMs (the assignment's 70/30), and 1 each otherwise; under
/// `on-exit`, 1 each (the assignment's strict alternation).
pub fn weights_for(n: usize, given: &[u32], policy: Policy) -> Result<Vec<u32>, MatrixError> {
    if given.is_empty() {
        return Ok(match (policy, n) {
            (Policy::Preempt, 2) => vec![7, 3],
            _ => vec![1; n],
        });
    }
    if given.len() != n {
        return Err(MatrixError::Weights(format!(
            "{} weights for {n} VMs: give one weight per VM, e.g. --weights {}",
            given.len(),
            vec!["1"; n].join(":")
        )));
    }
    if given.contains(&0) {
        return Err(MatrixError::Weights(
            "a weight of 0 would never run that VM: weights are positive integers".into(),
        ));
    }
    Ok(given.to_vec())
}

/// Parses `7:3` (or `2:1:1`).
pub fn parse_weights(s: &str) -> Result<Vec<u32>, String> {
    s.split(':')
        .map(|w| {
            w.trim()
                .parse::<u32>()
                .ok()
                .filter(|&w| (1..=1000).contains(&w))
                .ok_or_else(|| format!("'{w}' is not a weight: weights are integers from 1 to 1000, separated by ':' (e.g. 7:3)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_checked() {
        assert_eq!(parse_weights("7:3"), Ok(vec![7, 3]));
        assert!(parse_weights("7:x").is_err());
        assert!(parse_weights("0:1").is_err());
        assert_eq!(weights_for(2, &[], Policy::Preempt).unwrap(), [7, 3]);
        assert_eq!(weights_for(2, &[], Policy::OnExit).unwrap(), [1, 1]);
        assert_eq!(weights_for(2, &[2, 1], Policy::OnExit).unwrap(), [2, 1]);
        assert_eq!(weights_for(3, &[], Policy::Preempt).unwrap(), [1, 1, 1]);
        assert!(
            weights_for(3, &[7, 3], Policy::Preempt)
                .unwrap_err()
                .to_string()
                .contains("2 weights for 3 VMs")
        );
    }
}
