//! Page tables and GDT as read back from guest memory: the tree the
//! guest's CR3 reaches, and the step-by-step walk of one address.

use super::model::*;
use crate::x86::translate::{self, Level, Paging, PagingMode, TranslateError, Walk};
use std::collections::BTreeSet;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use x86_64::structures::paging::PageTableFlags;

fn flags_text(v: u64, level_has_ps: bool) -> String {
    let f = PageTableFlags::from_bits_truncate(v);
    let mut s = Vec::new();
    for (bit, name) in [
        (PageTableFlags::PRESENT, "P"),
        (PageTableFlags::WRITABLE, "RW"),
        (PageTableFlags::USER_ACCESSIBLE, "US"),
        (PageTableFlags::WRITE_THROUGH, "PWT"),
        (PageTableFlags::NO_CACHE, "PCD"),
        (PageTableFlags::ACCESSED, "A"),
        (PageTableFlags::DIRTY, "D"),
    ] {
        if f.contains(bit) {
            s.push(name);
        }
    }
    if level_has_ps && f.contains(PageTableFlags::HUGE_PAGE) {
        s.push("PS");
    }
    if f.contains(PageTableFlags::NO_EXECUTE) {
        s.push("NX");
    }
    s.join(" ")
}

/// At most this many tables are read (the host builds at most a few; a
/// guest's own tables are bounded the same way).
const MAX_TABLES: usize = 4096;

pub(super) struct TreeWalk<'a> {
    pub(super) mem: &'a GuestMemoryMmap,
    pub(super) out: Vec<Entry>,
    pub(super) tables: Vec<(Level, u64)>,
    pub(super) seen: BTreeSet<u64>,
}

impl TreeWalk<'_> {
    fn leaf(&mut self, e: Entry) {
        // merge with the previous run when it continues it
        if let Some(p) = self.out.last_mut()
            && p.depth == e.depth
            && p.table == e.table
            && p.page_size == e.page_size
            && p.flags == e.flags
            && p.index + p.count == e.index
            && p.page_gpa
                .zip(e.page_gpa)
                .is_some_and(|(a, b)| a + p.span == b)
        {
            p.count += 1;
            p.span += e.span;
            return;
        }
        self.out.push(e);
    }

    /// Long mode: 4 levels of 512 8-byte entries.
    pub(super) fn long(&mut self, table: u64, depth: usize, gva_base: u64) {
        const LEVELS: [(Level, u32); 4] = [
            (Level::Pml4, 39),
            (Level::Pdpt, 30),
            (Level::Pd, 21),
            (Level::Pt, 12),
        ];
        let (level, shift) = LEVELS[depth];
        if !self.seen.insert(table) || self.seen.len() > MAX_TABLES {
            return;
        }
        self.tables.push((level, table));
        for i in 0..512u64 {
            let Ok(v) = self.mem.read_obj::<u64>(GuestAddress(table + 8 * i)) else {
                return;
            };
            let f = PageTableFlags::from_bits_truncate(v);
            if !f.contains(PageTableFlags::PRESENT) {
                continue;
            }
            let mut gva = gva_base | (i << shift);
            if gva & (1 << 47) != 0 {
                gva |= 0xffff_0000_0000_0000;
            }
            let size = 1u64 << shift;
            let huge =
                f.contains(PageTableFlags::HUGE_PAGE) && matches!(level, Level::Pdpt | Level::Pd);
            let base = Entry {
                depth,
                level: level.name(),
                table,
                index: i,
                at: table + 8 * i,
                count: 1,
                value: v,
                flags: flags_text(v, matches!(level, Level::Pdpt | Level::Pd)),
                gva,
                span: size,
                next_table: None,
                page_gpa: None,
                page_size: None,
            };
            if level == Level::Pt || huge {
                let gpa = v & translate::ADDR_MASK & !(size - 1);
                self.leaf(Entry {
                    page_gpa: Some(gpa),
                    page_size: Some(size),
                    ..base
                });
            } else {
                let next = v & translate::ADDR_MASK;
                self.out.push(Entry {
                    next_table: Some(next),
                    ..base
                });
                self.long(next, depth + 1, gva);
            }
        }
    }

    /// 32-bit paging: a PD of 1024 4-byte entries, 4 MiB PSE pages or PTs.
    pub(super) fn bits32(&mut self, pd: u64, pse: bool) {
        if !self.seen.insert(pd) {
            return;
        }
        self.tables.push((Level::Pd, pd));
        for i in 0..1024u64 {
            let Ok(v) = self.mem.read_obj::<u32>(GuestAddress(pd + 4 * i)) else {
                return;
            };
            let v = u64::from(v);
            let f = PageTableFlags::from_bits_truncate(v);
            if !f.contains(PageTableFlags::PRESENT) {
                continue;
            }
            let gva = i << 22;
            let base = Entry {
                depth: 0,
                level: "PD",
                table: pd,
                index: i,
                at: pd + 4 * i,
                count: 1,
                value: v,
                flags: flags_text(v, pse),
                gva,
                span: 4 << 20,
                next_table: None,
                page_gpa: None,
                page_size: None,
            };
            if pse && f.contains(PageTableFlags::HUGE_PAGE) {
                let gpa = (((v >> 13) & 0xff) << 32) | (v & 0xffc0_0000);
                self.leaf(Entry {
                    page_gpa: Some(gpa),
                    page_size: Some(4 << 20),
                    ..base
                });
                continue;
            }
            let pt = v & 0xffff_f000;
            self.out.push(Entry {
                next_table: Some(pt),
                ..base
            });
            if !self.seen.insert(pt) || self.seen.len() > MAX_TABLES {
                continue;
            }
            self.tables.push((Level::Pt, pt));
            for j in 0..1024u64 {
                let Ok(e) = self.mem.read_obj::<u32>(GuestAddress(pt + 4 * j)) else {
                    break;
                };
                let e = u64::from(e);
                if e & 1 == 0 {
                    continue;
                }
                self.leaf(Entry {
                    depth: 1,
                    level: "PT",
                    table: pt,
                    index: j,
                    at: pt + 4 * j,
                    count: 1,
                    value: e,
                    flags: flags_text(e, false),
                    gva: gva | (j << 12),
                    span: 4096,
                    next_table: None,
                    page_gpa: Some(e & 0xffff_f000),
                    page_size: Some(4096),
                });
            }
        }
    }
}

