//! The IOAPIC (registers at `layout::IOAPIC`, mapped by the host with
//! `--irqchip kernel`): where a device's IRQ line goes.

use crate::abi::layout::IOAPIC;

fn select(reg: u32) {
    // SAFETY: IOREGSEL of the IOAPIC, uncached MMIO the host mapped.
    unsafe { core::ptr::write_volatile(IOAPIC as *mut u32, reg) }
}

fn write(reg: u32, v: u32) {
    select(reg);
    // SAFETY: IOWIN, 0x10 past IOREGSEL.
    unsafe { core::ptr::write_volatile((IOAPIC + 0x10) as *mut u32, v) }
}

/// Sends pin `pin` (a GSI below 24) as `vector` to the local APIC with
/// id `apic_id`: fixed delivery, physical destination, edge-triggered,
/// unmasked. KVM raises a GSI below 16 on the PICs too: mask them
/// first ([`super::pic_mask_all`]).
pub fn route(pin: u8, vector: u8, apic_id: u8) {
    let at = 0x10 + 2 * u32::from(pin);
    write(at + 1, u32::from(apic_id) << 24);
    write(at, u32::from(vector));
}

/// Masks pin `pin` again.
pub fn mask(pin: u8) {
    write(0x10 + 2 * u32::from(pin), 1 << 16);
}
