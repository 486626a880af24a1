//! ELF images: PT_LOAD segments, a CPU mode's section, the ABI note.

use super::error::{LoadError, MAX_SEGMENTS};
use super::plan::*;
use hypercall_abi::{ABI_VERSION, FINGERPRINT, note};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection};
use std::ops::Range;

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
    use hypercall_abi::layout;

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
