//! The local APIC (xAPIC registers at `layout::LAPIC`, mapped by the host
//! with `--irqchip kernel`). KVM's APIC timer counts at 1 GHz: a count of
//! 1_000_000 with the divider at 1 is a millisecond.

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
