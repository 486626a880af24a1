//! The host's GDT for 32- and 64-bit guests, and the `kvm_segment`s that
//! match its descriptors.

use kvm_bindings::kvm_segment;
use x86_64::structures::gdt::DescriptorFlags;

/// Selector of the code segment in the host's GDT (64-bit in long mode,
/// 32-bit otherwise).
pub const CODE_SELECTOR: u16 = 0x08;
/// Selector of the data segment.
pub const DATA_SELECTOR: u16 = 0x10;

/// The code descriptor for a 64-bit (`long`) or 32-bit guest.
pub fn code_flags(long: bool) -> DescriptorFlags {
    if long {
        DescriptorFlags::KERNEL_CODE64
    } else {
        DescriptorFlags::KERNEL_CODE32
    }
}

/// The three GDT entries: null, code, data.
pub fn entries(long: bool) -> [u64; 3] {
    [
        0,
        code_flags(long).bits(),
        DescriptorFlags::KERNEL_DATA.bits(),
    ]
}

/// The segment register contents for descriptor `flags` at `selector`:
/// base 0, limit 4 GiB, attributes from the descriptor.
pub fn segment(selector: u16, flags: DescriptorFlags) -> kvm_segment {
    let f = flags.bits();
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: ((f >> 40) & 0xf) as u8,
        present: ((f >> 47) & 1) as u8,
        dpl: ((f >> 45) & 3) as u8,
        db: ((f >> 54) & 1) as u8,
        s: ((f >> 44) & 1) as u8,
        l: ((f >> 53) & 1) as u8,
        g: ((f >> 55) & 1) as u8,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_their_descriptors() {
        let c = segment(CODE_SELECTOR, code_flags(true));
        assert_eq!((c.l, c.db, c.s, c.present, c.type_), (1, 0, 1, 1, 0xb));
        let c32 = segment(CODE_SELECTOR, code_flags(false));
        assert_eq!((c32.l, c32.db), (0, 1));
        let d = segment(DATA_SELECTOR, DescriptorFlags::KERNEL_DATA);
        assert_eq!((d.s, d.type_ & 0x8, d.selector), (1, 0, DATA_SELECTOR));
        assert_eq!(entries(true)[0], 0);
    }
}
