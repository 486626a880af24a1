//! The text form of a [`Layout`].

use super::model::*;
use std::fmt::Write as _;

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
        o.push('\n');
        o.push_str(&self.interrupts.text());
        if let Some(t) = &self.translation {
            o.push('\n');
            o.push_str(&t.text());
        }
        o
    }
}

impl Translation {
    /// The walk step by step, as `host layout --translate` and gdb's
    /// `monitor translate` print it.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "translate GVA {:#x}:", self.gva);
        for (i, st) in self.steps.iter().enumerate() {
            let _ = writeln!(o, "  {}. {}", i + 1, st.text);
        }
        match (self.gpa, self.hva, &self.error) {
            (Some(g), Some(hv), _) => {
                let _ = writeln!(o, "  => GPA {g:#x}, HVA {hv:#x}");
            }
            (_, _, Some(e)) => {
                let _ = writeln!(o, "  => Invalid GVA: {e}");
            }
            _ => {}
        }
        o
    }
}
