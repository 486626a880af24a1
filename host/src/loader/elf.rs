//! ELF images: PT_LOAD segments, a CPU mode's section, the ABI note.

use super::error::{LoadError, MAX_SEGMENTS};
use super::plan::*;
use hypercall_abi::note;
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
    // guest_rt::heap!'s area, for `host layout`
    let heap = super::symbols::find(&file, b"__guest_rt_heap_area");
    Ok(Plan {
        kind: ImageKind::Elf,
        segments,
        entry,
        flags,
        heap,
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
    super::note::check(&super::note::parse_note(data)?)
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
}
