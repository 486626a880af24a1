//! The contract between guest programs and the host VMM.
//!
//! Both sides compile against this crate; nothing here is restated anywhere
//! else. `docs/abi.md` describes the same contract for C or assembly guests.
//!
//! Transport: every hypercall is exactly one x86 port-I/O instruction, so one
//! VM exit. The port names the hypercall; the 1- or 4-byte I/O data carries a
//! value, a result, or the guest-physical address of a `#[repr(C)]` argument
//! block in which the host writes results and a status. Nothing is passed in
//! registers, so the host never needs a register ioctl to serve a hypercall.
#![no_std]

use core::mem::{align_of, offset_of, size_of};

pub mod simvirtio;

/// Bumped by hand on every incompatible change; the fingerprint below
/// catches the changes a human forgets.
pub const ABI_VERSION: u32 = 1;

/// The classic debug port: `out dx, al` writes one byte to the host's stdout.
pub const PORT_PRINT8BIT: u16 = 0xE9;
/// Hypercall `n` (other than print8bit) lives on port `HC_PORT_BASE + n`.
pub const HC_PORT_BASE: u16 = 0x0500;

/// Longest string `print_str` reads, NUL excluded. A longer one is an error.
pub const MAX_STR_LEN: u32 = 4096;

/// How a hypercall's data moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `out dx, al`: one byte from guest to host.
    Out8,
    /// `out dx, eax`: a 32-bit value from guest to host.
    Out32,
    /// `in eax, dx`: a 32-bit result from host to guest.
    In32,
    /// `out dx, eax` where EAX is the guest-physical address of an argument
    /// block (below 4 GiB); the host writes results and `status` into it.
    OutBlock,
}

/// Every hypercall. The host dispatches with an exhaustive `match` on this
/// enum, so adding a variant without a host handler does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Hypercall {
    /// `print8bit(u8)`: the byte goes to the host's stdout as is.
    Print8bit = 0,
    /// `print32bit(u32)`: printed in decimal followed by exactly one "\n".
    Print32bit = 1,
    /// `num_exits() -> u32`: VM exits of this VM so far, this one included.
    NumExits = 2,
    /// `print_str(ptr)`: a NUL-terminated string, printed as is. Block: [`PrintStrArgs`].
    PrintStr = 3,
    /// `num_exits_by_type() -> ptr`: guest-physical address of
    /// "IO in: x\nIO out: y\n" (NUL-terminated) in the host result page.
    NumExitsByType = 4,
    /// `gva_to_hva(gva) -> u64`: walk the guest's page tables. Block: [`GvaToHvaArgs`].
    GvaToHva = 5,
    /// `host_cpuid() -> u32`: the host CPU running the calling vCPU's thread
    /// at the moment of the exit (sched_getcpu).
    HostCpuid = 6,
}

impl Hypercall {
    /// All hypercalls, in number order.
    pub const ALL: [Hypercall; 7] = [
        Hypercall::Print8bit,
        Hypercall::Print32bit,
        Hypercall::NumExits,
        Hypercall::PrintStr,
        Hypercall::NumExitsByType,
        Hypercall::GvaToHva,
        Hypercall::HostCpuid,
    ];

    /// The hypercall's number.
    pub const fn nr(self) -> u16 {
        self as u16
    }

    /// The I/O port the guest uses for this hypercall.
    pub const fn port(self) -> u16 {
        match self {
            Hypercall::Print8bit => PORT_PRINT8BIT,
            other => HC_PORT_BASE + other.nr(),
        }
    }

    /// Which instruction and data width carry it.
    pub const fn transport(self) -> Transport {
        match self {
            Hypercall::Print8bit => Transport::Out8,
            Hypercall::Print32bit => Transport::Out32,
            Hypercall::NumExits | Hypercall::NumExitsByType | Hypercall::HostCpuid => {
                Transport::In32
            }
            Hypercall::PrintStr | Hypercall::GvaToHva => Transport::OutBlock,
        }
    }

