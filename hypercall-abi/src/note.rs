//! The ELF note every guest carries so the host can check what the guest
//! was built against, hypercall by hypercall. Section `.note.kvmwb.abi`,
//! owner "KVMWB", type 1. Descriptor: a [`Header`], then one [`Entry`] per
//! hypercall the program calls, each followed by a [`FieldRec`] per field
//! of its argument block, to the end of the descriptor.
//!
//! A Rust guest's note lists exactly the hypercalls it links: each typed
//! wrapper in guest-rt names its entry (a [`Listing`] in a section of its
//! own, `.kvmwb.abi.hc.NAME`) with a relocation that emits no code, the
//! linker drops the entries nobody names (`--gc-sections`), and
//! linker/guest.ld writes the note's header around the ones that stay.
//! So a guest built after a hypercall was added, but not calling it, runs
//! on a host built before.

use crate::{Hypercall, Transport};

/// Section name.
pub const SECTION: &str = ".note.kvmwb.abi";
/// Note owner name (NUL included in `namesz`).
pub const NAME: &[u8; 6] = b"KVMWB\0";
/// Note type.
pub const TYPE: u32 = 1;
/// Flag: the host checks 42 at [`super::layout::CHECK_ADDR`] and in RAX at HLT.
pub const FLAG_CHECK_42: u32 = 1;
/// The program runs on several vCPUs (`guest_rt::smp_entry!`): its
/// entry reads the vCPU id from RDI. Without it the host refuses
/// `--vcpus` above 1.
pub const FLAG_SMP: u32 = 2;
/// A test build (`cargo test`): the program runs `#[test]` functions, not
/// `main`. At entry RDX says what to do: [`TESTS_LIST`] (print each test's
/// name on a line of its own, then halt; after the name, a tab and
/// `should_panic`, and a tab and `ignored` or `ignored=reason`, mark such
/// tests) or a test's index (run it; halt with RAX 0 when it passes,
/// [`TEST_FAILED`] when it fails).
pub const FLAG_TESTS: u32 = 4;
/// RDX at entry of a test build: list the tests.
pub const TESTS_LIST: u64 = u64::MAX;
/// RAX at HLT of a test build whose test panicked (libtest's exit code).
pub const TEST_FAILED: u64 = 101;
/// The vCPUs report the CPU features KVM supports (KVM_GET_SUPPORTED_CPUID,
/// with each vCPU's APIC id). The guest kernel needs them (KVM refuses
/// EFER.SCE for SYSCALL without them), and so does a program that reads
/// CPUID. Without this flag the host skips that query and KVM_SET_CPUID2
/// (~0.4 ms of a ~4 ms run) and CPUID reports no features.
/// `guest_rt::user_program!` and `smp_entry!` set it; `entry!(main, cpuid)`
/// asks for it.
pub const FLAG_CPUID: u32 = 8;
/// The program takes interrupts from a user-space controller: the host
/// injects vectors with KVM_INTERRUPT when the guest can take one
/// (`host run --irqchip user`, the default for such a program). HLT still
/// exits to the host.
pub const FLAG_IRQ_USER: u32 = 16;
/// The program takes interrupts from KVM's in-kernel controllers (PIC,
/// IOAPIC, local APICs) and PIT (`--irqchip kernel`, the default for such
/// a program): classic PC code that programs the PIC and the PIT runs as
/// is. HLT then sleeps in the kernel; a HLT with interrupts off still
/// ends the run.
pub const FLAG_IRQ_KERNEL: u32 = 32;
/// Every flag this ABI defines.
pub const FLAGS_KNOWN: u32 =
    FLAG_CHECK_42 | FLAG_SMP | FLAG_TESTS | FLAG_CPUID | FLAG_IRQ_USER | FLAG_IRQ_KERNEL;
/// Bytes for a hypercall's name in an [`Entry`] (and a field's in a
/// [`FieldRec`]), NUL included.
pub const NAME_LEN: usize = 20;
/// Bytes for a field's type in a [`FieldRec`], NUL-padded.
pub const TYPE_LEN: usize = 8;
/// Section of the note's [`Header`] (`guest_rt::entry!` puts it there;
/// linker/guest.ld places it after the ELF note header it writes).
pub const HEADER_SECTION: &str = ".kvmwb.abi.header";
/// Prefix of the sections of the [`Listing`]s, one per hypercall.
pub const ENTRY_SECTION_PREFIX: &str = ".kvmwb.abi.hc.";

/// The start of the descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Header {
    /// [`super::ABI_VERSION`] the guest was built with: the note's format.
    pub version: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Low 32 bits of [`super::BASE_FINGERPRINT`] the guest was built with.
    pub base_lo: u32,
    /// High 32 bits of it (two words keep the note 4-byte aligned).
    pub base_hi: u32,
}

impl Header {
    /// This ABI's header with `flags`.
    pub const fn new(flags: u32) -> Header {
        Header {
            version: super::ABI_VERSION,
            flags,
            base_lo: super::BASE_FINGERPRINT as u32,
            base_hi: (super::BASE_FINGERPRINT >> 32) as u32,
        }
    }

    /// The base fingerprint as one value.
    pub const fn base(&self) -> u64 {
        (self.base_hi as u64) << 32 | self.base_lo as u64
    }
}

