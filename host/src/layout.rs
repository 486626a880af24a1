//! `host layout`: where everything is in a VM the host has really set up.
//! Every figure is read back from the live VM: the memory region from
//! vm-memory's mapping, the registers with KVM_GET_REGS/KVM_GET_SREGS, the
//! GDT and page tables from guest memory starting at the vCPU's GDTR and CR3,
//! the kvm_run size from KVM_GET_VCPU_MMAP_SIZE and its address from the
//! vCPU's mapping. Only the names of the ABI's reserved areas (42-check word,
//! result page, stack) come from `hypercall_abi::layout`.

use crate::loader::Plan;
use crate::translate::{self, Level, Paging, PagingMode, TranslateError, Walk};
use crate::vm::{CpuMode, Regs, TSS_ADDR, Vm, VmError};
use hypercall_abi::layout;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use x86_64::structures::paging::PageTableFlags;

/// A guest-physical range and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Area {
    /// First GPA.
    pub start: u64,
    /// End GPA (exclusive).
    pub end: u64,
    /// What it holds.
    pub what: String,
    /// Host virtual address of `start` (None: no guest RAM behind it).
    pub hva: Option<u64>,
}

/// A segment register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seg {
    /// Selector.
    pub selector: u16,
    /// Base.
    pub base: u64,
    /// Limit.
    pub limit: u32,
    /// Type field.
    pub type_: u8,
    /// L (64-bit code).
    pub l: u8,
    /// D/B (32-bit default size).
    pub db: u8,
}

impl From<&kvm_bindings::kvm_segment> for Seg {
    fn from(s: &kvm_bindings::kvm_segment) -> Seg {
        Seg {
            selector: s.selector,
            base: s.base,
            limit: s.limit,
            type_: s.type_,
            l: s.l,
            db: s.db,
        }
    }
}

/// The special registers the guest starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Special {
    /// CS.
    pub cs: Seg,
    /// DS.
    pub ds: Seg,
    /// SS.
    pub ss: Seg,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
    /// GDTR base.
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
    /// The GDT's descriptors, read from guest memory (empty in real mode).
    pub gdt: Vec<u64>,
}

/// One present page-table entry (or a run of leaf entries that map
/// consecutive pages with the same flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Nesting depth (0: the top table).
    pub depth: usize,
    /// Table level name.
    pub level: &'static str,
    /// GPA of the table.
    pub table: u64,
    /// First index.
    pub index: u64,
    /// GPA of the (first) entry.
    pub at: u64,
    /// Number of entries in the run (1 for a table pointer).
    pub count: u64,
    /// The first entry's value.
    pub value: u64,
    /// Flags, e.g. "P RW PS".
    pub flags: String,
    /// First GVA it maps.
    pub gva: u64,
    /// Bytes it maps (the whole run).
    pub span: u64,
    /// The next table, for a pointer entry.
    pub next_table: Option<u64>,
    /// First GPA, for a page entry.
    pub page_gpa: Option<u64>,
    /// Page size, for a page entry.
    pub page_size: Option<u64>,
}

/// A step of `--translate`, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranslateStep {
    /// What this step read or computed.
    pub text: String,
}

/// A `--translate GVA` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// The address asked for.
    pub gva: u64,
    /// The steps.
    pub steps: Vec<TranslateStep>,
    /// The final GPA.
    pub gpa: Option<u64>,
    /// The final HVA.
    pub hva: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Everything `host layout` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// The CPU mode.
    pub mode: CpuMode,
    /// Guest memory size.
    pub mem_size: u64,
    /// HVA of GPA 0 (memory slot 0).
    pub mem_hva: u64,
    /// The guest-physical map, sorted, free space included.
    pub areas: Vec<Area>,
    /// KVM_GET_VCPU_MMAP_SIZE.
    pub kvm_run_size: usize,
    /// Where the vCPU's kvm_run is mapped in this process.
    pub kvm_run_hva: u64,
    /// Registers at the start.
    pub regs: Regs,
    /// Special registers at the start.
    pub sregs: Special,
    /// How addresses translate.
    pub paging: &'static str,
    /// Page-table entries, depth first.
    pub tables: Vec<Entry>,
    /// Where the live control registers differ from what the host set.
    pub warnings: Vec<String>,
    /// `--translate`.
    pub translation: Option<Translation>,
}

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

