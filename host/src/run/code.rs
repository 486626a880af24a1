//! Process exit codes of `host` (documented in the README).

/// The guest halted (and passed the 42 check when it asked for one).
pub const OK: i32 = 0;
/// The host could not set up or run the VM (KVM, file, ELF, ABI, memory).
pub const HOST_ERROR: i32 = 1;
/// Bad command-line usage (clap's code).
pub const USAGE: i32 = 2;
/// The guest crashed: triple fault, failed entry, internal error.
pub const GUEST_FAULT: i32 = 3;
/// The guest halted but failed the 42 check.
pub const CHECK_FAILED: i32 = 4;
/// `--timeout` expired with the guest still running.
pub const TIMEOUT: i32 = 5;
/// Stopped by SIGINT/SIGTERM (Ctrl-C): 128 + SIGINT, as shells do.
pub const INTERRUPTED: i32 = 130;
/// The vCPU thread made a system call the seccomp filter blocks.
pub const SECCOMP: i32 = crate::seccomp::SECCOMP_EXIT;
/// The host panicked: a bug in the host, reported as
/// `host: internal error: <message> at <file:line>`.
pub const INTERNAL: i32 = crate::diag::INTERNAL_ERROR_EXIT;
