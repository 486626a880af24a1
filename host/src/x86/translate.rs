//! GVA -> GPA -> HVA: walks the guest's own page tables, read from guest
//! memory through vm-memory's checked accessors. The guest controls every
//! byte of those tables, so every table address is checked and the walk is
//! bounded by the number of levels: a table that points at itself (a loop)
//! or outside memory ends the walk with an error, never a hang or a panic.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;
use x86_64::structures::paging::PageTableFlags;

/// Physical-address bits of a page-table entry (bits 12..51).
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The control registers that decide how addresses translate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paging {
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
    /// DS base: GVAs given by real- and 32-bit-mode guests are DS offsets.
    pub ds_base: u64,
}

impl Paging {
    /// From a vCPU's special registers.
    pub fn from_sregs(s: &kvm_bindings::kvm_sregs) -> Paging {
        Paging {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
            ds_base: s.ds.base,
        }
    }

    /// Which translation applies.
    pub fn mode(&self) -> PagingMode {
        let pg = Cr0Flags::from_bits_truncate(self.cr0).contains(Cr0Flags::PAGING);
        let lma = EferFlags::from_bits_truncate(self.efer).contains(EferFlags::LONG_MODE_ACTIVE);
        let pae =
            Cr4Flags::from_bits_truncate(self.cr4).contains(Cr4Flags::PHYSICAL_ADDRESS_EXTENSION);
        match (pg, lma, pae) {
            (false, _, _) => PagingMode::Off,
            (true, true, _) => PagingMode::Long4,
            (true, false, true) => PagingMode::Pae,
            (true, false, false) => PagingMode::Bits32,
        }
    }
}

/// A paging mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG clear: GVA = GPA.
    Off,
    /// 4-level long-mode paging.
    Long4,
    /// 32-bit PAE paging (not walked: no guest of ours uses it).
    Pae,
    /// 2-level 32-bit paging.
    Bits32,
}

/// A page-table level (long mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Page-map level 4.
    Pml4,
    /// Page-directory-pointer table.
    Pdpt,
    /// Page directory.
    Pd,
    /// Page table.
    Pt,
}

impl Level {
    /// The usual short name.
    pub fn name(self) -> &'static str {
        match self {
            Level::Pml4 => "PML4",
            Level::Pdpt => "PDPT",
            Level::Pd => "PD",
            Level::Pt => "PT",
        }
    }
}

/// One step of a walk: which table, which index, what entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The table's level.
    pub level: Level,
    /// Guest-physical address of the table.
    pub table: u64,
    /// Index into it.
    pub index: u64,
    /// The entry read.
    pub entry: u64,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// The address translated.
    pub gva: u64,
    /// The steps taken (`steps[..nsteps]`); no allocation on the hot path.
    pub steps: [Option<Step>; 4],
    /// The guest-physical address.
    pub gpa: u64,
    /// Size of the page that maps it (0 with paging off).
    pub page_size: u64,
}

impl Walk {
    /// The steps taken.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().flatten()
    }
}

/// Why a GVA has no GPA (or no HVA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// Bits 63..48 are not a sign extension of bit 47.
    #[error("{0:#x} is not canonical")]
    NonCanonical(u64),
    /// An entry without the present bit.
    #[error("{} entry {index} of the table at {table:#x} is not present (entry {entry:#x})", level.name())]
    NotPresent {
        /// Level.
        level: Level,
        /// Table GPA.
        table: u64,
        /// Index.
        index: u64,
        /// Entry value.
        entry: u64,
    },
    /// A table lies outside guest memory.
    #[error("the {} table at {table:#x} lies outside guest memory", level.name())]
    TableOutsideMemory {
        /// Level.
        level: Level,
        /// Table GPA.
        table: u64,
    },
    /// The final GPA has no memory behind it.
    #[error("it maps to GPA {0:#x}, which has no guest memory behind it")]
    NoMemory(u64),
    /// Wider than a real-mode offset.
    #[error("{0:#x} is not a 16-bit real-mode offset")]
    NotAnOffset(u64),
    /// Wider than the 32 bits a 32-bit guest can address.
    #[error("{0:#x} is wider than 32 bits")]
    Not32Bit(u64),
    /// A mode this host does not walk.
    #[error("the guest's paging mode ({0:?}) is not supported for translation")]
    Unsupported(PagingMode),
}

