//! Hashes of the contract. [`BASE_FINGERPRINT`] covers everything a guest
//! depends on besides the hypercalls themselves (the memory map, status
//! codes, the string limit, the note flags, SIMVIRTIO); each hypercall's
//! own part is [`Hypercall::desc_hash`] (number, port, transport, block
//! layout). [`FINGERPRINT`] folds both, for display. Nothing here lists a
//! hypercall or a block field: they come from the table and from
//! `abi_block!`.

use crate::{HcStatus, Hypercall, MAX_STR_LEN, layout, note, simvirtio};

/// FNV-1a's offset basis.
pub const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over the 8 little-endian bytes of `v`.
pub const fn fnv(mut h: u64, v: u64) -> u64 {
    let mut i = 0;
    while i < 8 {
        h ^= (v >> (i * 8)) & 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// FNV-1a over the bytes of `s`, then its length.
pub const fn fnv_str(mut h: u64, s: &str) -> u64 {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    fnv(h, b.len() as u64)
}

/// Everything besides the hypercalls that a guest and the host must agree
/// on. A guest built against another base is refused.
pub const BASE_FINGERPRINT: u64 = {
    let mut h = fnv(FNV_BASIS, crate::ABI_VERSION as u64);
    let mut i = 0;
    while i < HcStatus::ALL.len() {
        h = fnv(h, HcStatus::ALL[i] as i32 as u64);
        i += 1;
    }
    let words: [u64; 70] = [
        simvirtio::DRIVER_IRQ as u64,
        simvirtio::INT_USED as u64,
        simvirtio::INT_CONFIG as u64,
        simvirtio::NO_LINE as u64,
        simvirtio::IRQ_LINE as u64,
        layout::LAPIC,
        layout::IOAPIC,
        note::FLAG_IRQ_USER as u64,
        note::FLAG_IRQ_KERNEL as u64,
        <crate::ExceptionReport as crate::block::Block>::LAYOUT.hash() as u64,
        crate::REPORT_ERROR_CODE,
        crate::REPORT_CR2,
        layout::REAL_STUBS,
        layout::REAL_STUBS_END,
        MAX_STR_LEN as u64,
        crate::args::AREA,
        crate::args::AREA_END,
        layout::CHECK_ADDR,
        layout::CHECK_VALUE,
        layout::GDT,
        layout::RESULT_PAGE,
        layout::PAGE_TABLES,
        layout::PAGE_TABLES_END,
        layout::LOW_PT,
        layout::HOST_IDT,
        layout::HOST_IDT_END,
        layout::EXCEPTION_PORT as u64,
        layout::PANIC_PORT as u64,
        layout::STACK_BOTTOM,
        layout::STACK_TOP,
        layout::IMAGE_MIN,
        layout::LOAD_BASE,
        layout::MAX_MEM,
        layout::MIN_MEM,
        layout::REAL_LOAD,
        layout::REAL_END,
        layout::REAL_STACK_TOP,
        layout::PROT32_LOAD,
        layout::VCPU_STACK_SIZE,
        layout::MAX_VCPUS,
        note::TYPE as u64,
        note::FLAG_CHECK_42 as u64,
        note::FLAG_SMP as u64,
        note::FLAG_TESTS as u64,
        note::FLAG_CPUID as u64,
        note::TESTS_LIST,
        note::TEST_FAILED,
        simvirtio::MMIO_BASE,
        simvirtio::MMIO_SIZE,
        simvirtio::MAGIC_VALUE as u64,
        simvirtio::QUEUE_LEN as u64,
        simvirtio::DEVICE_CONFIG as u64,
        simvirtio::DEVICE_READY as u64,
        simvirtio::DEVICE_ERROR as u64,
        simvirtio::DRIVER as u64,
        simvirtio::DRIVER_OK as u64,
        simvirtio::DRIVER_RESET_REG as u64,
        simvirtio::CMD_RESET as u64,
        simvirtio::CMD_CONFIG as u64,
        simvirtio::CTL_NOTIFY as u64,
        simvirtio::CTL_POLLING as u64,
        simvirtio::CTL_BATCH as u64,
        simvirtio::CTL_ERROR as u64,
        simvirtio::reg::END,
        simvirtio::DEVICE_TABLE,
        simvirtio::TX_CONTROL,
        simvirtio::RX_CONTROL,
        simvirtio::TX_BUFFER,
        simvirtio::RX_BUFFER,
        core::mem::size_of::<simvirtio::DeviceTable>() as u64,
    ];
    let mut j = 0;
    while j < words.len() {
        h = fnv(h, words[j]);
        j += 1;
    }
    h
};

impl Hypercall {
    /// What a guest and the host must agree on for this hypercall: its
    /// number, port, transport and argument block (size, alignment, every
    /// field's offset and size).
    pub const fn desc_hash(self) -> u64 {
        let mut h = fnv(FNV_BASIS, self.nr() as u64);
        h = fnv(h, self.port() as u64);
        h = fnv(h, self.transport().code() as u64);
        if let Some(b) = self.block() {
            h = fnv(h, b.hash() as u64);
        }
        h
    }
}

/// The whole contract in one number: the base and every hypercall. `host
/// abi` prints it; the loader compares the parts, hypercall by hypercall.
pub const FINGERPRINT: u64 = {
    let mut h = BASE_FINGERPRINT;
    let mut i = 0;
    while i < Hypercall::COUNT {
        h = fnv(h, Hypercall::ALL[i].desc_hash());
        i += 1;
    }
    h
};