    /// The hypercall on `port`, if any.
    pub const fn from_port(port: u16) -> Option<Hypercall> {
        if port == PORT_PRINT8BIT {
            return Some(Hypercall::Print8bit);
        }
        let mut i = 1;
        while i < Self::ALL.len() {
            if Self::ALL[i].port() == port {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The name used in the assignment, documentation and host output.
    pub const fn name(self) -> &'static str {
        match self {
            Hypercall::Print8bit => "print8bit",
            Hypercall::Print32bit => "print32bit",
            Hypercall::NumExits => "num_exits",
            Hypercall::PrintStr => "print_str",
            Hypercall::NumExitsByType => "num_exits_by_type",
            Hypercall::GvaToHva => "gva_to_hva",
            Hypercall::HostCpuid => "host_cpuid",
        }
    }
}

/// Result of a block hypercall, written by the host into the block's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum HcStatus {
    /// Done.
    Ok = 0,
    /// A pointer (or pointer + length) lies outside guest memory.
    BadPointer = -1,
    /// No NUL within [`MAX_STR_LEN`] bytes.
    Unterminated = -2,
    /// The guest virtual address has no mapping (`gva_to_hva`).
    InvalidGva = -3,
}

impl HcStatus {
    /// The status for a raw value; unknown values are `None`.
    pub const fn from_raw(raw: i32) -> Option<HcStatus> {
        match raw {
            0 => Some(HcStatus::Ok),
            -1 => Some(HcStatus::BadPointer),
            -2 => Some(HcStatus::Unterminated),
            -3 => Some(HcStatus::InvalidGva),
            _ => None,
        }
    }
}

/// Argument block of `print_str`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct PrintStrArgs {
    /// In: guest-physical address of the NUL-terminated string.
    pub addr: u64,
    /// Out: bytes printed (NUL excluded).
    pub len: u32,
    /// Out: an [`HcStatus`] value.
    pub status: i32,
}

/// Argument block of `gva_to_hva`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct GvaToHvaArgs {
    /// In: the guest virtual address to translate.
    pub gva: u64,
    /// Out: the host virtual address, 0 when invalid.
    pub hva: u64,
    /// Out: an [`HcStatus`] value.
    pub status: i32,
    /// Zero.
    pub reserved: u32,
}

const _: () = {
    assert!(size_of::<PrintStrArgs>() == 16);
    assert!(align_of::<PrintStrArgs>() == 8);
    assert!(offset_of!(PrintStrArgs, addr) == 0);
    assert!(offset_of!(PrintStrArgs, len) == 8);
    assert!(offset_of!(PrintStrArgs, status) == 12);
    assert!(size_of::<GvaToHvaArgs>() == 24);
    assert!(align_of::<GvaToHvaArgs>() == 8);
    assert!(offset_of!(GvaToHvaArgs, gva) == 0);
    assert!(offset_of!(GvaToHvaArgs, hva) == 8);
    assert!(offset_of!(GvaToHvaArgs, status) == 16);
    assert!(offset_of!(GvaToHvaArgs, reserved) == 20);
};

/// Guest-physical memory map shared by the host and guests (long mode).
pub mod layout;

/// ELF sections holding a guest program's code for the non-long modes. The
/// code must be position-independent; the host loads the section's bytes at
/// `layout::REAL_LOAD` or `layout::PROT32_LOAD` and starts at its first byte.
pub mod mode_section {
    /// 16-bit real-mode code.
    pub const REAL: &str = crate::real_section!();
    /// 32-bit protected-mode code (flat segments, with or without paging).
    pub const PROT32: &str = crate::prot32_section!();
}

/// The real-mode section name as a literal, for `global_asm!` templates.
#[macro_export]
macro_rules! real_section {
    () => {
        ".kvmwb.real"
    };
}

/// The 32-bit section name as a literal, for `global_asm!` templates.
#[macro_export]
macro_rules! prot32_section {
    () => {
        ".kvmwb.prot32"
    };
}

/// The ELF note every guest carries so the host can refuse a guest built
/// against another ABI. Section `.note.kvmwb.abi`, owner "KVMWB", type 1.
pub mod note;

// The memory map is ordered and the page-table area holds PML4 + PDPT + one
// PD per GiB of the largest memory.
const _: () = {
    use layout::*;
    assert!(CHECK_ADDR < GDT && GDT < RESULT_PAGE && RESULT_PAGE < PAGE_TABLES);
    assert!(PAGE_TABLES < PAGE_TABLES_END && PAGE_TABLES_END <= STACK_BOTTOM);
    assert!(STACK_BOTTOM < STACK_TOP && IMAGE_MIN <= LOAD_BASE);
    assert!(PAGE_TABLES + (2 + (MAX_MEM >> 30)) * 0x1000 <= PAGE_TABLES_END);
    assert!(MIN_MEM > IMAGE_MIN && MAX_MEM <= 0xfffb_d000);
    assert!(PAGE_TABLES_END <= REAL_LOAD && REAL_LOAD < REAL_END && REAL_END < REAL_STACK_TOP);
    assert!(REAL_STACK_TOP <= 0xFFFF);
};