struct TreeWalk<'a> {
    mem: &'a GuestMemoryMmap,
    out: Vec<Entry>,
    tables: Vec<(Level, u64)>,
    seen: BTreeSet<u64>,
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
    fn long(&mut self, table: u64, depth: usize, gva_base: u64) {
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
    fn bits32(&mut self, pd: u64, pse: bool) {
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

fn explain(mem: &GuestMemoryMmap, p: &Paging, gva: u64) -> Translation {
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
            "4-level paging (CR0.PG, EFER.LMA): CR3 = {:#x}; GVA {gva:#x} splits into PML4 {} | PDPT {} | PD {} | PT {} | offset {:#x}",
            p.cr3,
            (gva >> 39) & 0x1ff,
            (gva >> 30) & 0x1ff,
            (gva >> 21) & 0x1ff,
            (gva >> 12) & 0x1ff,
            gva & 0xfff
        )),
        PagingMode::Bits32 => say(format!(
            "32-bit paging (CR0.PG, no PAE), PSE {}: CR3 = {:#x}; GVA {gva:#x} splits into PD {} | PT {} | offset {:#x}",
            if p.cr4 & (1 << 4) != 0 { "on" } else { "off" },
            p.cr3,
            (gva >> 22) & 0x3ff,
            (gva >> 12) & 0x3ff,
            gva & 0xfff
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

/// Reads the layout of `vm` (set up and loaded with `plan`, not yet run).
pub fn describe(vm: &mut Vm, plan: &Plan, translate_gva: Option<u64>) -> Result<Layout, VmError> {
    let kvm_run_size = vm.kvm_run_size();
    let kvm_run_hva = vm.kvm_run_addr();
    let regs = Regs::from(&vm.vcpu().get_regs().map_err(|source| VmError::Kvm {
        what: "KVM_GET_REGS",
        source,
    })?);
    let s = vm.vcpu().get_sregs().map_err(|source| VmError::Kvm {
        what: "KVM_GET_SREGS",
        source,
    })?;
    let mem = vm.memory();
    let mem_size = vm.mem_size();
    let mem_hva = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| VmError::Write(e.to_string()))? as u64;
    let paging = Paging::from_sregs(&s);
    let protected = s.cr0 & 1 != 0;
    let gdt: Vec<u64> = if protected {
        (0..=u64::from(s.gdt.limit) / 8)
            .map_while(|i| mem.read_obj::<u64>(GuestAddress(s.gdt.base + 8 * i)).ok())
            .collect()
    } else {
        Vec::new()
    };
    let mut tw = TreeWalk {
        mem,
        out: Vec::new(),
        tables: Vec::new(),
        seen: BTreeSet::new(),
    };
    let mode_name = match paging.mode() {
        PagingMode::Off if !protected => "none: real mode, GPA = segment base + 16-bit offset",
        PagingMode::Off => "none: protected mode without paging, GPA = segment base + offset",
        PagingMode::Long4 => "4-level (PML4 -> PDPT -> PD -> PT), 48-bit GVAs",
        PagingMode::Bits32 => "2-level 32-bit (PD -> PT), PSE 4 MiB pages",
        PagingMode::Pae => "PAE (not shown)",
    };
    let mut warnings = Vec::new();
    let want = Paging::at_start(vm.mode());
    // the bits the host sets (real mode keeps the reset CR0, CD | NW | ET)
    const PE_PG: u64 = 1 | 1 << 31;
    if (want.cr0 & PE_PG, want.cr3, want.cr4, want.efer)
        != (paging.cr0 & PE_PG, paging.cr3, paging.cr4, paging.efer)
    {
        warnings.push(format!(
            "the host set CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}, but KVM reports CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}: this KVM did not take the mode as given{}",
            want.cr0,
            want.cr3,
            want.cr4,
            want.efer,
            paging.cr0,
            paging.cr3,
            paging.cr4,
            paging.efer,
            if vm.mode() == CpuMode::Paged32 {
                if std::path::Path::new("/sys/module/kvm_pvm").exists() {
                    " (this /dev/kvm is kvm-pvm, which cannot run 32-bit paging; the tables below are the ones the host wrote, found from CR3, but the CPU does not use them and `host run --mode paged32` refuses)"
                } else {
                    " (the tables below are the ones the host wrote, found from CR3, but the CPU does not use them)"
                }
            } else {
                ""
            }
        ));
    }
    match paging.mode() {
        PagingMode::Long4 => tw.long(paging.cr3 & translate::ADDR_MASK, 0, 0),
        PagingMode::Bits32 => tw.bits32(paging.cr3 & 0xffff_f000, paging.cr4 & (1 << 4) != 0),
        // the host's tables for a mode KVM did not take (see warnings)
        _ if vm.mode() == CpuMode::Paged32 => tw.bits32(paging.cr3 & 0xffff_f000, true),
        _ => {}
    }

    let mut areas: Vec<Area> = Vec::new();
    let mut add = |start: u64, end: u64, what: String| {
        areas.push(Area {
            start,
            end,
            what,
            hva: None,
        })
    };
    if protected {
        add(
            s.gdt.base,
            s.gdt.base + u64::from(s.gdt.limit) + 1,
            format!("GDT: {} descriptors (GDTR)", gdt.len()),
        );
    }
    let mut tables = tw.tables.clone();
    tables.sort_by_key(|t| t.1);
    for (level, gpa) in &tables {
        add(
            *gpa,
            gpa + 4096,
            format!("page table: {} (from CR3)", level.name()),
        );
    }
    for seg in &plan.segments {
        let kind = if seg.exec { "code" } else { "data" };
        let file = seg.file.end - seg.file.start;
        let bss = seg.memsz - file as u64;
        add(
            seg.gpa,
            seg.gpa + seg.memsz,
            if bss > 0 {
                format!("guest image: {kind}, {file} bytes from the file + {bss} zero")
            } else {
                format!("guest image: {kind}, {file} bytes from the file")
            },
        );
    }
    let (stack_bottom, what) = match vm.mode() {
        CpuMode::Real => (layout::REAL_END, "stack: SS:SP, grows down"),
        _ => (layout::STACK_BOTTOM, "stack: RSP, grows down"),
    };
    if regs.rsp > stack_bottom {
        add(stack_bottom, regs.rsp, what.into());
    }
    add(
        layout::CHECK_ADDR,
        layout::CHECK_ADDR + 4,
        "ABI: the 42-check word".into(),
    );
    if vm.mode() != CpuMode::Real {
        add(
            layout::RESULT_PAGE,
            layout::RESULT_PAGE + 4096,
            "ABI: num_exits_by_type result page".into(),
        );
    }
    if vm.mode() == CpuMode::Long {
        use hypercall_abi::simvirtio as sv;
        let table = std::mem::size_of::<sv::DeviceTable>() as u64;
        add(
            sv::DEVICE_TABLE,
            sv::DEVICE_TABLE + table,
            "SIMVIRTIO: device table".into(),
        );
        add(
            sv::TX_CONTROL,
            sv::RX_CONTROL + 8,
            "SIMVIRTIO: TX and RX queue control (head, tail)".into(),
        );
        add(
            sv::TX_BUFFER,
            sv::RX_BUFFER + u64::from(sv::QUEUE_LEN),
            "SIMVIRTIO: TX and RX queue buffers".into(),
        );
        add(
            sv::MMIO_BASE,
            sv::MMIO_BASE + sv::MMIO_SIZE,
            "SIMVIRTIO: configuration space (MMIO exits, no guest RAM)".into(),
        );
    }
    add(
        TSS_ADDR,
        TSS_ADDR + 3 * 4096,
        "KVM_SET_TSS_ADDR: 3 pages for VMX's real-mode TSS (no guest RAM)".into(),
    );
    areas.sort_by_key(|a| (a.start, a.end));
    // free space: the gaps in RAM
    let mut free = Vec::new();
    let mut at = 0;
    for a in &areas {
        if a.start > at && at < mem_size {
            free.push((at, a.start.min(mem_size)));
        }
        at = at.max(a.end);
    }
    if at < mem_size {
        free.push((at, mem_size));
    }
    for (a, b) in free {
        areas.push(Area {
            start: a,
            end: b,
            what: "free".into(),
            hva: None,
        });
    }
    areas.sort_by_key(|a| (a.start, a.end));
    for a in &mut areas {
        a.hva = (a.start < mem_size).then(|| mem_hva + a.start);
    }
    let translation = translate_gva.map(|g| explain(mem, &paging, g));
    Ok(Layout {
        mode: vm.mode(),
        mem_size,
        mem_hva,
        areas,
        kvm_run_size,
        kvm_run_hva,
        regs,
        sregs: Special {
            cs: Seg::from(&s.cs),
            ds: Seg::from(&s.ds),
            ss: Seg::from(&s.ss),
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
            gdt_base: s.gdt.base,
            gdt_limit: s.gdt.limit,
            gdt,
        },
        paging: mode_name,
        tables: tw.out,
        warnings,
        translation,
    })
}

/// Sizes in the map: exact units when round, else approximate with "~".
fn size_text(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        _ if b.is_multiple_of(1024) => crate::size::human(b),
        1024..0x10_0000 => format!("~{:.1} KiB", b as f64 / 1024.0),
        _ => format!("~{:.1} MiB", b as f64 / (1 << 20) as f64),
    }
}

fn seg_line(name: &str, s: &Seg) -> String {
    format!(
        "  {name} selector {:#06x} base {:#x} limit {:#x} type {:#x}{}{}\n",
        s.selector,
        s.base,
        s.limit,
        s.type_,
        if s.l != 0 { " L (64-bit)" } else { "" },
        if s.db != 0 { " D/B (32-bit)" } else { "" }
    )
}

impl Layout {
    /// The human-readable report.
    pub fn text(&self) -> String {
        let h = crate::size::human;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "guest memory: {} ({:#x} bytes), slot 0 at GPA 0x0, mapped at HVA {:#x}..{:#x}",
            h(self.mem_size),
            self.mem_size,
            self.mem_hva,
            self.mem_hva + self.mem_size
        );
        let _ = writeln!(
            o,
            "kvm_run: {} bytes (KVM_GET_VCPU_MMAP_SIZE), mapped at HVA {:#x}",
            self.kvm_run_size, self.kvm_run_hva
        );
        let _ = writeln!(o, "\nguest-physical map:");
        let _ = writeln!(o, "  {:<23} {:>9}  {:<18}  what", "GPA", "size", "HVA");
        for a in &self.areas {
            let hva = a.hva.map_or("-".to_string(), |v| format!("{v:#x}"));
            let _ = writeln!(
                o,
                "  {:<23} {:>9}  {:<18}  {}",
                format!("{:#x}..{:#x}", a.start, a.end),
                size_text(a.end - a.start),
                hva,
                a.what
            );
        }
        let r = &self.regs;
        let s = &self.sregs;
        let _ = writeln!(o, "\nthe vCPU starts with:");
        let _ = writeln!(
            o,
            "  RIP {:#x}  RSP {:#x}  RFLAGS {:#x}  (other general registers 0)",
            r.rip, r.rsp, r.rflags
        );
        o.push_str(&seg_line("CS", &s.cs));
        o.push_str(&seg_line("DS", &s.ds));
        o.push_str(&seg_line("SS", &s.ss));
        let _ = writeln!(
            o,
            "  CR0 {:#x}  CR3 {:#x}  CR4 {:#x}  EFER {:#x}",
            s.cr0, s.cr3, s.cr4, s.efer
        );
        if !s.gdt.is_empty() {
            let _ = writeln!(o, "  GDTR base {:#x} limit {:#x}:", s.gdt_base, s.gdt_limit);
            for (i, d) in s.gdt.iter().enumerate() {
                let _ = writeln!(o, "    GDT[{i}] selector {:#06x} = {d:#018x}", i * 8);
            }
        }
        for w in &self.warnings {
            let _ = writeln!(o, "  warning: {w}");
        }
        let _ = writeln!(o, "\npage tables: {}", self.paging);
        for e in &self.tables {
            let pad = "  ".repeat(e.depth + 1);
            let idx = if e.count > 1 {
                format!("{}[{}..={}]", e.level, e.index, e.index + e.count - 1)
            } else {
                format!("{}[{}]", e.level, e.index)
            };
            let to = match (e.next_table, e.page_gpa, e.page_size) {
                (Some(t), _, _) => format!("next table at GPA {t:#x}"),
                (_, Some(g), Some(ps)) if e.count > 1 => format!(
                    "{} pages of {}: GVA {:#x}..{:#x} -> GPA {g:#x}..{:#x}",
                    e.count,
                    h(ps),
                    e.gva,
                    e.gva + e.span,
                    g + e.span
                ),
                (_, Some(g), Some(ps)) => format!(
                    "a page of {}: GVA {:#x}..{:#x} -> GPA {g:#x}..{:#x}",
                    h(ps),
                    e.gva,
                    e.gva + e.span,
                    g + e.span
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "{pad}{idx} at GPA {:#x} = {:#x} [{}] -> {to}",
                e.at, e.value, e.flags
            );
        }
        if let Some(t) = &self.translation {
            let _ = writeln!(o, "\ntranslate GVA {:#x}:", t.gva);
            for (i, st) in t.steps.iter().enumerate() {
                let _ = writeln!(o, "  {}. {}", i + 1, st.text);
            }
            match (t.gpa, t.hva, &t.error) {
                (Some(g), Some(hv), _) => {
                    let _ = writeln!(o, "  => GPA {g:#x}, HVA {hv:#x}");
                }
                (_, _, Some(e)) => {
                    let _ = writeln!(o, "  => Invalid GVA: {e}");
                }
                _ => {}
            }
        }
        o
    }
}
