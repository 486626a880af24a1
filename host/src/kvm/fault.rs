//! Fatal exits: what ended a guest that cannot go on, read from `kvm_run`.

use crate::stats::ExitReason;
use kvm_bindings as k;
use serde::Serialize;

/// A fatal exit: the guest cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// KVM_EXIT_SHUTDOWN: a triple fault.
    TripleFault,
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry {
        /// hardware_entry_failure_reason.
        #[serde(serialize_with = "crate::size::hex")]
        reason: u64,
        /// The physical CPU.
        cpu: u32,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError {
        /// kvm_run.internal.suberror.
        suberror: u32,
    },
    /// KVM could not reach guest memory (KVM_EXIT_MEMORY_FAULT).
    MemoryFault {
        /// The address.
        #[serde(serialize_with = "crate::size::hex")]
        gpa: u64,
    },
    /// A CPU exception the guest had no handler for, reported by the
    /// host's IDT or IVT (x86/exception.rs) before it could become a triple
    /// fault, or by the guest itself (`hypercall_abi::ExceptionReport`).
    Exception {
        /// The vector (0-31; up to 255 for an `int N` in real mode).
        vector: u8,
        /// `#DE`, `#PF`, ...; `INT` for an `int N` instruction.
        mnemonic: &'static str,
        /// The error code the CPU pushed, for the vectors that have one.
        #[serde(serialize_with = "crate::size::hex_opt")]
        error_code: Option<u64>,
        /// CR2 for a page fault: the address that faulted.
        #[serde(serialize_with = "crate::size::hex_opt")]
        cr2: Option<u64>,
    },
    /// guest-rt's panic handler said the guest panicked (its message is
    /// in the guest's output).
    Panic,
    /// An exit this host does not handle.
    Unhandled {
        /// KVM_EXIT_* number.
        exit_reason: u32,
    },
}

impl Fault {
    /// The fault `run` describes, for any exit the host does not serve
    /// (everything but I/O, MMIO and HLT), with the reason it counts under.
    pub fn from_run(run: &k::kvm_run) -> (ExitReason, Fault) {
        match run.exit_reason {
            k::KVM_EXIT_SHUTDOWN => (ExitReason::Shutdown, Fault::TripleFault),
            k::KVM_EXIT_FAIL_ENTRY => {
                // SAFETY: exit_reason is KVM_EXIT_FAIL_ENTRY, so
                // `fail_entry` is the union member the kernel filled.
                let f = unsafe { run.__bindgen_anon_1.fail_entry };
                (
                    ExitReason::FailEntry,
                    Fault::FailEntry {
                        reason: f.hardware_entry_failure_reason,
                        cpu: f.cpu,
                    },
                )
            }
            k::KVM_EXIT_INTERNAL_ERROR => {
                // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so
                // `internal` is the union member the kernel filled.
                let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                (ExitReason::InternalError, Fault::InternalError { suberror })
            }
            k::KVM_EXIT_MEMORY_FAULT => {
                // SAFETY: exit_reason is KVM_EXIT_MEMORY_FAULT, so
                // `memory_fault` is the union member the kernel filled.
                let gpa = unsafe { run.__bindgen_anon_1.memory_fault.gpa };
                (ExitReason::Other, Fault::MemoryFault { gpa })
            }
            exit_reason => (ExitReason::Other, Fault::Unhandled { exit_reason }),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::TripleFault => write!(f, "triple fault (KVM_EXIT_SHUTDOWN, exit reason 8)"),
            Fault::FailEntry { reason, cpu } => write!(
                f,
                "VM entry failed (KVM_EXIT_FAIL_ENTRY, exit reason 9): hardware reason {reason:#x} on CPU {cpu}"
            ),
            Fault::InternalError { suberror } => write!(
                f,
                "KVM internal error (KVM_EXIT_INTERNAL_ERROR, exit reason 17), suberror {suberror}{}",
                match suberror {
                    1 => " (instruction emulation failed)",
                    2 => " (simultaneous exceptions)",
                    3 => " (delivery event failed)",
                    _ => "",
                }
            ),
            Fault::MemoryFault { gpa } => {
                write!(f, "memory fault at GPA {gpa:#x} (KVM_EXIT_MEMORY_FAULT)")
            }
            Fault::Exception {
                vector,
                mnemonic,
                error_code,
                cr2,
            } => {
                if *mnemonic == "IRQ" {
                    return write!(
                        f,
                        "interrupt vector {vector:#x} with no handler (guest_rt::interrupts::set_handler installs one)"
                    );
                }
                if *mnemonic == "INT" {
                    return write!(
                        f,
                        "`int {vector:#x}` with no handler: vector {vector}'s entry is still the host's"
                    );
                }
                let (_, name) = crate::x86::exception::name(*vector);
                write!(f, "{mnemonic} {name} (exception {vector}")?;
                if let Some(c) = error_code {
                    let words = crate::x86::exception::explain_error_code(*vector, *c);
                    write!(f, ", error code {c:#x}")?;
                    if !words.is_empty() {
                        write!(f, ": {words}")?;
                    }
                }
                if let Some(a) = cr2 {
                    write!(f, ", address {a:#x} in CR2")?;
                }
                f.write_str(")")
            }
            Fault::Panic => f.write_str("the guest panicked (its message is above)"),
            Fault::Unhandled { exit_reason } => write!(f, "unhandled exit reason {exit_reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exception_says_what_it_is() {
        let f = Fault::Exception {
            vector: 14,
            mnemonic: "#PF",
            error_code: Some(2),
            cr2: Some(0xdead_0000),
        };
        assert_eq!(
            f.to_string(),
            "#PF page fault (exception 14, error code 0x2: not present, write, kernel, address 0xdead0000 in CR2)"
        );
        let f = Fault::Exception {
            vector: 0,
            mnemonic: "#DE",
            error_code: None,
            cr2: None,
        };
        assert_eq!(f.to_string(), "#DE divide error (exception 0)");
    }

    #[test]
    fn faults_are_read_from_a_hand_made_kvm_run() {
        let mut run = k::kvm_run {
            exit_reason: k::KVM_EXIT_SHUTDOWN,
            ..Default::default()
        };
        assert_eq!(
            Fault::from_run(&run),
            (ExitReason::Shutdown, Fault::TripleFault)
        );
        run.exit_reason = k::KVM_EXIT_INTERNAL_ERROR;
        run.__bindgen_anon_1.internal.suberror = 1;
        let (r, f) = Fault::from_run(&run);
        assert_eq!(
            (r, &f),
            (
                ExitReason::InternalError,
                &Fault::InternalError { suberror: 1 }
            )
        );
        assert!(
            f.to_string()
                .ends_with("suberror 1 (instruction emulation failed)")
        );
        run.exit_reason = k::KVM_EXIT_FAIL_ENTRY;
        run.__bindgen_anon_1
            .fail_entry
            .hardware_entry_failure_reason = 0x21;
        run.__bindgen_anon_1.fail_entry.cpu = 1;
        assert_eq!(
            Fault::from_run(&run).1,
            Fault::FailEntry {
                reason: 0x21,
                cpu: 1
            }
        );
        run.exit_reason = 99;
        assert_eq!(
            Fault::from_run(&run),
            (ExitReason::Other, Fault::Unhandled { exit_reason: 99 })
        );
    }
}
