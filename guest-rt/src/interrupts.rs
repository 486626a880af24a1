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
    "2:  push rax",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push rbp",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov rdi, rsp",
    "    mov rbp, rsp",
    "    and rsp, -16",
    "    call __guest_rt_irq",
    "    mov rsp, rbp",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rbp",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rbx",
    "    pop rax",
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

/// The local APIC (xAPIC registers at `layout::LAPIC`, mapped by the host
/// with `--irqchip kernel`). KVM's APIC timer counts at 1 GHz: a count of
/// 1_000_000 with the divider at 1 is a millisecond.
pub mod lapic {
    use crate::abi::layout::LAPIC;

    fn reg(offset: usize) -> *mut u32 {
        (LAPIC as usize + offset) as *mut u32
    }

    fn write(offset: usize, v: u32) {
        // SAFETY: an APIC register: uncached MMIO the host mapped.
        unsafe { core::ptr::write_volatile(reg(offset), v) }
    }

    fn read(offset: usize) -> u32 {
        // SAFETY: as in `write`.
        unsafe { core::ptr::read_volatile(reg(offset)) }
    }

    /// Software-enables the APIC (spurious vector 0xff).
    pub fn enable() {
        write(0xf0, read(0xf0) | 0x100 | 0xff);
    }

    /// This vCPU's APIC id.
    pub fn id() -> u32 {
        read(0x20) >> 24
    }

    /// End of interrupt.
    pub fn eoi() {
        write(0xb0, 0);
    }

    /// The timer, periodic: `vector` every `count` ticks.
    pub fn timer_periodic(vector: u8, count: u32) {
        write(0x3e0, 0xb); // divide by 1
        write(0x320, u32::from(vector) | 1 << 17);
        write(0x380, count);
    }

    /// The timer, once: `vector` after `count` ticks.
    pub fn timer_oneshot(vector: u8, count: u32) {
        write(0x3e0, 0xb);
        write(0x320, u32::from(vector));
        write(0x380, count);
    }

    /// Whether the CPU offers the TSC-deadline mode (CPUID.1:ECX bit 24).
    pub fn has_tsc_deadline() -> bool {
        let c = core::arch::x86_64::__cpuid(1);
        c.ecx & (1 << 24) != 0
    }

    /// The timer in TSC-deadline mode on `vector`: it fires when the TSC
    /// reaches the value given to [`set_deadline`] (only where
    /// [`has_tsc_deadline`]).
    pub fn timer_deadline(vector: u8) {
        write(0x320, u32::from(vector) | 2 << 17);
    }

    /// Arms the TSC-deadline timer (IA32_TSC_DEADLINE, MSR 0x6e0): one
    /// interrupt when the TSC reaches `tsc`; 0 disarms it.
    pub fn set_deadline(tsc: u64) {
        // SAFETY: WRMSR of IA32_TSC_DEADLINE, which exists where
        // has_tsc_deadline() (the caller's contract in timer_deadline).
        unsafe {
            core::arch::asm!("wrmsr", in("ecx") 0x6e0u32, in("eax") tsc as u32,
                in("edx") (tsc >> 32) as u32, options(nomem, nostack, preserves_flags))
        };
    }

    /// The timer's current count (0 when a one-shot count has run out).
    pub fn timer_current() -> u32 {
        read(0x390)
    }

    /// The in-service (ISR) and requested (IRR) bits of `vector`.
    pub fn in_service(vector: u8) -> (bool, bool) {
        let (word, bit) = (usize::from(vector / 32), vector % 32);
        let isr = read(0x100 + word * 0x10) >> bit & 1 != 0;
        let irr = read(0x200 + word * 0x10) >> bit & 1 != 0;
        (isr, irr)
    }

    /// Stops and masks the timer (any mode).
    pub fn timer_stop() {
        write(0x320, 1 << 16);
        write(0x380, 0);
    }

    /// The time-stamp counter.
    pub fn rdtsc() -> u64 {
        // SAFETY: RDTSC reads the TSC (CR4.TSD is clear).
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// Sends `vector` to the vCPU whose APIC id is `apic_id` (fixed
    /// delivery, physical destination).
    pub fn send_ipi(apic_id: u32, vector: u8) {
        write(0x310, apic_id << 24);
        write(0x300, u32::from(vector) | 1 << 14);
    }
}
