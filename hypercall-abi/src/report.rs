//! A guest's own report of an exception it cannot handle: the guest with
//! an IDT of its own (the guest kernel) hands the host the fault, and the
//! host reports it as it reports the exceptions its own stubs take.

use crate::abi_block;

abi_block! {
    /// A guest's own report of an exception it cannot handle (the guest
    /// kernel's trap handler, for a fault in the kernel): `out dx, eax` to
    /// `layout::EXCEPTION_PORT` with EAX = the GPA of this block. The host
    /// ends the run as a crash with these registers, as if its own stub
    /// had taken the exception.
    pub struct ExceptionReport {
        /// The vector (0-255).
        pub vector: u64,
        /// Bit 0: `error_code` holds one; bit 1: `cr2` holds the faulting
        /// address.
        pub flags: u64,
        /// The error code the CPU pushed.
        pub error_code: u64,
        /// CR2 at the fault (a page fault's address).
        pub cr2: u64,
        /// RIP of the faulting instruction.
        pub rip: u64,
        /// CS.
        pub cs: u64,
        /// RFLAGS.
        pub rflags: u64,
        /// RSP.
        pub rsp: u64,
        /// SS.
        pub ss: u64,
        /// RAX.
        pub rax: u64,
        /// RBX.
        pub rbx: u64,
        /// RCX.
        pub rcx: u64,
        /// RDX.
        pub rdx: u64,
        /// RSI.
        pub rsi: u64,
        /// RDI.
        pub rdi: u64,
        /// RBP.
        pub rbp: u64,
        /// R8.
        pub r8: u64,
        /// R9.
        pub r9: u64,
        /// R10.
        pub r10: u64,
        /// R11.
        pub r11: u64,
        /// R12.
        pub r12: u64,
        /// R13.
        pub r13: u64,
        /// R14.
        pub r14: u64,
        /// R15.
        pub r15: u64,
    }
}

/// [`ExceptionReport::flags`]: `error_code` is valid.
pub const REPORT_ERROR_CODE: u64 = 1;
/// [`ExceptionReport::flags`]: `cr2` is valid.
pub const REPORT_CR2: u64 = 2;
