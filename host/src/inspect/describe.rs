//! Reads a live VM into a [`Layout`].

use super::model::*;
use super::tables::{TreeWalk, explain};
use crate::kvm::KvmError;
use crate::kvm::vm::TSS_ADDR;
use crate::loader::Plan;
use crate::vm::{Vm, VmError};
use crate::x86::CpuMode;
use crate::x86::translate::{self, Level, Paging, PagingMode};
use hypercall_abi::layout;
use std::collections::BTreeSet;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// Reads the layout of `vm` (set up and loaded with `plan`, not yet run).
pub fn describe(vm: &mut Vm, plan: &Plan, translate_gva: Option<u64>) -> Result<Layout, VmError> {
    let kvm_run_size = vm.vcpu().run_size();
    let kvm_run_hva = vm.vcpu_mut().kvm_run_addr();
    let regs = vm.vcpu().regs(&mut None)?;
    let s = vm.vcpu().sregs("layout: the start state", &mut None)?;
    let mem = vm.memory();
    let mem_size = vm.mem_size();
    let mem_hva = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| KvmError::Write(e.to_string()))? as u64;
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
        PagingMode::Off if vm.mode() == CpuMode::Paged32 => {
            "none in effect (KVM did not take CR0.PG: see the warning); the host wrote 2-level 32-bit tables"
        }
        PagingMode::Off if !protected => "none: real mode, GPA = segment base + 16-bit offset",
        PagingMode::Off => "none: protected mode without paging, GPA = segment base + offset",
        PagingMode::Long4 => "4-level paging, 48-bit GVAs",
        PagingMode::Bits32 => "2-level 32-bit paging, PSE 4 MiB pages",
        PagingMode::Pae => "PAE (not shown)",
    };
    let mut warnings = Vec::new();
    let want = vm.mode().start_paging();
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
        let heap = match plan.heap {
            Some((at, size)) if seg.range().contains(&at) => format!(
                "; guest_rt::heap!: {} at {at:#x}..{:#x}",
                crate::size::human(size),
                at + size
            ),
            _ => String::new(),
        };
        add(
            seg.gpa,
            seg.gpa + seg.memsz,
            if bss > 0 {
                format!("guest image: {kind}, {file} bytes from the file + {bss} zero{heap}")
            } else {
                format!("guest image: {kind}, {file} bytes from the file{heap}")
            },
        );
    }
    let (stack_bottom, what) = match vm.mode() {
        CpuMode::Real => (layout::REAL_END, "stack: SS:SP, grows down".to_string()),
        CpuMode::Long if s.idt.base == layout::HOST_IDT => {
            let g = crate::x86::exception::stack_guard(0);
            (
                layout::STACK_BOTTOM,
                format!(
                    "stack: RSP, grows down; its guard page {:#x}..{:#x} is not mapped",
                    g.start, g.end
                ),
            )
        }
        _ => (layout::STACK_BOTTOM, "stack: RSP, grows down".to_string()),
    };
    if regs.rsp > stack_bottom {
        add(stack_bottom, regs.rsp, what);
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
    add(
        hypercall_abi::args::AREA,
        hypercall_abi::args::AREA_END,
        "ABI: the guest's arguments (guest_rt::args)".into(),
    );
    if vm.mode() == CpuMode::Long && s.idt.base == layout::HOST_IDT {
        use crate::x86::exception as x;
        let n = vm.vcpu_count() as u64;
        add(
            x::IDT,
            x::STUBS,
            "host IDT: 32 exception gates (IDTR), each to its stub".into(),
        );
        add(
            x::STUBS,
            x::TSS,
            format!(
                "host exception stubs: `out` to port {:#x}",
                layout::EXCEPTION_PORT
            ),
        );
        add(
            x::TSS,
            x::TSS + n * 128,
            "host TSS per vCPU (TR): IST1, its exception stack".into(),
        );
        add(
            x::IST_STACKS,
            x::IST_STACKS + n * x::IST_SIZE,
            "host exception stack per vCPU (IST1)".into(),
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
    // the in-kernel controllers' register windows: KVM serves them
    let interrupts = super::irq::of_vm(vm)?;
    if let Some(l) = interrupts.lapic.as_ref().filter(|l| l.mode == "xAPIC") {
        let base = l.apic_base & !0xfff;
        let what = "local APIC: each vCPU's own registers (KVM's in-kernel APIC, no guest RAM)";
        add(base, base + 0x1000, what.into());
    }
    if let Some((base, _)) = &interrupts.ioapic {
        let what = "IOAPIC: its registers (KVM's in-kernel IOAPIC, no guest RAM)";
        add(*base, base + 0x100, what.into());
    }
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
        paging: format!("{mode_name}{}", tables_used(&tw.tables, &tw.out)),
        tables: tw.out,
        warnings,
        translation,
        interrupts,
    })
}

/// What the walk found: the tables per level, and the page sizes mapped
/// (`: 1 PML4, 1 PDPT, 2 PD (4 table pages), mapping 2 MiB pages`).
fn tables_used(tables: &[(Level, u64)], entries: &[Entry]) -> String {
    if tables.is_empty() {
        return String::new();
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (level, _) in tables {
        match counts.iter_mut().find(|(n, _)| *n == level.name()) {
            Some((_, c)) => *c += 1,
            None => counts.push((level.name(), 1)),
        }
    }
    let mut sizes: Vec<u64> = entries.iter().filter_map(|e| e.page_size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let levels = counts
        .iter()
        .map(|(n, c)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let pages = sizes
        .iter()
        .map(|&b| crate::size::human(b))
        .collect::<Vec<_>>()
        .join(" and ");
    format!(
        ": {levels} ({} table page{}), mapping {pages} pages",
        tables.len(),
        if tables.len() == 1 { "" } else { "s" }
    )
}