/// How `gva` splits over the levels the walk really used: an index for each
/// table walked, then the offset into the page it ended at.
fn split(walk: &Walk, found: bool, gva: u64) -> String {
    let mut parts: Vec<String> = walk
        .steps()
        .map(|s| format!("{} {}", s.level.name(), s.index))
        .collect();
    if found && walk.page_size > 0 {
        parts.push(format!(
            "offset {:#x} (a {} page)",
            gva & (walk.page_size - 1),
            crate::size::human(walk.page_size)
        ));
    } else {
        parts.push("(the walk stops there)".into());
    }
    parts.join(" | ")
}

/// The walk of `gva` under `p`, step by step, ready to print (also for a
/// live vCPU: gdb's `monitor translate`).
pub fn explain(mem: &GuestMemoryMmap, p: &Paging, gva: u64) -> Translation {
    let (walk, r): (Walk, Result<(), TranslateError>) = translate::explain(mem, p, gva);
    let mut steps = Vec::new();
    let mut say = |t: String| steps.push(TranslateStep { text: t });
    match p.mode() {
        PagingMode::Off => {
            let real = p.cr0 & 1 == 0;
            say(format!(
                "paging is off (CR0.PG = 0): {} mode, GPA = DS base {:#x} + offset {gva:#x}{}",
                if real { "real" } else { "protected" },
                p.ds_base,
                if real {
                    " (a 16-bit offset)"
                } else {
                    " (wrapping at 4 GiB)"
                }
            ));
        }
        PagingMode::Long4 => say(format!(
            "4-level paging (CR0.PG, EFER.LMA): CR3 = {:#x}; GVA {gva:#x} splits into {}",
            p.cr3,
            split(&walk, r.is_ok(), gva)
        )),
        PagingMode::Bits32 => say(format!(
            "32-bit paging (CR0.PG, no PAE), PSE {}: CR3 = {:#x}; GVA {gva:#x} splits into {}",
            if p.cr4 & (1 << 4) != 0 { "on" } else { "off" },
            p.cr3,
            split(&walk, r.is_ok(), gva)
        )),
        PagingMode::Pae => say("PAE paging: not walked by this host".into()),
    }
    for s in walk.steps() {
        let width = if p.mode() == PagingMode::Bits32 { 4 } else { 8 };
        let f = PageTableFlags::from_bits_truncate(s.entry);
        let what = if !f.contains(PageTableFlags::PRESENT) {
            "not present".to_string()
        } else if s.level == Level::Pt
            || (f.contains(PageTableFlags::HUGE_PAGE) && s.level != Level::Pml4)
        {
            "maps a page".to_string()
        } else {
            format!(
                "next table at GPA {:#x}",
                s.entry & translate::ADDR_MASK & 0xffff_ffff_f000
            )
        };
        say(format!(
            "{} at GPA {:#x}, index {}: entry at GPA {:#x} = {:#x} [{}] -> {what}",
            s.level.name(),
            s.table,
            s.index,
            s.table + width * s.index,
            s.entry,
            flags_text(s.entry, s.level != Level::Pml4 && s.level != Level::Pt)
        ));
    }
    match r {
        Ok(()) => {
            let hva = mem
                .get_host_address(GuestAddress(walk.gpa))
                .ok()
                .map(|h| h as u64);
            if walk.page_size > 0 {
                say(format!(
                    "page of {} at GPA {:#x} + offset {:#x} = GPA {:#x}",
                    crate::size::human(walk.page_size),
                    walk.gpa & !(walk.page_size - 1),
                    walk.gpa & (walk.page_size - 1),
                    walk.gpa
                ));
            }
            if let Some(h) = hva {
                say(format!(
                    "GPA {:#x} is in memory slot 0 (GPA 0 at HVA {:#x}): HVA = {h:#x}",
                    walk.gpa,
                    h - walk.gpa
                ));
            }
            Translation {
                gva,
                steps,
                gpa: Some(walk.gpa),
                hva,
                error: None,
            }
        }
        Err(e) => {
            say(format!("fails: {e}"));
            Translation {
                gva,
                steps,
                gpa: None,
                hva: None,
                error: Some(e.to_string()),
            }
        }
    }
}