/// Translates `gva` to a guest-physical address.
pub fn gva_to_gpa(mem: &GuestMemoryMmap, p: &Paging, gva: u64) -> Result<Walk, TranslateError> {
    let mut walk = Walk {
        gva,
        steps: [None; 4],
        gpa: 0,
        page_size: 0,
    };
    translate_into(mem, p, gva, &mut walk).map(|()| walk)
}

/// Translates `gva` and keeps the steps taken even when the walk fails
/// (`host layout --translate`): the walk so far and how it ended.
pub fn explain(mem: &GuestMemoryMmap, p: &Paging, gva: u64) -> (Walk, Result<(), TranslateError>) {
    let mut walk = Walk {
        gva,
        steps: [None; 4],
        gpa: 0,
        page_size: 0,
    };
    let r = translate_into(mem, p, gva, &mut walk);
    (walk, r)
}

fn translate_into(
    mem: &GuestMemoryMmap,
    p: &Paging,
    gva: u64,
    walk: &mut Walk,
) -> Result<(), TranslateError> {
    let protected = Cr0Flags::from_bits_truncate(p.cr0).contains(Cr0Flags::PROTECTED_MODE_ENABLE);
    match p.mode() {
        // real mode: segment base + 16-bit offset
        PagingMode::Off if !protected => {
            if gva > 0xffff {
                return Err(TranslateError::NotAnOffset(gva));
            }
            walk.gpa = p.ds_base + gva;
        }
        // flat protected mode: segment base + 32-bit offset, wrapping at 4 GiB
        PagingMode::Off => {
            if gva > u64::from(u32::MAX) {
                return Err(TranslateError::Not32Bit(gva));
            }
            walk.gpa = (p.ds_base + gva) & 0xffff_ffff;
        }
        PagingMode::Long4 => walk_long(mem, p.cr3, gva, walk)?,
        PagingMode::Bits32 => {
            if gva > u64::from(u32::MAX) {
                return Err(TranslateError::Not32Bit(gva));
            }
            walk_32(mem, p, (p.ds_base + gva) & 0xffff_ffff, walk)?
        }
        m @ PagingMode::Pae => return Err(TranslateError::Unsupported(m)),
    }
    if !mem.address_in_range(GuestAddress(walk.gpa)) {
        return Err(TranslateError::NoMemory(walk.gpa));
    }
    Ok(())
}

/// The guest-physical address of linear address `lin` under `p` now
/// (with paging off, the same address); None if nothing maps it.
pub fn linear_to_gpa(mem: &GuestMemoryMmap, p: &Paging, lin: u64) -> Option<u64> {
    match p.mode() {
        PagingMode::Off => Some(lin),
        _ => gva_to_gpa(mem, p, lin).ok().map(|w| w.gpa),
    }
}

/// Reads guest memory at linear `lin` through `p`, page by page,
/// bounds-checked; returns how many bytes could be read (it stops at the
/// first unmapped page or the end of memory).
pub fn read_linear(mem: &GuestMemoryMmap, p: &Paging, lin: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let at = lin.wrapping_add(done as u64);
        let n = (buf.len() - done).min(0x1000 - (at & 0xfff) as usize);
        let Some(gpa) = linear_to_gpa(mem, p, at) else {
            break;
        };
        if mem
            .read_slice(&mut buf[done..done + n], GuestAddress(gpa))
            .is_err()
        {
            break;
        }
        done += n;
    }
    done
}

/// Writes `data` to guest memory at linear `lin` through `p`, page by
/// page, bounds-checked; false if a page is unmapped or past the end of
/// memory (what lies before it is written).
pub fn write_linear(mem: &GuestMemoryMmap, p: &Paging, lin: u64, data: &[u8]) -> bool {
    let mut done = 0;
    while done < data.len() {
        let at = lin.wrapping_add(done as u64);
        let n = (data.len() - done).min(0x1000 - (at & 0xfff) as usize);
        let Some(gpa) = linear_to_gpa(mem, p, at) else {
            return false;
        };
        if mem
            .write_slice(&data[done..done + n], GuestAddress(gpa))
            .is_err()
        {
            return false;
        }
        done += n;
    }
    true
}

/// Translates `gva` all the way to a host virtual address.
pub fn gva_to_hva(
    mem: &GuestMemoryMmap,
    p: &Paging,
    gva: u64,
) -> Result<(Walk, u64), TranslateError> {
    let walk = gva_to_gpa(mem, p, gva)?;
    let hva = mem
        .get_host_address(GuestAddress(walk.gpa))
        .map_err(|_| TranslateError::NoMemory(walk.gpa))?;
    Ok((walk, hva as u64))
}

