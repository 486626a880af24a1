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

pub mod args;
pub mod block;
pub mod fingerprint;
pub mod report;
pub mod serve;
pub mod simvirtio;

pub use fingerprint::{BASE_FINGERPRINT, FINGERPRINT};
pub use report::{ExceptionReport, REPORT_CR2, REPORT_ERROR_CODE};

/// The ABI note's format and the contract's generation. Additive changes (a
/// new hypercall) do not change it: each guest's note lists the hypercalls
/// it calls, and the host checks those one by one. Version 3: the note
/// lists only the hypercalls the guest links, each with its block's fields.
pub const ABI_VERSION: u32 = 3;

/// Longest string `print_str` reads, NUL excluded. A longer one is an error.
pub const MAX_STR_LEN: u32 = 4096;

/// The one declaration of every hypercall. Each row is
///
/// ```text
/// NR Variant name = PORT: Transport;            // Out8, Out32 or In32
/// NR Variant name = PORT: OutBlock(BlockType);  // an argument block
/// ```
///
/// and everything else is derived from this table: the [`Hypercall`] enum,
/// [`Hypercall::ALL`], names, ports, transports, port lookup, the argument
/// block of each, the fingerprint, the ELF note entries and the host's
/// typed handlers ([`serve::Handlers`]) here; the guest's typed wrappers
/// (`guest_rt::hc::raw`); `host abi` and the tables in docs/abi.md. `hypercalls!(m)` hands the table to the macro `m!`.
///
/// docs/abi.md, "Adding a hypercall", walks through adding a row.
#[macro_export]
macro_rules! hypercalls {
    ($then:ident) => {
        $then! {
            /// `print8bit(u8)`: the byte goes to the host's stdout as is.
            0 Print8bit print8bit = 0x00e9: Out8;
            /// `print32bit(u32)`: printed in decimal followed by exactly one "\n".
            1 Print32bit print32bit = 0x0501: Out32;
            /// `num_exits() -> u32`: VM exits of this VM so far, this one included.
            2 NumExits num_exits = 0x0502: In32;
            /// `print_str(ptr)`: a NUL-terminated string, printed as is.
            3 PrintStr print_str = 0x0503: OutBlock($crate::PrintStrArgs);
            /// `num_exits_by_type() -> ptr`: guest-physical address of
            /// "IO in: x\nIO out: y\n" (NUL-terminated) in the host result page.
            4 NumExitsByType num_exits_by_type = 0x0504: In32;
            /// `gva_to_hva(gva) -> u64`: walk the guest's page tables.
            5 GvaToHva gva_to_hva = 0x0505: OutBlock($crate::GvaToHvaArgs);
            /// `host_cpuid() -> u32`: the host CPU running the calling vCPU's
            /// thread at the moment of the exit (sched_getcpu).
            6 HostCpuid host_cpuid = 0x0506: In32;
            /// `snapshot(u32)`: "my set-up is done": with `host run --snapshot
            /// FILE` (`--snapshot-at call`, the default) the host saves the VM
            /// right after this call, which a restore then returns from; the
            /// value is the guest's own tag. Otherwise nothing happens.
            7 Snapshot snapshot = 0x0507: Out32;
        }
    };
}

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

impl Transport {
    /// The instruction the guest executes.
    pub const fn instruction(self) -> &'static str {
        match self {
            Transport::Out8 => "out dx, al",
            Transport::Out32 | Transport::OutBlock => "out dx, eax",
            Transport::In32 => "in eax, dx",
        }
    }

    /// What the I/O data carries.
    pub const fn carries(self) -> &'static str {
        match self {
            Transport::Out8 => "the byte",
            Transport::Out32 => "the value",
            Transport::In32 => "the result",
            Transport::OutBlock => "GPA of the argument block",
        }
    }

    /// Whether an access (`out`: direction, `size`: bytes) is this transport.
    pub const fn accepts(self, out: bool, size: usize) -> bool {
        match self {
            Transport::Out8 => out && size == 1,
            Transport::Out32 | Transport::OutBlock => out && size == 4,
            Transport::In32 => !out && size == 4,
        }
    }

    /// The number the fingerprint and the ELF note use.
    pub const fn code(self) -> u8 {
        match self {
            Transport::Out8 => 1,
            Transport::Out32 => 2,
            Transport::In32 => 3,
            Transport::OutBlock => 4,
        }
    }
}

