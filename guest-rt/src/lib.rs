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
#![cfg_attr(test, no_main)]

// `guest_rt::...` paths work inside this crate too (the test harness
// attribute in .cargo/config.toml names `guest_rt::testing::runner`).
extern crate self as guest_rt;

mod args;
mod cpu;
pub mod hc;
pub mod heap;
pub mod interrupts;
pub mod kernel;
pub mod launch;
mod print;
pub mod simvirtio;
pub mod sys;
pub mod testing;
pub mod user;

pub use hypercall_abi as abi;

/// `#[test]` for guest programs, with `#[should_panic]` and `#[ignore]`:
/// `use guest_rt::test;` in the test module, then as with libtest
/// ([`testing`]).
pub use guest_rt_macros::test;

// `cargo test -p guest-rt`: this crate's unit tests are a guest program.
#[cfg(test)]
entry!(unused);
pub use args::args;
#[doc(hidden)]
pub use print::_print;
pub use print::Console;

#[doc(hidden)]
pub use hypercall_abi::note::Header as __NoteHeader;

/// Declares the program's `main` (a `fn() -> u64`), its `_start` and its ABI
/// note, with any of these flags after `main`:
/// - `check_42`: the host runs the 42 check;
/// - `cpuid`: the vCPU reports the host's CPU features (the guest kernel
///   ([`kernel`]) and a program that reads CPUID need them);
/// - `irq_kernel`: KVM's in-kernel interrupt controllers (PIC, IOAPIC, local
///   APICs, PIT: [`interrupts`]);
/// - `irq_user`: the host's user-space controller (KVM_INTERRUPT).
///
/// `entry!(main, check_42, irq_kernel)` asks for both.
#[macro_export]
macro_rules! entry {
    ($main:path $(, $flag:ident)*) => {
        $crate::entry!(@emit $main, 0 $(| $crate::entry!(@flag $flag))*);
    };
    (@flag check_42) => { $crate::abi::note::FLAG_CHECK_42 };
    (@flag cpuid) => { $crate::abi::note::FLAG_CPUID };
    (@flag irq_kernel) => { $crate::abi::note::FLAG_IRQ_KERNEL };
    (@flag irq_user) => { $crate::abi::note::FLAG_IRQ_USER };
    (@emit $main:path, $flags:expr) => {
        $crate::entry!(@note $flags);
        #[cfg(not(test))]
        #[unsafe(no_mangle)]
        extern "C" fn __guest_rt_main(_id: u64, _count: u64) -> u64 {
            let f: fn() -> u64 = $main;
            f()
        }
        $crate::entry!(@tests);
    };
    (@note $flags:expr) => {
        // The note's header; linker/guest.ld writes the ELF note header
        // before it and the entries of the hypercalls linked after it.
        #[cfg(not(test))]
        #[unsafe(link_section = ".kvmwb.abi.header")]
        #[used]
        static __GUEST_RT_ABI_NOTE: $crate::__NoteHeader = $crate::__NoteHeader::new($flags);
        // `cargo test`: a test build (the harness in guest_rt::testing);
        // the program's own flags are still evaluated, so what names them
        // is used in both builds
        #[cfg(test)]
        const _: u32 = $flags;
        #[cfg(test)]
        #[unsafe(link_section = ".kvmwb.abi.header")]
        #[used]
        static __GUEST_RT_ABI_NOTE: $crate::__NoteHeader =
            $crate::__NoteHeader::new($crate::abi::note::FLAG_TESTS | $crate::abi::note::FLAG_CPUID);
    };
    // `cargo test` builds the program with its #[test] functions and the
    // harness entry `test_main` (.cargo/config.toml's -Zcrate-attr flags):
    // RDX at entry says which test to run.
    (@tests) => {
        #[cfg(test)]
        #[unsafe(no_mangle)]
        extern "C" fn __guest_rt_main(_id: u64, _count: u64, command: u64) -> u64 {
            $crate::testing::select(command);
            test_main();
            0
        }
    };
}

/// Passes the 42 check (`entry!(main, check_42)`, `host run --check-42`):
/// writes 42 to the word at GPA 0x400 and returns 42, for `main` to return
/// (the host wants it in RAX too: docs/abi.md section 5).
///
/// ```ignore
/// guest_rt::entry!(main, check_42);
/// fn main() -> u64 { guest_rt::pass_check_42() }
/// ```
pub fn pass_check_42() -> u64 {
    use abi::layout::{CHECK_ADDR, CHECK_VALUE};
    // SAFETY: CHECK_ADDR is identity-mapped guest RAM that the ABI
    // reserves for this word (long mode; the host maps it at every start).
    unsafe { core::ptr::write_volatile(CHECK_ADDR as *mut u32, CHECK_VALUE as u32) };
    CHECK_VALUE
}

