//! The identity map the host builds for long-mode guests: PML4 -> PDPT ->
//! one PD per GiB, 2 MiB pages, covering all of guest memory.

use hypercall_abi::layout;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use x86_64::structures::paging::PageTableFlags;

/// A table the host built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// "PML4", "PDPT" or "PD".
    pub level: &'static str,
    /// Guest-physical address.
    pub gpa: u64,
    /// Present entries.
    pub entries: u64,
}

/// Why the map could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PagingError {
    /// Memory larger than the map can cover.
    #[error("guest memory of {size:#x} bytes is larger than the identity map covers ({max:#x})", size = .0, max = layout::MAX_MEM)]
    TooLarge(u64),
    /// Writing a table failed.
    #[error("cannot write page table at {0:#x}: {1}")]
    Write(u64, vm_memory::GuestMemoryError),
}

/// Writes the identity map for `mem_size` bytes; CR3 = `layout::PAGE_TABLES`.
pub fn build_identity_map(mem: &GuestMemoryMmap, mem_size: u64) -> Result<Vec<Table>, PagingError> {
    if mem_size > layout::MAX_MEM {
        return Err(PagingError::TooLarge(mem_size));
    }
    let table = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    // Accessed and dirty preset: the CPU need not write them back.
    let page = table | PageTableFlags::HUGE_PAGE | PageTableFlags::ACCESSED | PageTableFlags::DIRTY;
    let pml4 = layout::PAGE_TABLES;
    let pdpt = pml4 + 0x1000;
    let pages = mem_size.div_ceil(2 << 20);
    let pds = pages.div_ceil(512);
    let w = |v: u64, at: u64| {
        mem.write_obj(v, GuestAddress(at))
            .map_err(|e| PagingError::Write(at, e))
    };
    w(pdpt | table.bits(), pml4)?;
    let mut tables = vec![
        Table {
            level: "PML4",
            gpa: pml4,
            entries: 1,
        },
        Table {
            level: "PDPT",
            gpa: pdpt,
            entries: pds,
        },
    ];
    for d in 0..pds {
        let pd = pdpt + 0x1000 * (d + 1);
        w(pd | table.bits(), pdpt + d * 8)?;
        let n = (pages - d * 512).min(512);
        for i in 0..n {
            w(((d * 512 + i) << 21) | page.bits(), pd + i * 8)?;
        }
        tables.push(Table {
            level: "PD",
            gpa: pd,
            entries: n,
        });
    }
    Ok(tables)
}