/// Expands the table into the enum and its tables (see [`hypercalls!`]).
macro_rules! define_hypercalls {
    ($( $(#[doc = $doc:literal])* $nr:literal $v:ident $name:ident = $port:literal : $t:ident $(($b:ty))? ; )*) => {
        /// Every hypercall, from [`hypercalls!`]. The host serves them
        /// through [`serve::Handlers`], one typed method per row, so a
        /// hypercall declared without a host handler does not compile.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Hypercall {
            $( $(#[doc = $doc])* $v = $nr, )*
        }

        impl Hypercall {
            /// How many hypercalls there are.
            pub const COUNT: usize = [$(stringify!($v)),*].len();

            /// All hypercalls, in table order.
            pub const ALL: [Hypercall; Self::COUNT] = [$(Hypercall::$v),*];

            /// The name used in the assignment, documentation and host output.
            pub const fn name(self) -> &'static str {
                match self { $(Hypercall::$v => stringify!($name),)* }
            }

            /// The I/O port the guest uses for this hypercall.
            pub const fn port(self) -> u16 {
                match self { $(Hypercall::$v => $port,)* }
            }

            /// Which instruction and data width carry it.
            pub const fn transport(self) -> Transport {
                match self { $(Hypercall::$v => Transport::$t,)* }
            }

            /// Its documentation, from the table.
            pub const fn doc(self) -> &'static str {
                match self { $(Hypercall::$v => concat!($($doc),*),)* }
            }

            /// Its argument block's layout (`OutBlock` hypercalls only).
            pub const fn block(self) -> Option<&'static $crate::block::BlockLayout> {
                match self { $(Hypercall::$v => define_hypercalls!(@block $($b)?),)* }
            }
        }
    };
    (@block) => { None };
    (@block $b:ty) => { Some(&<$b as $crate::block::Block>::LAYOUT) };
}

hypercalls!(define_hypercalls);

/// The classic debug port: `out dx, al` writes one byte to the host's stdout.
pub const PORT_PRINT8BIT: u16 = Hypercall::Print8bit.port();

impl Hypercall {
    /// The hypercall's number.
    pub const fn nr(self) -> u16 {
        self as u16
    }

