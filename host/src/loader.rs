//! Guest images: ELF executables (parsed with `object`) and flat binaries.
//!
//! Parsing produces a [`Plan`]: what goes where, fully checked against the
//! guest's memory size and the host's own structures, before one byte is
//! written to guest memory. Files are untrusted: every offset, size and
//! address is checked with overflow-free arithmetic.

use hypercall_abi::{ABI_VERSION, FINGERPRINT, layout, note};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection};
use std::ops::Range;

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
    #[error("too little memory: {what} ends at {end:#x} but guest memory is {} (try --mem {})", crate::size::human(*mem), crate::size::human(*need))]
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
    /// Built against another ABI.
    #[error(
        "guest built against hypercall ABI v{guest_version} (fingerprint {guest_fp:#018x}), but this host speaks v{ABI_VERSION} (fingerprint {FINGERPRINT:#018x}): rebuild the guest against this host's hypercall-abi"
    )]
    AbiMismatch {
        /// Guest's version.
        guest_version: u32,
        /// Guest's fingerprint.
        guest_fp: u64,
    },
}

/// One piece of the image: `file[file]` goes to `gpa`, followed by
/// `memsz - file.len()` zero bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub gpa: u64,
    /// Byte range in the file.
    pub file: Range<usize>,
    /// Size in memory (>= file length).
    pub memsz: u64,
    /// Executable.
    pub exec: bool,
}

impl Segment {
    /// Guest-physical range covered.
    pub fn range(&self) -> Range<u64> {
        self.gpa..self.gpa + self.memsz
    }
}

/// What kind of image it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// ELF executable.
    Elf,
    /// Flat binary.
    Flat,
}

/// A checked loading plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// ELF or flat.
    pub kind: ImageKind,
    /// Segments, sorted by address, non-overlapping, inside guest memory.
    pub segments: Vec<Segment>,
    /// Entry point (guest physical = virtual).
    pub entry: u64,
    /// The ABI note's flags (0 for flat images).
    pub flags: u32,
}

impl Plan {
    /// Highest guest-physical address used, exclusive.
    pub fn end(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.gpa + s.memsz)
            .max()
            .unwrap_or(0)
    }
}

fn check_place_in(
    what: &str,
    start: u64,
    memsz: u64,
    area: &Range<u64>,
    mem: u64,
) -> Result<(), LoadError> {
    if area.start == layout::IMAGE_MIN {
        return check_place(what, start, memsz, mem);
    }
    let end = start.saturating_add(memsz);
    if start < area.start || end > area.end {
        return Err(LoadError::OutsideArea {
            what: what.to_string(),
            start,
            end,
            area_start: area.start,
            area_end: area.end,
        });
    }
    Ok(())
}

fn check_place(what: &str, start: u64, memsz: u64, mem: u64) -> Result<(), LoadError> {
    let end = start.checked_add(memsz).ok_or(LoadError::TooLittleMemory {
        what: what.to_string(),
        end: u64::MAX,
        mem,
        need: u64::MAX,
    })?;
    if start < layout::IMAGE_MIN {
        return Err(LoadError::OverHostArea {
            what: what.to_string(),
            start,
            end,
        });
    }
    if end > mem {
        let need = end.div_ceil(1 << 20).saturating_mul(1 << 20);
        return Err(LoadError::TooLittleMemory {
            what: what.to_string(),
            end,
            mem,
            need,
        });
    }
    Ok(())
}

/// Checks a flat image of `len` bytes to be loaded and entered at `addr`
/// (long or 32-bit mode: at or above `layout::IMAGE_MIN`).
pub fn plan_flat(len: usize, addr: u64, mem: u64) -> Result<Plan, LoadError> {
    plan_flat_in(len, addr, &(layout::IMAGE_MIN..mem), mem)
}

/// `plan_flat` for an image area of a given CPU mode (`CpuMode::image_area`).
pub fn plan_flat_in(len: usize, addr: u64, area: &Range<u64>, mem: u64) -> Result<Plan, LoadError> {
    if len == 0 {
        return Err(LoadError::Empty);
    }
    check_place_in("flat image", addr, len as u64, area, mem)?;
    Ok(Plan {
        kind: ImageKind::Flat,
        segments: vec![Segment {
            gpa: addr,
            file: 0..len,
            memsz: len as u64,
            exec: true,
        }],
        entry: addr,
        flags: 0,
    })
}

