//! Why an image cannot be loaded.

use hypercall_abi::{ABI_VERSION, BASE_FINGERPRINT, layout, note};

/// Most PT_LOAD segments a guest may have.
pub const MAX_SEGMENTS: usize = 64;

/// Why an image cannot be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    /// Empty file.
    #[error("the file is empty")]
    Empty,
    /// Not parseable as a 64-bit ELF.
    #[error("not a loadable ELF file: {0}")]
    NotElf(String),
    /// Wrong machine or type.
    #[error("not an x86-64 executable ELF (e_machine {machine}, e_type {etype})")]
    WrongKind {
        /// e_machine.
        machine: u16,
        /// e_type.
        etype: u16,
    },
    /// No PT_LOAD segment with contents.
    #[error("the ELF has no loadable segment")]
    NoSegments,
    /// More segments than [`MAX_SEGMENTS`].
    #[error("the ELF has {0} loadable segments (at most {MAX_SEGMENTS})")]
    TooManySegments(usize),
    /// p_filesz > p_memsz.
    #[error("segment {index}: file size {filesz:#x} is larger than its memory size {memsz:#x}")]
    FileszOverMemsz {
        /// Segment index among PT_LOADs.
        index: usize,
        /// p_filesz.
        filesz: u64,
        /// p_memsz.
        memsz: u64,
    },
    /// p_offset + p_filesz past the end of the file.
    #[error("segment {index}: bytes {offset:#x}+{filesz:#x} lie outside the {file_len}-byte file")]
    OutsideFile {
        /// Segment index.
        index: usize,
        /// p_offset.
        offset: u64,
        /// p_filesz.
        filesz: u64,
        /// File length.
        file_len: usize,
    },
    /// vaddr != paddr: guests run identity-mapped.
    #[error(
        "segment {index}: virtual address {vaddr:#x} differs from physical {paddr:#x} (guests run identity-mapped)"
    )]
    NotIdentity {
        /// Segment index.
        index: usize,
        /// p_vaddr.
        vaddr: u64,
        /// p_paddr.
        paddr: u64,
    },
    /// Overlaps the host's page tables, GDT or stack.
    #[error(
        "{what} at {start:#x}..{end:#x} overlaps the host's GDT, page tables and stack (below {:#x})",
        layout::IMAGE_MIN
    )]
    OverHostArea {
        /// "segment 2" or "flat image".
        what: String,
        /// Start GPA.
        start: u64,
        /// End GPA.
        end: u64,
    },
    /// Ends beyond guest memory.
    #[error("too little memory: {what} ends at {end:#x} but guest memory is {} ({})", crate::size::human(*mem), if *need <= layout::MAX_MEM { format!("try --mem {}", crate::size::human(*need)) } else { format!("no guest memory fits it: the largest is {}", crate::size::human(layout::MAX_MEM)) })]
    TooLittleMemory {
        /// What does not fit.
        what: String,
        /// End GPA.
        end: u64,
        /// Guest memory size.
        mem: u64,
        /// The smallest memory that would fit (rounded to 1 MiB).
        need: u64,
    },
    /// Outside the area the CPU mode allows (real mode: the first 64 KiB).
    #[error(
        "{what} at {start:#x}..{end:#x} must lie within {area_start:#x}..{area_end:#x} in this CPU mode"
    )]
    OutsideArea {
        /// What.
        what: String,
        /// Start GPA.
        start: u64,
        /// End GPA.
        end: u64,
        /// Allowed start.
        area_start: u64,
        /// Allowed end.
        area_end: u64,
    },
    /// The ELF has no code for the requested CPU mode.
    #[error("the ELF has no {0} section: this guest has no code for that CPU mode")]
    NoModeSection(&'static str),
    /// Two segments share addresses.
    #[error("segments {a} and {b} overlap")]
    Overlap {
        /// First segment.
        a: usize,
        /// Second segment.
        b: usize,
    },
    /// Entry point not in an executable loaded segment.
    #[error("entry point {0:#x} is not inside an executable loaded segment")]
    BadEntry(u64),
    /// The ELF has no ABI note.
    #[error(
        "the ELF has no hypercall ABI note (section {}): build guests with guest-rt, or add the note as docs/abi.md shows",
        note::SECTION
    )]
    NoAbiNote,
    /// The note is malformed.
    #[error("the hypercall ABI note is malformed: {0}")]
    BadAbiNote(&'static str),
    /// A note of another format.
    #[error(
        "the guest's hypercall ABI note is version {0}, this host reads version {ABI_VERSION}: rebuild the guest with this workspace's guest-rt (or write the note as docs/abi.md section 6 shows)"
    )]
    AbiVersion(u32),
    /// Flag bits this ABI does not define.
    #[error(
        "the guest's ABI note sets flag bits {0:#x}, which this host does not know (it knows {known:#x}): rebuild the guest", known = note::FLAGS_KNOWN
    )]
    AbiFlags(u32),
    /// Built against another memory map or device ABI.
    #[error(
        "the guest was built against another memory map or device ABI (base fingerprint {0:#018x}, this host's is {BASE_FINGERPRINT:#018x}): rebuild the guest"
    )]
    AbiBase(u64),
    /// A hypercall the guest calls differs from this host's, or is missing.
    #[error("the guest's hypercall ABI differs from this host's: {0}")]
    AbiHypercall(String),
}
