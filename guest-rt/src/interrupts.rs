//! Interrupts for long-mode guests, as ordinary Rust: handlers registered
//! by vector ([`set_handler`]), [`enable`]/[`disable`]/[`wait`], end of
//! interrupt for the local APIC ([`lapic::eoi`]) and the PIC
//! ([`pic_eoi`]), and the local APIC timer ([`lapic`]), with KVM's
//! in-kernel controller (`--irqchip kernel`: `entry!(main, irq_kernel)`
//! asks for it).
//!
//! The first [`set_handler`] loads an IDT of guest-rt's: vectors 0-31 keep
//! the gates of the IDT in use (the host's, whose stubs report an
//! exception with the crash report), vectors 32-255 lead to 16-byte stubs
//! that save every register and call the handler. A vector with no
//! handler ends the run with a report (`hypercall_abi::ExceptionReport`).

use crate::abi::{ExceptionReport, layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The registers the stub saved, and what the CPU pushed.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// The general registers at the interrupt.
    pub r15: u64,
    /// R14.
    pub r14: u64,
    /// R13.
    pub r13: u64,
    /// R12.
    pub r12: u64,
    /// R11.
    pub r11: u64,
    /// R10.
    pub r10: u64,
    /// R9.
    pub r9: u64,
    /// R8.
    pub r8: u64,
    /// RBP.
    pub rbp: u64,
    /// RDI.
    pub rdi: u64,
    /// RSI.
    pub rsi: u64,
    /// RDX.
    pub rdx: u64,
    /// RCX.
    pub rcx: u64,
    /// RBX.
    pub rbx: u64,
    /// RAX.
    pub rax: u64,
    /// The vector.
    pub vector: u64,
    /// Where the interrupt came: RIP, CS, RFLAGS, RSP, SS.
    pub rip: u64,
    /// CS.
    pub cs: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// RSP.
    pub rsp: u64,
    /// SS.
    pub ss: u64,
}

/// The IDT: 256 gates of 16 bytes.
#[repr(C, align(16))]
struct Idt(UnsafeCell<[u64; 512]>);
// SAFETY: written once, under INIT, before it is loaded; read by the CPU.
unsafe impl Sync for Idt {}
static IDT: Idt = Idt(UnsafeCell::new([0; 512]));
static INIT: AtomicBool = AtomicBool::new(false);
/// The handler of each vector (0: none), as `fn(&mut Frame)` addresses.
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Runs `f` at every interrupt on `vector` (32-255), on the interrupted
/// stack with interrupts off; it sends the end of interrupt itself
/// ([`lapic::eoi`], [`pic_eoi`]). Loads guest-rt's IDT on first use (all
/// vCPUs share it; each vCPU that takes interrupts calls this or
/// [`load`]).
pub fn set_handler(vector: u8, f: fn(&mut Frame)) {
    assert!(vector >= 32, "vectors 0-31 are the CPU's exceptions");
    HANDLERS[usize::from(vector)].store(f as usize, Ordering::Release);
    load();
}

/// Builds guest-rt's IDT once and loads it on this vCPU.
pub fn load() {
    if !INIT.swap(true, Ordering::AcqRel) {
        build();
    }
    let ptr = DescriptorTablePointer {
        limit: 256 * 16 - 1,
        base: IDT.0.get() as u64,
    };
    // SAFETY: the IDT is built (above) and lives for the program.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags))
    };
}

#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

fn build() {
    let mut old = DescriptorTablePointer { limit: 0, base: 0 };
    // SAFETY: sidt writes 10 bytes into `old`.
    unsafe { core::arch::asm!("sidt [{}]", in(reg) &mut old, options(nostack, preserves_flags)) };
    let cs: u16;
    // SAFETY: reads CS.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: written before anyone loads it (INIT was false); the CPU
    // reads it only after `lidt`.
    let idt = unsafe { &mut *IDT.0.get() };
    let (old_base, old_limit) = (old.base, old.limit);
    for v in 0..32usize {
        if (v * 16 + 15) as u64 <= u64::from(old_limit) {
            // SAFETY: the current IDT (the host's, identity-mapped) covers
            // this gate: the limit says so.
            let g = unsafe { core::ptr::read((old_base as usize + v * 16) as *const [u64; 2]) };
            idt[2 * v] = g[0];
            idt[2 * v + 1] = g[1];
        }
    }
    let stubs = core::ptr::addr_of!(__guest_rt_irq_stubs) as u64;
    for v in 32..256u64 {
        let target = stubs + (v - 32) * 16;
        idt[2 * v as usize] = (target & 0xffff)
            | (u64::from(cs) << 16)
            | (0x8e << 40) // present, DPL 0, 64-bit interrupt gate
            | (((target >> 16) & 0xffff) << 48);
        idt[2 * v as usize + 1] = target >> 32;
    }
}

unsafe extern "C" {
    static __guest_rt_irq_stubs: u8;
}

/// The stubs' register save: every general register but RSP, RAX pushed
/// first, so that R15 is at the lowest address: the layout of [`Frame`]
/// and of the guest kernel's `TrapFrame` (one definition for both).
macro_rules! push_regs {
    () => {
        "push rax\n push rbx\n push rcx\n push rdx\n push rsi\n push rdi\n push rbp\n push r8\n push r9\n push r10\n push r11\n push r12\n push r13\n push r14\n push r15"
    };
}
/// The restore that undoes [`push_regs`].
macro_rules! pop_regs {
    () => {
        "pop r15\n pop r14\n pop r13\n pop r12\n pop r11\n pop r10\n pop r9\n pop r8\n pop rbp\n pop rdi\n pop rsi\n pop rdx\n pop rcx\n pop rbx\n pop rax"
    };
}
pub(crate) use {pop_regs, push_regs};

