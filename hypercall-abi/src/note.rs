//! The ELF note every guest carries so the host can check what the guest
//! was built against, hypercall by hypercall. Section `.note.kvmwb.abi`,
//! owner "KVMWB", type 1. Descriptor: a [`Header`] then `count`
//! [`Entry`]s, one per hypercall the guest was built with.

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
/// name on a line of its own, then halt) or a test's index (run it; halt
/// with RAX 0 when it passes, [`TEST_FAILED`] when it panics).
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
/// Every flag this ABI defines.
pub const FLAGS_KNOWN: u32 = FLAG_CHECK_42 | FLAG_SMP | FLAG_TESTS | FLAG_CPUID;
/// Bytes for a hypercall's name in an [`Entry`], NUL included.
pub const NAME_LEN: usize = 20;

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
    /// How many [`Entry`]s follow.
    pub count: u32,
}

impl Header {
    /// The base fingerprint as one value.
    pub const fn base(&self) -> u64 {
        (self.base_hi as u64) << 32 | self.base_lo as u64
    }
}

/// One hypercall as the guest was built to call it.
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
    /// Zero.
    pub reserved: u8,
    /// The argument block's size (0: none).
    pub block_size: u16,
    /// [`crate::block::BlockLayout::hash`] of the block (0: none).
    pub block_layout: u32,
}

impl Entry {
    /// This ABI's entry for `hc`.
    pub const fn of(hc: Hypercall) -> Entry {
        let mut name = [0u8; NAME_LEN];
        let n = hc.name().as_bytes();
        let mut i = 0;
        while i < n.len() && i < NAME_LEN - 1 {
            name[i] = n[i];
            i += 1;
        }
        let (block_size, block_layout) = match hc.block() {
            Some(b) => (b.size as u16, b.hash()),
            None => (0, 0),
        };
        Entry {
            name,
            nr: hc.nr(),
            port: hc.port(),
            transport: hc.transport().code(),
            reserved: 0,
            block_size,
            block_layout,
        }
    }

    /// The name up to its NUL ("?" if it is not UTF-8).
    pub fn name_str(&self) -> &str {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..end]).unwrap_or("?")
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

/// Size of a descriptor with `count` entries.
pub const fn desc_size(count: usize) -> usize {
    core::mem::size_of::<Header>() + count * core::mem::size_of::<Entry>()
}

/// A whole ELF note (header, padded name, descriptor) for every hypercall
/// of this ABI, as placed in the section.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(4))]
pub struct Note {
    /// Length of the name, NUL included.
    pub namesz: u32,
    /// Length of the descriptor.
    pub descsz: u32,
    /// [`TYPE`].
    pub ntype: u32,
    /// [`NAME`], padded to 4 bytes.
    pub name: [u8; 8],
    /// The descriptor's header.
    pub header: Header,
    /// One entry per hypercall.
    pub entries: [Entry; Hypercall::COUNT],
}

impl Note {
    /// The note for this ABI with `flags`.
    pub const fn new(flags: u32) -> Note {
        let mut entries = [Entry::of(Hypercall::ALL[0]); Hypercall::COUNT];
        let mut i = 0;
        while i < Hypercall::COUNT {
            entries[i] = Entry::of(Hypercall::ALL[i]);
            i += 1;
        }
        Note {
            namesz: NAME.len() as u32,
            descsz: desc_size(Hypercall::COUNT) as u32,
            ntype: TYPE,
            name: *b"KVMWB\0\0\0",
            header: Header {
                version: super::ABI_VERSION,
                flags,
                base_lo: super::BASE_FINGERPRINT as u32,
                base_hi: (super::BASE_FINGERPRINT >> 32) as u32,
                count: Hypercall::COUNT as u32,
            },
            entries,
        }
    }
}

const _: () = {
    assert!(core::mem::size_of::<Header>() == 20);
    assert!(core::mem::size_of::<Entry>() == 32);
    assert!(core::mem::offset_of!(Entry, nr) == 20);
    assert!(core::mem::offset_of!(Entry, block_layout) == 28);
    assert!(core::mem::align_of::<Note>() == 4);
    assert!(core::mem::offset_of!(Note, header) == 20);
    assert!(core::mem::offset_of!(Note, entries) == 40);
    assert!(core::mem::size_of::<Note>() == 20 + desc_size(Hypercall::COUNT));
};