/// 2-level 32-bit paging: PD (1024 x 4-byte entries) -> PT, or a 4 MiB page
/// when the PDE has PS and CR4.PSE is on (PSE-36: PDE bits 13..20 are
/// address bits 32..39).
fn walk_32(
    mem: &GuestMemoryMmap,
    p: &Paging,
    gva: u64,
    walk: &mut Walk,
) -> Result<(), TranslateError> {
    if gva > u64::from(u32::MAX) {
        return Err(TranslateError::Not32Bit(gva));
    }
    let pse = Cr4Flags::from_bits_truncate(p.cr4).contains(Cr4Flags::PAGE_SIZE_EXTENSION);
    let read = |level, table: u64, index: u64| -> Result<u64, TranslateError> {
        mem.read_obj::<u32>(GuestAddress(table + index * 4))
            .map(u64::from)
            .map_err(|_| TranslateError::TableOutsideMemory { level, table })
    };
    let pd = p.cr3 & 0xffff_f000;
    let index = (gva >> 22) & 0x3ff;
    let pde = read(Level::Pd, pd, index)?;
    walk.steps[0] = Some(Step {
        level: Level::Pd,
        table: pd,
        index,
        entry: pde,
    });
    let flags = PageTableFlags::from_bits_truncate(pde);
    if !flags.contains(PageTableFlags::PRESENT) {
        return Err(TranslateError::NotPresent {
            level: Level::Pd,
            table: pd,
            index,
            entry: pde,
        });
    }
    if pse && flags.contains(PageTableFlags::HUGE_PAGE) {
        let high = ((pde >> 13) & 0xff) << 32;
        walk.gpa = high | (pde & 0xffc0_0000) | (gva & 0x3f_ffff);
        walk.page_size = 4 << 20;
        return Ok(());
    }
    let pt = pde & 0xffff_f000;
    let index = (gva >> 12) & 0x3ff;
    let pte = read(Level::Pt, pt, index)?;
    walk.steps[1] = Some(Step {
        level: Level::Pt,
        table: pt,
        index,
        entry: pte,
    });
    if !PageTableFlags::from_bits_truncate(pte).contains(PageTableFlags::PRESENT) {
        return Err(TranslateError::NotPresent {
            level: Level::Pt,
            table: pt,
            index,
            entry: pte,
        });
    }
    walk.gpa = (pte & 0xffff_f000) | (gva & 0xfff);
    walk.page_size = 4096;
    Ok(())
}

