//! The ELF note every guest carries so the host can refuse a guest built
//! against another ABI. Section `.note.kvmwb.abi`, owner "KVMWB", type 1.

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

/// The note's descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Desc {
    /// [`super::ABI_VERSION`] the guest was built with.
    pub version: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Low 32 bits of [`super::FINGERPRINT`] the guest was built with.
    pub fingerprint_lo: u32,
    /// High 32 bits of it (two words keep the note 4-byte aligned, as ELF notes are).
    pub fingerprint_hi: u32,
}

impl Desc {
    /// The fingerprint as one value.
    pub const fn fingerprint(&self) -> u64 {
        (self.fingerprint_hi as u64) << 32 | self.fingerprint_lo as u64
    }
}

/// A whole ELF note (header, padded name, descriptor), as placed in the section.
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
    /// The descriptor.
    pub desc: Desc,
}

impl Note {
    /// The note for this ABI with `flags`.
    pub const fn new(flags: u32) -> Note {
        Note {
            namesz: NAME.len() as u32,
            descsz: core::mem::size_of::<Desc>() as u32,
            ntype: TYPE,
            name: *b"KVMWB\0\0\0",
            desc: Desc {
                version: super::ABI_VERSION,
                flags,
                fingerprint_lo: super::FINGERPRINT as u32,
                fingerprint_hi: (super::FINGERPRINT >> 32) as u32,
            },
        }
    }
}

const _: () = {
    assert!(core::mem::size_of::<Desc>() == 16);
    assert!(core::mem::size_of::<Note>() == 12 + 8 + 16);
    assert!(core::mem::align_of::<Note>() == 4);
    assert!(core::mem::offset_of!(Note, desc) == 20);
};
