//! The identity map the host builds for long-mode guests: PML4 -> PDPT ->
//! one PD per GiB, 2 MiB pages, covering all of guest memory; the first
//! 2 MiB in 4 KiB pages (`layout::LOW_PT`), so that the page below each
//! vCPU's stack is a guard that is not mapped.

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

/// Writes the identity map for `mem_size` bytes, with the stack guards of
/// `vcpus` vCPUs unmapped, and with `apic` the in-kernel controller's
/// pages (LAPIC, IOAPIC); CR3 = `layout::PAGE_TABLES`.
pub fn build_identity_map(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    vcpus: u64,
    apic: bool,
) -> Result<Vec<Table>, PagingError> {
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
    // the first 2 MiB in 4 KiB pages, each vCPU's stack guard left out
    // built in a buffer and written at once: 512 checked writes were
    // ~300k instructions of every `host run`
    let small = table | PageTableFlags::ACCESSED | PageTableFlags::DIRTY;
    let pt = layout::LOW_PT;
    let mut present = 0;
    let mut entries = [0u8; 4096];
    for (i, e) in (0..512u64.min(mem_size / 4096)).zip(entries.chunks_exact_mut(8)) {
        let a = i << 12;
        if super::exception::in_stack_guard(a, vcpus).is_none() {
            present += 1;
            e.copy_from_slice(&(a | small.bits()).to_le_bytes());
        }
    }
    mem.write_slice(&entries, GuestAddress(pt))
        .map_err(|e| PagingError::Write(pt, e))?;
    w(pt | table.bits(), pdpt + 0x1000)?;
    tables.push(Table {
        level: "PT",
        gpa: pt,
        entries: present,
    });
    // The SIMVIRTIO window: one uncached 2 MiB page in the 4th GiB (above
    // all RAM), in the page-table area's last PD.
    let dev = hypercall_abi::simvirtio::MMIO_BASE;
    let gib = dev >> 30;
    let pd = pdpt + 0x1000 * (gib + 1);
    w(pd | table.bits(), pdpt + gib * 8)?;
    let mmio = page | PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
    let mut entries = 0;
    let apic_pages = [layout::LAPIC, layout::IOAPIC];
    for at in std::iter::once(dev).chain(apic_pages.into_iter().filter(|_| apic)) {
        w((at & !0x1f_ffff) | mmio.bits(), pd + ((at >> 21) & 511) * 8)?;
        entries += 1;
    }
    tables.push(Table {
        level: "PD",
        gpa: pd,
        entries,
    });
    Ok(tables)
}

// The device's PD fits in the page-table area, after the PDs for RAM; the
// APIC pages are in the same GiB.
const _: () = {
    let gib = hypercall_abi::simvirtio::MMIO_BASE >> 30;
    assert!(gib == layout::MAX_MEM >> 30);
    assert!(layout::LAPIC >> 30 == gib && layout::IOAPIC >> 30 == gib);
    assert!(layout::LAPIC.is_multiple_of(2 << 20) && layout::IOAPIC.is_multiple_of(2 << 20));
    assert!(layout::PAGE_TABLES + 0x1000 * (gib + 2) + 0x1000 <= layout::PAGE_TABLES_END);
};

/// Largest memory the 32-bit paged map covers: one 4 MiB PSE page, then one
/// 4 KiB-page table per further 4 MiB, in the page-table area.
pub const PAGED32_MAX_MEM: u64 =
    (4 << 20) + (((layout::PAGE_TABLES_END - layout::PAGE_TABLES - 0x1000) / 0x1000) << 22);

/// Writes a 32-bit (non-PAE) identity map for `mem_size` bytes, as
/// kvm-hello-world does for its first 4 MiB (one 4 MiB PSE page directory
/// entry), with 4 KiB page tables for memory beyond it. CR3 =
/// `layout::PAGE_TABLES`; needs CR4.PSE.
pub fn build_paged32(mem: &GuestMemoryMmap, mem_size: u64) -> Result<Vec<Table>, PagingError> {
    if mem_size > PAGED32_MAX_MEM {
        return Err(PagingError::TooLarge(mem_size));
    }
    let table = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let big = table | PageTableFlags::HUGE_PAGE | PageTableFlags::ACCESSED | PageTableFlags::DIRTY;
    let page = table | PageTableFlags::ACCESSED | PageTableFlags::DIRTY;
    let pd = layout::PAGE_TABLES;
    let w = |v: u32, at: u64| {
        mem.write_obj(v, GuestAddress(at))
            .map_err(|e| PagingError::Write(at, e))
    };
    w(big.bits() as u32, pd)?; // PDE[0]: GPA 0..4 MiB
    let rest_pages = mem_size.saturating_sub(4 << 20).div_ceil(4096);
    let pts = rest_pages.div_ceil(1024);
    let mut tables = vec![Table {
        level: "PD",
        gpa: pd,
        entries: 1 + pts,
    }];
    for t in 0..pts {
        let pt = pd + 0x1000 * (t + 1);
        w((pt as u32) | table.bits() as u32, pd + 4 * (t + 1))?;
        let n = (rest_pages - t * 1024).min(1024);
        for i in 0..n {
            let gpa = (4 << 20) + ((t * 1024 + i) << 12);
            w((gpa as u32) | page.bits() as u32, pt + 4 * i)?;
        }
        tables.push(Table {
            level: "PT",
            gpa: pt,
            entries: n,
        });
    }
    Ok(tables)
}
