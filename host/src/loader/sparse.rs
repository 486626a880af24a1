//! Reads from an ELF file only what loading it needs: its headers, program
//! headers, the section headers and their names, every section and
//! segment that occupies memory, and the symbol table (a crash report
//! names functions). The rest, DWARF above all (a guest keeps
//! full debug info for gdb: ~800 KiB against ~10 KiB of code), stays on
//! disk: the buffer is the file's full length but zero-filled by the
//! allocator's fresh pages, which take no memory until written. Offsets are
//! the file's, so the loader parses the buffer as if it were the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// ELF64 little-endian header fields this needs, at their offsets.
fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    )))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// `budget` once the whole file was read.
const WHOLE: u64 = u64::MAX;

/// Fills `buf[off..off + len]` (clipped to the buffer) from the file.
/// `budget`: bytes left to read; a file whose headers name more than it
/// (overlapping ranges many times over) is read whole once instead.
fn fill(f: &File, buf: &mut [u8], off: u64, len: u64, budget: &mut u64) -> io::Result<()> {
    let Ok(start) = usize::try_from(off) else {
        return Ok(());
    };
    let end = usize::try_from(off.saturating_add(len))
        .unwrap_or(usize::MAX)
        .min(buf.len());
    if start >= end {
        return Ok(());
    }
    if *budget == WHOLE {
        return Ok(()); // the whole file is in already
    }
    let n = (end - start) as u64;
    if n > *budget {
        *budget = WHOLE;
        return f.read_exact_at(buf, 0);
    }
    *budget -= n;
    f.read_exact_at(&mut buf[start..end], off)
}

/// The file's `len` bytes with what loading needs read in (the whole file
/// when it is not a 64-bit little-endian ELF: a flat image is all code).
pub fn read_needed(f: &File, len: u64) -> io::Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
    let mut buf = vec![0u8; n];
    let budget = &mut len.saturating_mul(2);
    fill(f, &mut buf, 0, 64, budget)?;
    let elf64_le = buf.starts_with(b"\x7fELF") && buf.get(4) == Some(&2) && buf.get(5) == Some(&1);
    if !elf64_le {
        f.read_exact_at(&mut buf, 0)?;
        return Ok(buf);
    }
    let h = buf[..64].to_vec();
    let field = |at, size| match size {
        2 => u16_at(&h, at),
        4 => u32_at(&h, at),
        _ => u64_at(&h, at),
    };
    let (phoff, phentsize, phnum) = (field(32, 8), field(54, 2), field(56, 2));
    let (shoff, shentsize, shnum) = (field(40, 8), field(58, 2), field(60, 2));
    if let (Some(off), Some(size), Some(num)) = (phoff, phentsize, phnum) {
        fill(f, &mut buf, off, size.saturating_mul(num), budget)?;
        for i in 0..num {
            let at = off.saturating_add(i.saturating_mul(size));
            let Ok(at) = usize::try_from(at) else { break };
            // p_offset at +8, p_filesz at +32
            if let (Some(o), Some(sz)) = (
                u64_at(&buf, at.saturating_add(8)),
                u64_at(&buf, at.saturating_add(32)),
            ) {
                fill(f, &mut buf, o, sz, budget)?;
            }
        }
    }
    if let (Some(off), Some(size), Some(num)) = (shoff, shentsize, shnum) {
        fill(f, &mut buf, off, size.saturating_mul(num), budget)?;
        let strndx = field(62, 2).unwrap_or(0);
        for i in 0..num {
            let at = off.saturating_add(i.saturating_mul(size));
            let Ok(at) = usize::try_from(at) else { break };
            // sh_type at +4, sh_flags at +8, sh_offset at +24, sh_size at +32
            let (Some(kind), Some(flags), Some(o), Some(sz)) = (
                u32_at(&buf, at.saturating_add(4)),
                u64_at(&buf, at.saturating_add(8)),
                u64_at(&buf, at.saturating_add(24)),
                u64_at(&buf, at.saturating_add(32)),
            ) else {
                continue;
            };
            const SHF_ALLOC: u64 = 2;
            const SHT_NOBITS: u64 = 8;
            // the symbol table and its names (a few KiB) explain a crash
            const SHT_SYMTAB: u64 = 2;
            const SHT_STRTAB: u64 = 3;
            let alloc = flags & SHF_ALLOC != 0 && kind != SHT_NOBITS;
            if alloc || i == strndx || kind == SHT_SYMTAB || kind == SHT_STRTAB {
                fill(f, &mut buf, o, sz, budget)?;
            }
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::read_needed;
    use crate::loader::{Symbols, plan_elf, plan_section};

    #[test]
    fn what_is_read_loads_like_the_whole_file() {
        for g in ["hello", "crash"] {
            let path = crate::guests::resolve(g).unwrap();
            let whole = std::fs::read(&path).unwrap();
            let f = std::fs::File::open(&path).unwrap();
            let part = read_needed(&f, whole.len() as u64).unwrap();
            assert_eq!(part.len(), whole.len());
            let mem = 2 << 20;
            assert_eq!(
                plan_elf(&part, mem).unwrap(),
                plan_elf(&whole, mem).unwrap()
            );
            let area = 0xa000..0xf000;
            let real = hypercall_abi::mode_section::REAL;
            assert_eq!(
                plan_section(&part, real, &area, mem).ok(),
                plan_section(&whole, real, &area, mem).ok()
            );
            // every loaded byte is there
            for s in &plan_elf(&part, mem).unwrap().segments {
                assert_eq!(part[s.file.clone()], whole[s.file.clone()]);
            }
            // the symbols too; the DWARF is not
            let (sp, sw) = (Symbols::from_elf(&part), Symbols::from_elf(&whole));
            for a in (0x100000..0x100400).step_by(8) {
                assert_eq!(sp.lookup(a), sw.lookup(a));
            }
            assert!(sp.lookup(0x100008).is_some(), "{g}: functions named");
            let read = part
                .iter()
                .zip(&whole)
                .filter(|(a, b)| a == b && **b != 0)
                .count();
            let nonzero = whole.iter().filter(|b| **b != 0).count();
            assert!(
                read * 4 < nonzero,
                "{g}: most of the file (DWARF) is not read"
            );
        }
    }
}