    /// The hypercall on `port`, if any.
    pub const fn from_port(port: u16) -> Option<Hypercall> {
        let mut i = 0;
        while i < Self::COUNT {
            if Self::ALL[i].port() == port {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }
}

// The table is consistent: numbers, names and ports are unique, names fit
// the ELF note, and a hypercall has a block exactly when it is `OutBlock`.
// A clash names both rows: "hypercalls `add` and `mul` both use port 0x507".
const _: () = {
    let all = Hypercall::ALL;
    let mut i = 0;
    while i < all.len() {
        let h = all[i];
        assert!(
            h.name().len() < note::NAME_LEN,
            "a hypercall name must fit the ELF note (19 bytes)"
        );
        assert!(
            matches!(h.transport(), Transport::OutBlock) == h.block().is_some(),
            "an OutBlock hypercall names its block, and only it"
        );
        let mut j = i + 1;
        while j < all.len() {
            if all[j].port() == h.port() {
                clash(h, all[j], "port", h.port());
            }
            if all[j].nr() == h.nr() {
                clash(h, all[j], "number", h.nr());
            }
            j += 1;
        }
        i += 1;
    }
};

/// Stops the build with "hypercalls `A` and `B` both use WHAT 0xN".
const fn clash(a: Hypercall, b: Hypercall, what: &str, n: u16) {
    let mut buf = [0u8; 96];
    let mut at = 0;
    let parts: [&[u8]; 6] = [
        b"hypercalls `",
        a.name().as_bytes(),
        b"` and `",
        b.name().as_bytes(),
        b"` both use ",
        what.as_bytes(),
    ];
    let mut p = 0;
    while p < parts.len() {
        let mut k = 0;
        while k < parts[p].len() && at < buf.len() {
            buf[at] = parts[p][k];
            at += 1;
            k += 1;
        }
        p += 1;
    }
    let digits = b"0123456789abcdef";
    let hex = *b" 0x";
    let mut k = 0;
    while k < hex.len() {
        buf[at] = hex[k];
        at += 1;
        k += 1;
    }
    let mut shift = 12;
    let mut started = false;
    loop {
        let d = ((n >> shift) & 0xf) as usize;
        if d != 0 || started || shift == 0 {
            buf[at] = digits[d];
            at += 1;
            started = true;
        }
        if shift == 0 {
            break;
        }
        shift -= 4;
    }
    let (msg, _) = buf.split_at(at);
    match core::str::from_utf8(msg) {
        Ok(m) => panic!("{}", m),
        Err(_) => panic!("two hypercalls share a port or number"),
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
    /// Every status.
    pub const ALL: [HcStatus; 4] = [
        HcStatus::Ok,
        HcStatus::BadPointer,
        HcStatus::Unterminated,
        HcStatus::InvalidGva,
    ];

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

abi_block! {
    /// Argument block of `print_str`.
    pub struct PrintStrArgs {
        /// In: guest-physical address of the NUL-terminated string.
        pub addr: u64,
        /// Out: bytes printed (NUL excluded).
        pub len: u32,
        /// Out: an [`HcStatus`] value.
        pub status: i32,
    }
}

abi_block! {
    /// Argument block of `gva_to_hva`.
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
}

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
    assert!(
        CHECK_ADDR + 8 <= REAL_STUBS
            && REAL_STUBS + 256 * 8 == REAL_STUBS_END
            && REAL_STUBS_END <= GDT
    );
    // the arguments area: after the SIMVIRTIO device table, before the
    // host's IDT (long mode) and real-mode code
    assert!(crate::simvirtio::DEVICE_TABLE + 0x400 <= crate::args::AREA);
    assert!(crate::args::AREA_END <= HOST_IDT && crate::args::AREA_END <= REAL_LOAD);
};

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use block::Block;
    use std::{boxed::Box, vec::Vec};

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
        assert_eq!(Hypercall::from_port(0x500), None);
    }

    #[test]
    fn all_is_in_number_order_and_counts_the_table() {
        for (i, hc) in Hypercall::ALL.iter().enumerate() {
            assert_eq!(hc.nr() as usize, i);
        }
        assert_eq!(Hypercall::ALL.len(), Hypercall::COUNT);
        assert_eq!(PORT_PRINT8BIT, 0xe9);
    }

    #[test]
    fn status_round_trip() {
        for s in HcStatus::ALL {
            assert_eq!(HcStatus::from_raw(s as i32), Some(s));
        }
        assert_eq!(HcStatus::from_raw(7), None);
    }

    #[test]
    fn blocks_record_every_field() {
        let p = PrintStrArgs::LAYOUT;
        assert_eq!((p.size, p.align), (16, 8));
        let offsets: Vec<_> = p
            .fields
            .iter()
            .map(|f| (f.name, f.offset, f.size))
            .collect();
        assert_eq!(offsets, [("addr", 0, 8), ("len", 8, 4), ("status", 12, 4)]);
        assert_eq!(
            p.fields[0].doc,
            " In: guest-physical address of the NUL-terminated string."
        );
        let g = GvaToHvaArgs::LAYOUT;
        assert_eq!((g.size, g.fields[3].offset), (24, 20));
        assert_eq!(Hypercall::PrintStr.block(), Some(&PrintStrArgs::LAYOUT));
        assert_eq!(Hypercall::NumExits.block(), None);
    }

    #[test]
    fn a_moved_field_changes_the_layout_hash() {
        abi_block! {
            /// Like PrintStrArgs with two fields swapped.
            pub struct Swapped {
                /// a
                pub addr: u64,
                /// b
                pub status: i32,
                /// c
                pub len: u32,
            }
        }
        abi_block! {
            /// Like PrintStrArgs with one more field.
            pub struct Longer {
                /// a
                pub addr: u64,
                /// b
                pub len: u32,
                /// c
                pub status: i32,
                /// d
                pub extra: u64,
            }
        }
        let base = PrintStrArgs::LAYOUT.hash();
        // the block's own name is not part of the ABI
        let mut same = PrintStrArgs::LAYOUT;
        same.name = "Other";
        assert_eq!(same.hash(), base);
        // two fields of one size swapped: same size, different layout
        assert_eq!(Swapped::LAYOUT.size, PrintStrArgs::LAYOUT.size);
        assert_ne!(Swapped::LAYOUT.hash(), base);
        let mut moved = PrintStrArgs::LAYOUT;
        let mut fields = [PrintStrArgs::LAYOUT.fields[0]; 3];
        fields.copy_from_slice(PrintStrArgs::LAYOUT.fields);
        fields[1].offset = 12;
        fields[2].offset = 8;
        fields[2].size = 2;
        let fields: &'static [block::Field] = Box::leak(Box::new(fields));
        moved.fields = fields;
        assert_ne!(moved.hash(), base);
        assert_ne!(Longer::LAYOUT.hash(), base);
    }

    #[test]
    fn listings_carry_entry_and_fields() {
        let h = note::Header::new(note::FLAG_CHECK_42);
        assert_eq!(h.version, ABI_VERSION);
        assert_eq!(h.base(), BASE_FINGERPRINT);
        let ps: note::Listing<3> = note::Listing::of(Hypercall::PrintStr);
        let e = ps.entry;
        assert_eq!((e.name_str(), e.nr, e.port), ("print_str", 3, 0x503));
        assert_eq!(
            (e.transport(), e.block_size, e.fields),
            (Some(Transport::OutBlock), 16, 3)
        );
        assert_eq!(e.block_layout, PrintStrArgs::LAYOUT.hash());
        let f: std::vec::Vec<_> = ps
            .fields
            .iter()
            .map(|f| (f.name_str(), f.offset, f.size, f.ty_str()))
            .collect();
        assert_eq!(
            f,
            [
                ("addr", 0, 8, "u64"),
                ("len", 8, 4, "u32"),
                ("status", 12, 4, "i32")
            ]
        );
        let p8: note::Listing<0> = note::Listing::of(Hypercall::Print8bit);
        assert_eq!((p8.entry.fields, p8.entry.block_size), (0, 0));
        assert_eq!(note::listing_size(Hypercall::GvaToHva), 32 + 4 * 32);
        assert_ne!(FINGERPRINT, BASE_FINGERPRINT);
    }
}
