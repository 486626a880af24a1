//! How a vCPU's run ended, and what can stop the host from running it.

use crate::diag::HostError;
use crate::kvm::{Fault, KvmError};
use serde::Serialize;

/// How a run ended: one vCPU's, or the VM's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Stop {
    /// The guest executed `hlt`.
    Halted,
    /// `--timeout` expired with the guest still running.
    TimedOut {
        /// The limit.
        after_ms: u64,
    },
    /// SIGINT or SIGTERM (Ctrl-C) stopped the run.
    Interrupted,
    /// Another vCPU ended the VM (it faulted or failed); this one was
    /// cancelled where it was.
    Cancelled,
    /// gdb's `kill` ended the run (`--gdb`).
    Killed,
    /// The run stopped where `--snapshot-at` said, to be saved
    /// (`--snapshot`); a restore continues it.
    Snapshot,
    /// A fatal exit.
    Faulted {
        /// What.
        fault: Fault,
        /// CR0 at the time.
        #[serde(serialize_with = "crate::size::hex")]
        cr0: u64,
        /// CR3.
        #[serde(serialize_with = "crate::size::hex")]
        cr3: u64,
        /// CR4.
        #[serde(serialize_with = "crate::size::hex")]
        cr4: u64,
        /// EFER.
        #[serde(serialize_with = "crate::size::hex")]
        efer: u64,
        /// The interrupt vector the guest was serving (the in-kernel local
        /// APIC's highest in-service vector), if any.
        serving: Option<u8>,
    },
}

impl Stop {
    /// A fault, with the control registers of `s` (the vCPU's special
    /// registers when it happened).
    pub fn faulted(fault: Fault, s: &kvm_bindings::kvm_sregs) -> Stop {
        Stop::Faulted {
            fault,
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
            serving: None,
        }
    }
}

/// Where `ExitLoop::run_debug` handed the vCPU back to the debugger.
// A Pause is made once per run end or debugger stop, never per exit, and
// moved once: its size does not matter (an exception's details made
// `Ended` pass clippy's 200-byte mark).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pause {
    /// The run ended, as `ExitLoop::run` would have returned it.
    Ended(Stop, crate::x86::Regs),
    /// KVM_EXIT_DEBUG: `exception` 1 (#DB: a single step, or a hardware
    /// breakpoint or watchpoint, which `dr6` tells apart) or 3 (#BP: an
    /// `int3` the debugger planted), at linear address `pc`.
    Debug {
        /// The exception vector.
        exception: u32,
        /// The guest's linear RIP.
        pc: u64,
        /// DR6: which debug register fired (bits 0..=3), single step (bit 14).
        dr6: u64,
    },
    /// A kick that was no stop request: the debugger looks for input.
    Kicked,
}

/// Why the host could not set up or go on running a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// A KVM call failed.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// Serving an exit failed on the host's side.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Signal or timer set-up failed.
    #[error(transparent)]
    Signal(#[from] crate::signals::SignalError),
    /// The seccomp filter could not be installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// `--pin` names a CPU this host does not have, or pinning failed.
    #[error("cannot pin the vCPU thread to CPU {cpu}: {why}")]
    Pin {
        /// The CPU asked for.
        cpu: usize,
        /// Why not.
        why: String,
    },
}