/// One hypercall the guest calls, as it was built to call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Entry {
    /// The name, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// The number.
    pub nr: u16,
    /// The port.
    pub port: u16,
    /// [`Transport::code`].
    pub transport: u8,
    /// How many [`FieldRec`]s follow this entry: its block's fields (0:
    /// no block).
    pub fields: u8,
    /// The argument block's size (0: none).
    pub block_size: u16,
    /// [`crate::block::BlockLayout::hash`] of the block (0: none).
    pub block_layout: u32,
}

impl Entry {
    /// This ABI's entry for `hc`.
    pub const fn of(hc: Hypercall) -> Entry {
        let name = padded(hc.name());
        let (block_size, block_layout) = match hc.block() {
            Some(b) => (b.size as u16, b.hash()),
            None => (0, 0),
        };
        Entry {
            name,
            nr: hc.nr(),
            port: hc.port(),
            transport: hc.transport().code(),
            fields: match hc.block() {
                Some(b) => b.fields.len() as u8,
                None => 0,
            },
            block_size,
            block_layout,
        }
    }

    /// The name up to its NUL ("?" if it is not UTF-8).
    pub fn name_str(&self) -> &str {
        until_nul(&self.name)
    }

    /// The transport this entry names, if it is one.
    pub const fn transport(&self) -> Option<Transport> {
        match self.transport {
            1 => Some(Transport::Out8),
            2 => Some(Transport::Out32),
            3 => Some(Transport::In32),
            4 => Some(Transport::OutBlock),
            _ => None,
        }
    }
}

/// `bytes` up to the first NUL ("?" if that is not UTF-8).
pub fn until_nul(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..end]).unwrap_or("?")
}

/// One field of a hypercall's argument block, after its [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FieldRec {
    /// The field's name, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// Its offset in the block.
    pub offset: u16,
    /// Its size.
    pub size: u16,
    /// Its Rust type (`u64`, `i32`, ...), NUL-padded.
    pub ty: [u8; TYPE_LEN],
}

/// `s` NUL-padded to `N` bytes (cut to `N - 1`).
const fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && i < N - 1 {
        out[i] = b[i];
        i += 1;
    }
    out
}

impl FieldRec {
    /// The record of `f`.
    pub const fn of(f: &crate::block::Field) -> FieldRec {
        FieldRec {
            name: padded(f.name),
            offset: f.offset as u16,
            size: f.size as u16,
            ty: padded(f.ty),
        }
    }

    /// The name up to its NUL.
    pub fn name_str(&self) -> &str {
        until_nul(&self.name)
    }

    /// The type up to its NUL.
    pub fn ty_str(&self) -> &str {
        until_nul(&self.ty)
    }
}

/// How many fields `hc`'s block has (0: none): the `N` of its [`Listing`].
pub const fn field_count(hc: Hypercall) -> usize {
    match hc.block() {
        Some(b) => b.fields.len(),
        None => 0,
    }
}

/// A hypercall's entry with its block's fields, as a guest places it in
/// `.kvmwb.abi.hc.NAME`; `N` is [`field_count`].
#[derive(Clone, Copy, Debug)]
#[repr(C, align(4))]
pub struct Listing<const N: usize> {
    /// The entry.
    pub entry: Entry,
    /// Its block's fields.
    pub fields: [FieldRec; N],
}

impl<const N: usize> Listing<N> {
    /// This ABI's listing of `hc` (`N` must be its [`field_count`]).
    pub const fn of(hc: Hypercall) -> Listing<N> {
        assert!(N == field_count(hc), "a listing has one record per field");
        let empty = FieldRec {
            name: [0; NAME_LEN],
            offset: 0,
            size: 0,
            ty: [0; TYPE_LEN],
        };
        let mut fields = [empty; N];
        if let Some(b) = hc.block() {
            let mut i = 0;
            while i < N {
                fields[i] = FieldRec::of(&b.fields[i]);
                i += 1;
            }
        }
        Listing {
            entry: Entry::of(hc),
            fields,
        }
    }
}

/// Bytes of `hc`'s listing in a descriptor.
pub const fn listing_size(hc: Hypercall) -> usize {
    core::mem::size_of::<Entry>() + field_count(hc) * core::mem::size_of::<FieldRec>()
}

/// Size of the descriptor of a note listing every hypercall of this ABI.
pub const fn full_desc_size() -> usize {
    let mut n = core::mem::size_of::<Header>();
    let mut i = 0;
    while i < Hypercall::COUNT {
        n += listing_size(Hypercall::ALL[i]);
        i += 1;
    }
    n
}

const _: () = {
    assert!(core::mem::size_of::<Header>() == 16);
    assert!(core::mem::size_of::<Entry>() == 32);
    assert!(core::mem::size_of::<FieldRec>() == 32);
    assert!(core::mem::offset_of!(Entry, nr) == 20);
    assert!(core::mem::offset_of!(Entry, fields) == 25);
    assert!(core::mem::offset_of!(Entry, block_layout) == 28);
    assert!(core::mem::offset_of!(FieldRec, ty) == 24);
    assert!(core::mem::size_of::<Listing<3>>() == 32 + 3 * 32);
    // every name and type fits its record with a NUL
    let mut i = 0;
    while i < Hypercall::COUNT {
        if let Some(b) = Hypercall::ALL[i].block() {
            assert!(b.fields.len() < 256, "a block has at most 255 fields");
            let mut j = 0;
            while j < b.fields.len() {
                assert!(
                    b.fields[j].name.len() < NAME_LEN,
                    "a block field's name fits the note (19 bytes)"
                );
                assert!(
                    b.fields[j].ty.len() < TYPE_LEN,
                    "a block field's type fits the note"
                );
                j += 1;
            }
        }
        i += 1;
    }
};
