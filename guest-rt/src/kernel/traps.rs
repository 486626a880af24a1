//! Exceptions: one report line, then the user program ends (or, in the
//! kernel, a report to the host, which ends the run as a crash).

use super::boot::*;
use super::frame::TrapFrame;
use super::syscalls::*;
use crate::sys::FAULT_STATUS_BASE;
use x86_64::registers::control::Cr2;

pub(super) const NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS", "#NP", "#SS",
    "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25",
    "#26", "#27", "#HV", "#VC", "#SX", "#31",
];

/// RFLAGS.IF.
const IF: u64 = 1 << 9;

/// Why a #GP happened, from the instruction at RIP (user memory only).
pub(super) fn gp_reason(rip: u64) -> &'static str {
    if !check_user(rip, 16) {
        return "general protection fault";
    }
    // SAFETY: 16 bytes at rip lie in the user image (checked above).
    let code = unsafe { core::slice::from_raw_parts(rip as *const u8, 16) };
    // Skip legacy prefixes and REX.
    let op = code
        .iter()
        .copied()
        .find(|b| {
            !matches!(
                b,
                0x66 | 0x67 | 0xf2 | 0xf3 | 0x2e | 0x3e | 0x26 | 0x36 | 0x64 | 0x65 | 0x40..=0x4f
            )
        })
        .unwrap_or(0);
    match op {
        0xe4..=0xe7 | 0xec..=0xef | 0x6c..=0x6f => "port I/O is not allowed in user mode",
        0xf4 => "hlt is not allowed in user mode",
        0xfa | 0xfb => "cli/sti are not allowed in user mode",
        0x0f => "privileged instruction",
        _ => "general protection fault",
    }
}

/// Rust side of every exception. From user mode: one report line, then the
/// program ends with status 128 + vector. From the kernel: a report, then a
/// deliberate triple fault, which the host reports as a crash.
#[unsafe(no_mangle)]
pub(super) extern "C" fn kvmwb_trap(f: &mut TrapFrame) {
    if f.vector == u64::from(super::tasks::TIMER_VECTOR) {
        // returns only when the interrupted program goes on
        super::tasks::tick(f);
        return;
    }
    let name = NAMES[(f.vector & 31) as usize];
    if f.cs & 3 == 3 && f.vector == 6 && check_user(f.rip, 2) {
        // kvm-pvm raises #UD for `int n` at CPL3 instead of using the
        // gate: serve `int 0x80` / `int 0x81` as the gate would have.
        // SAFETY: two bytes at RIP lie in the user image (checked).
        let op = unsafe { core::ptr::read(f.rip as *const [u8; 2]) };
        if op[0] == 0xcd && (op[1] == 0x80 || op[1] == 0x81) {
            let via = if op[1] == 0x80 {
                VIA_INT80_UD
            } else {
                VIA_FORWARD_UD
            };
            f.rax = kvmwb_syscall(f.rax, f.rdi, f.rsi, f.rdx, via) as u64;
            f.rip += 2;
            if via == VIA_FORWARD_UD {
                // SYSCALL cleared IF and the forward's POPFQ at CPL3
                // cannot set it again: the IRETQ does, from the program's
                // RFLAGS in R11 (a preemptible program has it)
                f.rflags = (f.rflags & !IF) | (f.r11 & IF);
            }
            return;
        }
    }
    if f.cs & 3 == 3 {
        match f.vector {
            13 => crate::println!(
                "user program: #GP at RIP {:#x}, {}",
                f.rip,
                gp_reason(f.rip)
            ),
            14 => {
                let addr = Cr2::read_raw();
                let why = if f.error & 1 == 0 {
                    "not mapped"
                } else if f.error & 2 != 0 {
                    "write to a read-only or kernel page"
                } else {
                    "kernel page"
                };
                crate::println!(
                    "user program: #PF at RIP {:#x}, address {addr:#x}: {why}",
                    f.rip
                )
            }
            v => crate::println!(
                "user program: {name} (vector {v}) at RIP {:#x}, error code {:#x}",
                f.rip,
                f.error
            ),
        }
        // a trap from CPL3 runs on the stack below KVMWB_KERNEL_RSP
        // (TSS.RSP0), which tasks::end leaves
        super::tasks::end(FAULT_STATUS_BASE + f.vector as i64)
    }
    crate::println!(
        "kernel: {name} at RIP {:#x}, error code {:#x}, RSP {:#x}: reporting it to the host",
        f.rip,
        f.error,
        f.rsp
    );
    report(f)
}

/// Hands a kernel fault to the host (`hypercall_abi::ExceptionReport` on
/// the exception port), which ends the run as a crash with these
/// registers: exception, source line, backtrace, as for a program without
/// an IDT of its own.
fn report(f: &TrapFrame) -> ! {
    use crate::abi::{REPORT_CR2, REPORT_ERROR_CODE};
    let has_code = matches!(f.vector, 8 | 10..=14 | 17 | 21 | 29 | 30);
    let flags =
        if has_code { REPORT_ERROR_CODE } else { 0 } | if f.vector == 14 { REPORT_CR2 } else { 0 };
    let r = crate::interrupts::report_of!(f, flags, f.error, Cr2::read_raw());
    crate::interrupts::send_report(&r)
}