/// Parses and checks an ELF guest for a VM with `mem` bytes of memory.
pub fn plan_elf(bytes: &[u8], mem: u64) -> Result<Plan, LoadError> {
    let (file, flags) = open_guest(bytes)?;
    let e = file.endian();
    let hdr = file.elf_header();

    let mut segments = Vec::new();
    for ph in file.elf_program_headers() {
        if ph.p_type(e) != elf::PT_LOAD || ph.p_memsz(e) == 0 {
            continue;
        }
        let index = segments.len();
        if index == MAX_SEGMENTS {
            let n = file
                .elf_program_headers()
                .iter()
                .filter(|p| p.p_type(e) == elf::PT_LOAD)
                .count();
            return Err(LoadError::TooManySegments(n));
        }
        let (offset, filesz, memsz) = (ph.p_offset(e), ph.p_filesz(e), ph.p_memsz(e));
        let (vaddr, paddr) = (ph.p_vaddr(e), ph.p_paddr(e));
        if filesz > memsz {
            return Err(LoadError::FileszOverMemsz {
                index,
                filesz,
                memsz,
            });
        }
        let file_range = offset
            .checked_add(filesz)
            .filter(|&end| end <= bytes.len() as u64)
            .map(|end| offset as usize..end as usize)
            .ok_or(LoadError::OutsideFile {
                index,
                offset,
                filesz,
                file_len: bytes.len(),
            })?;
        if vaddr != paddr {
            return Err(LoadError::NotIdentity {
                index,
                vaddr,
                paddr,
            });
        }
        check_place(&format!("segment {index}"), paddr, memsz, mem)?;
        segments.push(Segment {
            gpa: paddr,
            file: file_range,
            memsz,
            exec: ph.p_flags(e).0 & elf::PF_X.0 != 0,
        });
    }
    if segments.is_empty() {
        return Err(LoadError::NoSegments);
    }
    let mut order: Vec<usize> = (0..segments.len()).collect();
    order.sort_by_key(|&i| segments[i].gpa);
    for w in order.windows(2) {
        if segments[w[0]].range().end > segments[w[1]].gpa {
            return Err(LoadError::Overlap {
                a: w[0].min(w[1]),
                b: w[0].max(w[1]),
            });
        }
    }
    let entry = hdr.e_entry(e);
    if !segments
        .iter()
        .any(|s| s.exec && s.range().contains(&entry))
    {
        return Err(LoadError::BadEntry(entry));
    }
    segments.sort_by_key(|s| s.gpa);
    Ok(Plan {
        kind: ImageKind::Elf,
        segments,
        entry,
        flags,
    })
}

/// Parses an x86-64 executable ELF and checks its ABI note; returns the
/// file and the note's flags.
fn open_guest(bytes: &[u8]) -> Result<(ElfFile64<'_, Endianness>, u32), LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    let file =
        ElfFile64::<Endianness>::parse(bytes).map_err(|e| LoadError::NotElf(e.to_string()))?;
    let e = file.endian();
    let hdr = file.elf_header();
    let (machine, etype) = (hdr.e_machine(e), hdr.e_type(e));
    if machine != elf::EM_X86_64 || etype != elf::ET_EXEC {
        return Err(LoadError::WrongKind {
            machine: machine.0,
            etype: etype.0,
        });
    }
    let flags = abi_note(&file)?;
    Ok((file, flags))
}

/// Cuts a guest ELF's position-independent code for a non-long CPU mode
/// (section `name`, see `hypercall_abi::mode_section`) out as a flat image
/// loaded and entered at `area.start`.
pub fn plan_section(
    bytes: &[u8],
    name: &'static str,
    area: &Range<u64>,
    mem: u64,
) -> Result<Plan, LoadError> {
    let (file, flags) = open_guest(bytes)?;
    let sec = file
        .section_by_name(name)
        .ok_or(LoadError::NoModeSection(name))?;
    let (offset, size) = sec.file_range().ok_or(LoadError::NoModeSection(name))?;
    let end = offset
        .checked_add(size)
        .filter(|&e| e <= bytes.len() as u64)
        .ok_or(LoadError::OutsideFile {
            index: 0,
            offset,
            filesz: size,
            file_len: bytes.len(),
        })?;
    let mut plan = plan_flat_in(size as usize, area.start, area, mem)?;
    plan.kind = ImageKind::Elf;
    plan.flags = flags;
    plan.segments[0].file = offset as usize..end as usize;
    Ok(plan)
}