fn walk_long(
    mem: &GuestMemoryMmap,
    cr3: u64,
    gva: u64,
    walk: &mut Walk,
) -> Result<(), TranslateError> {
    let sign = ((gva as i64) << 16) >> 16;
    if sign as u64 != gva {
        return Err(TranslateError::NonCanonical(gva));
    }
    const LEVELS: [(Level, u32); 4] = [
        (Level::Pml4, 39),
        (Level::Pdpt, 30),
        (Level::Pd, 21),
        (Level::Pt, 12),
    ];
    let mut table = cr3 & ADDR_MASK;
    for (i, &(level, shift)) in LEVELS.iter().enumerate() {
        let index = (gva >> shift) & 0x1ff;
        let entry: u64 = mem
            .read_obj(GuestAddress(table + index * 8))
            .map_err(|_| TranslateError::TableOutsideMemory { level, table })?;
        walk.steps[i] = Some(Step {
            level,
            table,
            index,
            entry,
        });
        let flags = PageTableFlags::from_bits_truncate(entry);
        if !flags.contains(PageTableFlags::PRESENT) {
            return Err(TranslateError::NotPresent {
                level,
                table,
                index,
                entry,
            });
        }
        let huge = flags.contains(PageTableFlags::HUGE_PAGE);
        if level == Level::Pt || (huge && matches!(level, Level::Pdpt | Level::Pd)) {
            let size = 1u64 << shift;
            walk.gpa = (entry & ADDR_MASK & !(size - 1)) | (gva & (size - 1));
            walk.page_size = size;
            return Ok(());
        }
        table = entry & ADDR_MASK;
    }
    unreachable!("the PT level always returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86::paging;
    use hypercall_abi::layout;

    fn mem(size: u64) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap()
    }

    fn long_paging() -> Paging {
        crate::x86::CpuMode::Long.start_paging()
    }

    #[test]
    fn identity_map_translates_every_2mib_page() {
        let size = 6 << 20;
        let m = mem(size);
        paging::build_identity_map(&m, size, 1, false).unwrap();
        let p = long_paging();
        assert_eq!(p.mode(), PagingMode::Long4);
        for gva in [0u64, 0x400, 0x10_0123, (2 << 20) + 5, size - 1] {
            let w = gva_to_gpa(&m, &p, gva).unwrap();
            assert_eq!(w.gpa, gva);
            // the first 2 MiB in 4 KiB pages (for the stack guards)
            let small = gva < 2 << 20;
            assert_eq!(w.page_size, if small { 4096 } else { 2 << 20 });
            let levels: Vec<_> = w.steps().map(|s| s.level).collect();
            if small {
                assert_eq!(levels, [Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt]);
            } else {
                assert_eq!(levels, [Level::Pml4, Level::Pdpt, Level::Pd]);
            }
            let (_, hva) = gva_to_hva(&m, &p, gva).unwrap();
            let base = m.get_host_address(GuestAddress(0)).unwrap() as u64;
            assert_eq!(hva, base + gva);
        }
        // mapped by the last 2 MiB page? no: 6 MiB is exactly 3 pages
        assert_eq!(
            gva_to_gpa(&m, &p, size),
            Err(TranslateError::NotPresent {
                level: Level::Pd,
                table: layout::PAGE_TABLES + 0x2000,
                index: 3,
                entry: 0
            })
        );
        assert!(matches!(
            gva_to_gpa(&m, &p, 1 << 39),
            Err(TranslateError::NotPresent {
                level: Level::Pml4,
                index: 1,
                ..
            })
        ));
        assert_eq!(
            gva_to_gpa(&m, &p, 0xdead_0000_0000_0000),
            Err(TranslateError::NonCanonical(0xdead_0000_0000_0000))
        );
    }

    #[test]
    fn four_kib_and_one_gib_pages() {
        let m = mem(4 << 20);
        paging::build_identity_map(&m, 4 << 20, 1, false).unwrap();
        let p = long_paging();
        let (pt, pd) = (0x20_0000u64, layout::PAGE_TABLES + 0x2000);
        // PD[1] -> a 4 KiB page table whose entry 3 maps GPA 0x5000
        let tf = (PageTableFlags::PRESENT | PageTableFlags::WRITABLE).bits();
        m.write_obj(pt | tf, GuestAddress(pd + 8)).unwrap();
        m.write_obj(0x5000u64 | tf, GuestAddress(pt + 3 * 8))
            .unwrap();
        let w = gva_to_gpa(&m, &p, (2 << 20) + 0x3000 + 0x21).unwrap();
        assert_eq!(w.gpa, 0x5021);
        assert_eq!(w.page_size, 4096);
        assert_eq!(w.steps().count(), 4);
        // PDPT[1]: a 1 GiB page onto GPA 0
        let huge = tf | PageTableFlags::HUGE_PAGE.bits();
        m.write_obj(huge, GuestAddress(layout::PAGE_TABLES + 0x1000 + 8))
            .unwrap();
        let w = gva_to_gpa(&m, &p, (1 << 30) + 0x1234).unwrap();
        assert_eq!((w.gpa, w.page_size), (0x1234, 1 << 30));
        // ... but onto GPA 1 GiB + x there is no memory
        m.write_obj(
            huge | (1 << 30),
            GuestAddress(layout::PAGE_TABLES + 0x1000 + 8),
        )
        .unwrap();
        assert_eq!(
            gva_to_gpa(&m, &p, (1 << 30) + 0x1234),
            Err(TranslateError::NoMemory((1 << 30) + 0x1234))
        );
    }

    fn paged32() -> Paging {
        crate::x86::CpuMode::Paged32.start_paging()
    }

    /// kvm-hello-world's paged mode: one 4 MiB PSE page at GPA 0, and here
    /// 4 KiB page tables for memory beyond it.
    #[test]
    fn paged32_pse_page_and_4k_tables() {
        let size = 10 << 20;
        let m = mem(size);
        let tables = paging::build_paged32(&m, size).unwrap();
        // PD, then one PT per further 4 MiB (6 MiB -> 2 PTs)
        let levels: Vec<_> = tables.iter().map(|t| (t.level, t.entries)).collect();
        assert_eq!(levels, [("PD", 3), ("PT", 1024), ("PT", 512)]);
        let p = paged32();
        assert_eq!(p.mode(), PagingMode::Bits32);
        // inside the PSE page: one step
        let w = gva_to_gpa(&m, &p, 0x12_3456).unwrap();
        assert_eq!(
            (w.gpa, w.page_size, w.steps().count()),
            (0x12_3456, 4 << 20, 1)
        );
        // beyond 4 MiB: PD then PT
        for gva in [4 << 20, (4 << 20) + 0x1234, size - 1] {
            let w = gva_to_gpa(&m, &p, gva).unwrap();
            assert_eq!((w.gpa, w.page_size), (gva, 4096), "{gva:#x}");
            let levels: Vec<_> = w.steps().map(|s| s.level).collect();
            assert_eq!(levels, [Level::Pd, Level::Pt]);
        }
        // past the mapped memory: PT entry 512 of the second table is empty
        assert!(matches!(
            gva_to_gpa(&m, &p, size),
            Err(TranslateError::NotPresent {
                level: Level::Pt,
                index: 512,
                ..
            })
        ));
        // PDE 3 (12..16 MiB) was never written
        assert!(matches!(
            gva_to_gpa(&m, &p, 12 << 20),
            Err(TranslateError::NotPresent {
                level: Level::Pd,
                index: 3,
                ..
            })
        ));
        assert_eq!(
            gva_to_gpa(&m, &p, 1 << 32),
            Err(TranslateError::Not32Bit(1 << 32))
        );
        // without CR4.PSE the PS bit is ignored: PDE 0 is read as a page
        // table at GPA 0, whose entry 1 (guest RAM, zero here) is not present
        let no_pse = Paging { cr4: 0, ..p };
        assert_eq!(
            gva_to_gpa(&m, &no_pse, 0x1000),
            Err(TranslateError::NotPresent {
                level: Level::Pt,
                table: 0,
                index: 1,
                entry: 0
            })
        );
        assert!(paging::build_paged32(&m, paging::PAGED32_MAX_MEM + 4096).is_err());
    }

    #[test]
    fn hostile_tables_end_the_walk() {
        let m = mem(2 << 20);
        paging::build_identity_map(&m, 2 << 20, 1, false).unwrap();
        let mut p = long_paging();
        // a PML4 entry pointing at the PML4 itself: the walk stays bounded
        let tf = (PageTableFlags::PRESENT | PageTableFlags::WRITABLE).bits();
        m.write_obj(layout::PAGE_TABLES | tf, GuestAddress(layout::PAGE_TABLES))
            .unwrap();
        // PML4[0] is reused as PDPT, PD and PT; PT index 1 is PML4[1], empty
        assert_eq!(
            gva_to_gpa(&m, &p, 0x1000),
            Err(TranslateError::NotPresent {
                level: Level::Pt,
                table: layout::PAGE_TABLES,
                index: 1,
                entry: 0
            })
        );
        // tables outside memory
        m.write_obj(0x7fff_0000_0000u64 | tf, GuestAddress(layout::PAGE_TABLES))
            .unwrap();
        assert_eq!(
            gva_to_gpa(&m, &p, 0x1000),
            Err(TranslateError::TableOutsideMemory {
                level: Level::Pdpt,
                table: 0x7fff_0000_0000
            })
        );
        p.cr3 = 0xffff_f000;
        assert!(matches!(
            gva_to_gpa(&m, &p, 0),
            Err(TranslateError::TableOutsideMemory {
                level: Level::Pml4,
                ..
            })
        ));
        // real mode (PE clear): DS base + 16-bit offset
        let real = Paging {
            ds_base: 0x1_0000,
            ..Paging::default()
        };
        assert_eq!(gva_to_gpa(&m, &real, 0x1234).unwrap().gpa, 0x1_1234);
        assert_eq!(
            gva_to_gpa(&m, &real, 0x1_0000),
            Err(TranslateError::NotAnOffset(0x1_0000))
        );
        // flat protected mode: DS base + offset, bounded by memory
        let prot = crate::x86::CpuMode::Protected.start_paging();
        assert_eq!(gva_to_gpa(&m, &prot, 0x1234).unwrap().gpa, 0x1234);
        assert_eq!(
            gva_to_gpa(&m, &prot, 2 << 20),
            Err(TranslateError::NoMemory(2 << 20))
        );
        assert_eq!(
            gva_to_gpa(&m, &prot, 1 << 32),
            Err(TranslateError::Not32Bit(1 << 32))
        );
        let based = Paging {
            ds_base: 0xffff_f000,
            ..prot
        };
        assert_eq!(
            gva_to_gpa(&m, &based, 0x1234).unwrap().gpa,
            0x234,
            "wraps at 4 GiB"
        );
    }
}