/// One vCPU of a multi-vCPU guest (`host run --vcpus N`).
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// This vCPU's id, 0..count.
    pub id: u64,
    /// How many vCPUs the VM has.
    pub count: u64,
}

/// Like [`entry!`] for a program that runs on every vCPU: `main` is a
/// `fn(Cpu) -> u64` and is called once per vCPU, each on its own stack.
/// vCPU 0's return value is the VM's RAX. The flags are [`entry!`]'s:
/// `smp_entry!(main, check_42)` asks for the 42 check (on vCPU 0),
/// `smp_entry!(main, irq_kernel)` for local APICs that send IPIs.
#[macro_export]
macro_rules! smp_entry {
    ($main:path $(, $flag:ident)*) => {
        $crate::entry!(@note $crate::abi::note::FLAG_SMP | $crate::abi::note::FLAG_CPUID $(| $crate::entry!(@flag $flag))*);
        $crate::entry!(@tests);
        #[cfg(not(test))]
        #[unsafe(no_mangle)]
        extern "C" fn __guest_rt_main(id: u64, count: u64) -> u64 {
            let f: fn($crate::Cpu) -> u64 = $main;
            f($crate::Cpu { id, count })
        }
    };
}

/// A program that runs as a user program at CPL3 under the guest kernel
/// ([`kernel`]): `main` is a `fn() -> i32` and may only use system calls
/// ([`user`]); `print!`/`println!` work. The kernel boots, runs `main` in
/// user mode and halts with its exit status in RAX.
#[macro_export]
macro_rules! user_program {
    ($main:path) => {
        $crate::entry!(__guest_rt_kernel_main, cpuid);
        fn __guest_rt_kernel_main() -> u64 {
            let status = $crate::kernel::run_user($main);
            $crate::kernel::report_entries();
            if status != 0 {
                $crate::println!("kernel: user program exited with status {}", status);
            }
            status as u64
        }
    };
}

// The host enters at `_start` with RSP = layout::STACK_TOP (16-byte aligned;
// vCPU i: STACK_TOP - i * VCPU_STACK_SIZE), RDI = vCPU id, RSI = vCPU count,
// at CPL0. `call` pushes a return address, so `__guest_rt_main` starts with
// the stack alignment the SysV ABI promises. Its return value stays in RAX
// across `hlt`. Linux enters at CPL3 (CS's low bits) with RSP at argc: that
// path hands the ELF to the host (`launch`).
// The reference is weak so that a program without `entry!` gets the
// linker script's message naming the macro (linker/guest.ld) instead of
// rust-lld's "undefined symbol: __guest_rt_main".
macro_rules! start {
    ($($weak:literal)?) => {
        core::arch::global_asm!(
            ".section .text._start, \"ax\"",
            ".global _start",
            $($weak,)?
            "_start:",
            "    mov eax, cs",
            "    test al, 3",
            "    jnz 3f",
            "    call __guest_rt_main",
            // interrupts off: a HLT that ends the run under the in-kernel
            // controller too
            "2:  cli",
            "    hlt",
            "    jmp 2b",
            "3:  mov rdi, rsp",
            "    and rsp, -16",
            "    call __guest_rt_from_linux",
            ".type _start, @function",
            ".size _start, . - _start",
        );
    };
}
#[cfg(not(test))]
start!(".weak __guest_rt_main");
// (guest-rt's own test build defines __guest_rt_main in this object:
// there a weak reference would clash with the definition)
#[cfg(test)]
start!();

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
    if testing::running() {
        // a #[test]: halt with libtest's code (0 for a #[should_panic] test
        // whose message is as expected); the next test runs in a fresh VM
        testing::panicked(&info.message());
    }
    // The host ends the run here as a crash, with a backtrace and no
    // register dump (the message above says what happened). In user mode
    // the `out` faults, and the guest kernel ends the program; `ud2` is for
    // a host that ignored the port.
    // SAFETY: an `out` to the host's panic port, then #UD; the guest is
    // meant to stop here.
    unsafe {
        core::arch::asm!(
            "out dx, al",
            "ud2",
            in("dx") abi::layout::PANIC_PORT,
            in("al") 0u8,
            options(noreturn)
        )
    }
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
        $crate::real_mode_only!($name, 0);
    };
    // with ABI note flags, e.g. `abi::note::FLAG_IRQ_KERNEL`
    ($name:literal, $flags:expr) => {
        $crate::entry!(@emit main, $flags);
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