/// Reads and checks the ABI note; returns its flags.
fn abi_note(file: &ElfFile64<Endianness>) -> Result<u32, LoadError> {
    let sec = file
        .section_by_name(note::SECTION)
        .ok_or(LoadError::NoAbiNote)?;
    let data = sec
        .data()
        .map_err(|_| LoadError::BadAbiNote("section data lies outside the file"))?;
    let desc = parse_note(data)?;
    if desc.version != ABI_VERSION || desc.fingerprint() != FINGERPRINT {
        return Err(LoadError::AbiMismatch {
            guest_version: desc.version,
            guest_fp: desc.fingerprint(),
        });
    }
    Ok(desc.flags)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Finds the KVMWB note among the notes in `data` and decodes its descriptor.
pub fn parse_note(data: &[u8]) -> Result<note::Desc, LoadError> {
    let mut at = 0usize;
    while at < data.len() {
        let hdr = |o| u32_at(data, at + o).ok_or(LoadError::BadAbiNote("truncated note header"));
        let (namesz, descsz, ntype) = (hdr(0)? as usize, hdr(4)? as usize, hdr(8)?);
        let name_at = at + 12;
        let desc_at = name_at
            .checked_add(namesz.next_multiple_of(4))
            .ok_or(LoadError::BadAbiNote("name size overflows"))?;
        let next = desc_at
            .checked_add(descsz.next_multiple_of(4))
            .ok_or(LoadError::BadAbiNote("descriptor size overflows"))?;
        let name = data
            .get(name_at..name_at + namesz)
            .ok_or(LoadError::BadAbiNote("name runs past the section"))?;
        let desc = data
            .get(desc_at..desc_at + descsz)
            .ok_or(LoadError::BadAbiNote("descriptor runs past the section"))?;
        if name == note::NAME && ntype == note::TYPE {
            if descsz != core::mem::size_of::<note::Desc>() {
                return Err(LoadError::BadAbiNote("descriptor has the wrong size"));
            }
            let w = |o| u32_at(desc, o).unwrap_or(0);
            return Ok(note::Desc {
                version: w(0),
                flags: w(4),
                fingerprint_lo: w(8),
                fingerprint_hi: w(12),
            });
        }
        at = next;
    }
    Err(LoadError::NoAbiNote)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEM: u64 = 2 << 20;

    #[test]
    fn flat_placement() {
        let p = plan_flat(16, layout::IMAGE_MIN, MEM).unwrap();
        assert_eq!(p.entry, layout::IMAGE_MIN);
        assert_eq!(p.end(), layout::IMAGE_MIN + 16);
        assert!(matches!(
            plan_flat(16, 0x1000, MEM),
            Err(LoadError::OverHostArea { .. })
        ));
        assert!(matches!(
            plan_flat(16, MEM - 8, MEM),
            Err(LoadError::TooLittleMemory { need, .. }) if need == 3 << 20
        ));
        assert!(matches!(
            plan_flat(16, u64::MAX - 4, MEM),
            Err(LoadError::TooLittleMemory { .. })
        ));
        assert_eq!(plan_flat(0, layout::IMAGE_MIN, MEM), Err(LoadError::Empty));
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert!(matches!(
            plan_elf(b"\x7fELF garbage", MEM),
            Err(LoadError::NotElf(_))
        ));
        assert_eq!(plan_elf(b"", MEM), Err(LoadError::Empty));
    }

    #[test]
    fn note_parsing() {
        let n = note::Note::new(note::FLAG_CHECK_42);
        // SAFETY: Note is repr(C), 4-byte aligned, with no padding (asserted
        // in hypercall-abi); viewing it as bytes is sound.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                (&n as *const note::Note).cast::<u8>(),
                core::mem::size_of::<note::Note>(),
            )
        };
        let d = parse_note(bytes).unwrap();
        assert_eq!(d.version, ABI_VERSION);
        assert_eq!(d.fingerprint(), FINGERPRINT);
        assert_eq!(d.flags, note::FLAG_CHECK_42);
        // another note first, then ours
        let mut two = vec![4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, b'G', b'N', b'U', 0];
        two.extend_from_slice(bytes);
        assert_eq!(parse_note(&two).unwrap(), d);
        // truncations never panic
        for cut in 0..bytes.len() {
            assert!(parse_note(&bytes[..cut]).is_err());
        }
        // absurd sizes
        let mut huge = bytes.to_vec();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_note(&huge).is_err());
    }
}