const fn fnv(mut h: u64, v: u64) -> u64 {
    let mut i = 0;
    while i < 8 {
        h ^= (v >> (i * 8)) & 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

const fn transport_code(t: Transport) -> u64 {
    match t {
        Transport::Out8 => 1,
        Transport::Out32 => 2,
        Transport::In32 => 3,
        Transport::OutBlock => 4,
    }
}

/// A hash of everything a guest and the host must agree on: every
/// hypercall's number, port and transport, every layout's size and field
/// offsets, the status codes, the string limit and the memory map.
pub const FINGERPRINT: u64 = {
    let mut h = fnv(0xcbf2_9ce4_8422_2325, ABI_VERSION as u64);
    let mut i = 0;
    while i < Hypercall::ALL.len() {
        let hc = Hypercall::ALL[i];
        h = fnv(h, hc.nr() as u64);
        h = fnv(h, hc.port() as u64);
        h = fnv(h, transport_code(hc.transport()));
        i += 1;
    }
    let words: [u64; 52] = [
        size_of::<PrintStrArgs>() as u64,
        offset_of!(PrintStrArgs, addr) as u64,
        offset_of!(PrintStrArgs, len) as u64,
        offset_of!(PrintStrArgs, status) as u64,
        size_of::<GvaToHvaArgs>() as u64,
        offset_of!(GvaToHvaArgs, gva) as u64,
        offset_of!(GvaToHvaArgs, hva) as u64,
        offset_of!(GvaToHvaArgs, status) as u64,
        HcStatus::Ok as i32 as u64,
        HcStatus::BadPointer as i32 as u64,
        HcStatus::Unterminated as i32 as u64,
        HcStatus::InvalidGva as i32 as u64,
        MAX_STR_LEN as u64,
        layout::CHECK_ADDR,
        layout::CHECK_VALUE,
        layout::GDT,
        layout::RESULT_PAGE,
        layout::PAGE_TABLES,
        layout::PAGE_TABLES_END,
        layout::STACK_BOTTOM,
        layout::STACK_TOP,
        layout::IMAGE_MIN,
        layout::LOAD_BASE,
        layout::MAX_MEM,
        note::TYPE as u64,
        layout::MIN_MEM,
        layout::REAL_LOAD,
        layout::REAL_END,
        layout::REAL_STACK_TOP,
        layout::PROT32_LOAD,
        layout::VCPU_STACK_SIZE,
        layout::MAX_VCPUS,
        note::FLAG_SMP as u64,
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
        simvirtio::CTL_NOTIFY as u64
            | (simvirtio::CTL_POLLING as u64) << 8
            | (simvirtio::CTL_ERROR as u64) << 16,
        simvirtio::reg::END,
        simvirtio::DEVICE_TABLE,
        simvirtio::TX_CONTROL,
        simvirtio::RX_CONTROL,
        simvirtio::TX_BUFFER,
        simvirtio::RX_BUFFER,
    ];
    let mut j = 0;
    while j < words.len() {
        h = fnv(h, words[j]);
        j += 1;
    }
    h
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip_and_are_distinct() {
        for hc in Hypercall::ALL {
            assert_eq!(Hypercall::from_port(hc.port()), Some(hc), "{hc:?}");
            for other in Hypercall::ALL {
                if other != hc {
                    assert_ne!(other.port(), hc.port());
                }
            }
        }
        assert_eq!(Hypercall::from_port(0x10), None);
        assert_eq!(Hypercall::from_port(HC_PORT_BASE), None);
    }

    #[test]
    fn all_is_in_number_order() {
        for (i, hc) in Hypercall::ALL.iter().enumerate() {
            assert_eq!(hc.nr() as usize, i);
        }
    }

    #[test]
    fn status_round_trip() {
        for s in [
            HcStatus::Ok,
            HcStatus::BadPointer,
            HcStatus::Unterminated,
            HcStatus::InvalidGva,
        ] {
            assert_eq!(HcStatus::from_raw(s as i32), Some(s));
        }
        assert_eq!(HcStatus::from_raw(7), None);
    }

    #[test]
    fn note_carries_version_and_fingerprint() {
        let n = note::Note::new(note::FLAG_CHECK_42);
        assert_eq!(n.desc.version, ABI_VERSION);
        assert_eq!(n.desc.fingerprint(), FINGERPRINT);
        assert_eq!(&n.name[..6], note::NAME);
        assert_ne!(FINGERPRINT, 0);
    }
}
