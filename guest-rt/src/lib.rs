//! Runtime for no_std guest programs running in long mode under the host VMM.
//!
//! A guest program is one file in `guest-kernel/src/bin/`:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! guest_rt::entry!(main);
//! fn main() -> u64 { guest_rt::println!("hi"); 0 }
//! ```
//!
//! `entry!` emits the ABI note the host checks, and the `_start` symbol: it
//! calls `main`, then halts with `main`'s return value in RAX.
#![no_std]

pub mod hc;
mod print;

pub use hypercall_abi as abi;
#[doc(hidden)]
pub use print::_print;
pub use print::Console;

#[doc(hidden)]
pub use hypercall_abi::note::Note as __Note;

/// Declares the program's `main` (a `fn() -> u64`), its `_start` and its ABI
/// note. `entry!(main, check_42)` also asks the host to run the 42 check.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::entry!(@emit $main, 0);
    };
    ($main:path, check_42) => {
        $crate::entry!(@emit $main, $crate::abi::note::FLAG_CHECK_42);
    };
    (@emit $main:path, $flags:expr) => {
        #[unsafe(link_section = ".note.kvmwb.abi")]
        #[used]
        static __GUEST_RT_ABI_NOTE: $crate::__Note = $crate::__Note::new($flags);

        #[unsafe(no_mangle)]
        extern "C" fn __guest_rt_main() -> u64 {
            let f: fn() -> u64 = $main;
            f()
        }
    };
}

// The host enters at `_start` with RSP = layout::STACK_TOP (16-byte aligned).
// `call` pushes a return address, so `__guest_rt_main` starts with the stack
// alignment the SysV ABI promises. Its return value stays in RAX across `hlt`.
core::arch::global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    call __guest_rt_main",
    "2:  hlt",
    "    jmp 2b",
);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    let mut c = Console::new();
    let _ = write!(c, "guest panic: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(c, " at {}:{}", loc.file(), loc.line());
    }
    let _ = c.write_str("\n");
    c.flush();
    // No IDT: #UD escalates to a triple fault, which the host reports as a
    // guest crash (KVM_EXIT_SHUTDOWN) with a non-zero exit code.
    // SAFETY: ud2 only raises #UD; the guest is meant to stop here.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}

/// The matrix guests (`host matrix`): a 16-bit loop in the `.kvmwb.real`
/// section, the assignment's guest1.s/guest2.s. `real_loop!("inc", "0x10")`
/// assembles
///
/// ```text
///     xor %ax, %ax
/// 1:  out %ax, $0x10     (left out with no port: the "silent" variant)
///     inc %ax
///     jmp 1b
/// ```
///
/// AX is the guest's progress counter, read by the host at the end.
#[macro_export]
macro_rules! real_loop {
    ($step:literal $(, $port:literal)?) => {
        core::arch::global_asm!(
            concat!(".pushsection ", $crate::abi::real_section!(), ", \"ax\""),
            ".code16",
            "    xor %ax, %ax",
            "1:",
            $(concat!("    out %ax, $", $port),)?
            concat!("    ", $step, " %ax"),
            "    jmp 1b",
            ".code64",
            ".popsection",
            options(att_syntax),
        );
    };
}

/// The long-mode `main` of a guest that only has real-mode code: says so.
#[macro_export]
macro_rules! real_mode_only {
    ($name:literal) => {
        $crate::entry!(main);
        fn main() -> u64 {
            $crate::println!(
                "{} is a 16-bit real-mode program: run it with `host matrix --vm {}` or `host run {} --mode real`",
                $name,
                $name,
                $name
            );
            0
        }
    };
}
