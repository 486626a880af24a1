//! The interrupt state as text (`host layout`, gdb's `monitor irq`).

use super::irq::IrqView;
use crate::config::IrqChip;
use std::fmt::Write as _;

fn list(v: &[u8]) -> String {
    match v {
        [] => "none".into(),
        _ => v
            .iter()
            .map(|x| format!("{x:#04x}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl IrqView {
    /// The text both views print.
    pub fn text(&self) -> String {
        let mut s = format!(
            "interrupts: {}\n",
            match self.chip {
                IrqChip::None => "no controller (--irqchip none): nothing interrupts the guest",
                IrqChip::User =>
                    "the host's user-space controller (KVM_INTERRUPT at an entry the guest can take)",
                IrqChip::Kernel => "KVM's in-kernel PIC, IOAPIC, local APICs and PIT",
            }
        );
        match &self.table {
            None => s.push_str("  its IDT/IVT: not in guest memory\n"),
            Some(t) => {
                let _ = writeln!(s, "  {} at {:#x}, limit {:#x}:", t.kind, t.base, t.limit);
                for r in &t.runs {
                    let vs = match r.first == r.last {
                        true => format!("{:#04x}", r.first),
                        false => format!("{:#04x}-{:#04x}", r.first, r.last),
                    };
                    let apart = match r.stride {
                        0 => String::new(),
                        n => format!(".. ({n} bytes apart)"),
                    };
                    let whose = match r.whose {
                        "" => String::new(),
                        w => format!(": {w}"),
                    };
                    let _ = writeln!(s, "    {vs:<10} -> {:#x}{apart}{whose}", r.target);
                }
            }
        }
        if let Some(l) = &self.lapic {
            let _ = writeln!(
                s,
                "  local APIC: base {:#x} ({}{}), id {}, {}, TPR {}",
                l.apic_base & !0xfff,
                l.mode,
                if l.apic_base & 1 << 8 != 0 {
                    ", BSP"
                } else {
                    ""
                },
                l.id,
                match l.enabled {
                    true => format!("software-enabled (spurious vector {:#04x})", l.spurious),
                    false => "software-disabled".into(),
                },
                l.tpr
            );
            let _ = writeln!(
                s,
                "    timer: vector {:#04x}, {}{}, initial count {}, divide by {}",
                l.timer_vector,
                l.timer_mode,
                if l.timer_masked { ", masked" } else { "" },
                l.timer_initial,
                l.timer_divide
            );
            let _ = writeln!(s, "    IRR: {}   ISR: {}", list(&l.irr), list(&l.isr));
        }
        if let Some([m, sl]) = &self.pic {
            for (name, p) in [("master", m), ("slave", sl)] {
                let _ = writeln!(
                    s,
                    "  PIC {name}: vectors {:#04x}-{:#04x}, IMR {:#04x}, IRR {:#04x}, ISR {:#04x}",
                    p.base,
                    p.base.wrapping_add(7),
                    p.imr,
                    p.irr,
                    p.isr
                );
            }
        }
        if let Some((base, routes)) = &self.ioapic {
            let _ = write!(s, "  IOAPIC at {base:#x}:");
            if routes.is_empty() {
                s.push_str(" every pin masked\n");
            }
            for r in routes {
                let _ = write!(
                    s,
                    "\n    pin {} -> vector {:#04x}, APIC {}, {}",
                    r.pin,
                    r.vector,
                    r.dest,
                    if r.level { "level" } else { "edge" }
                );
            }
            if !routes.is_empty() {
                s.push('\n');
            }
        }
        if let Some((mode, _)) = self.pit0.filter(|(m, _)| *m > 5) {
            let _ = writeln!(s, "  PIT channel 0: not programmed (mode {mode})");
        } else if let Some((mode, count)) = self.pit0 {
            let hz = match count {
                0 => 1_193_182.0 / 65536.0,
                n => 1_193_182.0 / f64::from(n),
            };
            let _ = writeln!(
                s,
                "  PIT channel 0: mode {mode}, count {count} ({hz:.1} Hz)"
            );
        }
        s
    }
}