// Vectors 32-255: a 16-byte stub each (push the vector, jump to the common
// part), which saves every register, calls `__guest_rt_irq` with the
// frame (RSP 16-byte aligned), restores and returns.
core::arch::global_asm!(
    ".pushsection .text.__guest_rt_irq_stubs, \"ax\"",
    ".balign 16",
    ".global __guest_rt_irq_stubs",
    "__guest_rt_irq_stubs:",
    ".set vec, 32",
    ".rept 224",
    ".balign 16",
    "    push vec",
    "    jmp 2f",
    ".set vec, vec + 1",
    ".endr",
    "2:",
    push_regs!(),
    "    mov rdi, rsp",
    "    mov rbp, rsp",
    "    and rsp, -16",
    "    call __guest_rt_irq",
    "    mov rsp, rbp",
    pop_regs!(),
    "    add rsp, 8",
    "    iretq",
    ".popsection",
);

#[unsafe(no_mangle)]
extern "C" fn __guest_rt_irq(f: &mut Frame) {
    let h = HANDLERS[(f.vector & 0xff) as usize].load(Ordering::Acquire);
    if h == 0 {
        report(f);
    }
    // SAFETY: HANDLERS holds only addresses of `fn(&mut Frame)` (set_handler).
    let h: fn(&mut Frame) = unsafe { core::mem::transmute::<usize, fn(&mut Frame)>(h) };
    h(f);
}

/// A vector with no handler: the host ends the run with a report.
fn report(f: &Frame) -> ! {
    send_report(&report_of!(f, 0, 0, 0))
}

/// The registers an interrupt stub saved (guest-rt's [`Frame`], the guest
/// kernel's `TrapFrame`: the same names) as a report for the host.
macro_rules! report_of {
    ($f:expr, $flags:expr, $error:expr, $cr2:expr) => {{
        let f = $f;
        $crate::abi::ExceptionReport {
            vector: f.vector,
            flags: $flags,
            error_code: $error,
            cr2: $cr2,
            rip: f.rip,
            cs: f.cs,
            rflags: f.rflags,
            rsp: f.rsp,
            ss: f.ss,
            rax: f.rax,
            rbx: f.rbx,
            rcx: f.rcx,
            rdx: f.rdx,
            rsi: f.rsi,
            rdi: f.rdi,
            rbp: f.rbp,
            r8: f.r8,
            r9: f.r9,
            r10: f.r10,
            r11: f.r11,
            r12: f.r12,
            r13: f.r13,
            r14: f.r14,
            r15: f.r15,
        }
    }};
}
pub(crate) use report_of;

/// Hands `r` to the host (`out` on the exception port with EAX = its
/// address), which ends the run as a crash with these registers.
pub(crate) fn send_report(r: &ExceptionReport) -> ! {
    loop {
        // SAFETY: an `out` to the host's exception port with EAX = the
        // report's address (identity-mapped below 4 GiB): the host reads
        // it and ends the run; `hlt` is never reached.
        unsafe {
            core::arch::asm!(
                "out dx, eax",
                "hlt",
                in("dx") layout::EXCEPTION_PORT,
                in("eax") r as *const ExceptionReport as usize as u32,
                options(nostack)
            )
        }
    }
}

/// Lets interrupts in (`sti`).
pub fn enable() {
    // SAFETY: sets IF; handlers are guest-rt's or the host's.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
}

/// Keeps interrupts out (`cli`).
pub fn disable() {
    // SAFETY: clears IF.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// Sleeps until an interrupt (`sti; hlt`: the interrupt cannot slip in
/// between); interrupts are on afterwards.
pub fn wait() {
    // SAFETY: sti's shadow covers hlt; the handler runs, then hlt returns.
    unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
}

/// End of interrupt for the 8259 PIC (IRQ `irq`: the second PIC too for
/// 8-15).
pub fn pic_eoi(irq: u8) {
    // SAFETY: port I/O to the PIC's command ports (KVM's in-kernel PIC).
    unsafe {
        if irq >= 8 {
            core::arch::asm!("out 0xa0, al", in("al") 0x20u8, options(nomem, nostack));
        }
        core::arch::asm!("out 0x20, al", in("al") 0x20u8, options(nomem, nostack));
    }
}

/// Masks every IRQ of both 8259 PICs (OCW1 on ports 0x21 and 0xa1). A
/// program that routes lines through the IOAPIC does this first: KVM wires
/// the PIC to the first vCPU's LINT0 as ExtINT, and an unprogrammed PIC
/// (vector base 0) would turn, e.g., IRQ 11 into vector 3 (#BP).
pub fn pic_mask_all() {
    // SAFETY: port I/O to the PICs' data ports (KVM's in-kernel PIC).
    unsafe {
        core::arch::asm!("out 0xa1, al", in("al") 0xffu8, options(nomem, nostack));
        core::arch::asm!("out 0x21, al", in("al") 0xffu8, options(nomem, nostack));
    }
}

pub mod ioapic;
pub mod lapic;
