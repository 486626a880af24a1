//! The exit table as text.

use super::exits::ExitStats;
use super::irqs::IrqVia;
use super::kinds::{Dir, ExitReason};
use std::fmt::Write as _;

impl ExitStats {
    /// The human-readable exit table; with measured handling times
    /// (`--stats`), two more columns: total and mean host time per row.
    pub fn table(&self) -> String {
        let timed = self.timed;
        let time = |count: u64, ns: u64| -> String {
            if !timed {
                return String::new();
            }
            format!(
                " {:>12.1} {:>10}",
                ns as f64 / 1e3,
                ns.checked_div(count).unwrap_or(0)
            )
        };
        let mut s = format!("exits: {} total\n", self.total);
        if timed {
            let all: u64 = self.reason_ns.iter().sum();
            s = format!(
                "exits: {} total, host handling {:.1} us\n  {:<36} {:>10} {:>12} {:>10}\n",
                self.total,
                all as f64 / 1e3,
                "reason / port / address",
                "count",
                "total us",
                "mean ns"
            );
        }
        for r in self.reasons() {
            let code = r.kvm_code.map(|c| format!("({c})")).unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<31} {:>4} {:>10}{}",
                r.name,
                code,
                r.count,
                time(r.count, r.handling_ns)
            );
            if r.reason == ExitReason::Io {
                for p in self.ports() {
                    let hc = p.hypercall.map(|h| format!(" {h}")).unwrap_or_default();
                    let what = format!("{:<3} port {:#06x}{hc}", p.dir.name(), p.port);
                    let _ = writeln!(
                        s,
                        "    {what:<34} {:>10}{}",
                        p.count,
                        time(p.count, p.handling_ns)
                    );
                }
            }
            if r.reason == ExitReason::Io && self.io.others.total() > 0 {
                let o = self.io.others;
                let _ = writeln!(
                    s,
                    "    {:<34} {:>10}{}",
                    format!("other ports ({} in, {} out)", o.reads, o.writes),
                    o.total(),
                    time(o.total(), o.handling_ns)
                );
            }
            if r.reason == ExitReason::Mmio {
                for a in self.mmio() {
                    let dev = a.device.map(|d| format!(" {d}")).unwrap_or_default();
                    let what = format!(
                        "{:<5} {:#x}{dev}",
                        if a.dir == Dir::In { "read" } else { "write" },
                        a.addr
                    );
                    let _ = writeln!(
                        s,
                        "    {what:<34} {:>10}{}",
                        a.count,
                        time(a.count, a.handling_ns)
                    );
                }
                if self.mmio.others.total() > 0 {
                    let o = self.mmio.others;
                    let _ = writeln!(
                        s,
                        "    {:<34} {:>10}{}",
                        format!("other addresses ({} rd, {} wr)", o.reads, o.writes),
                        o.total(),
                        time(o.total(), o.handling_ns)
                    );
                }
            }
        }
        if let Some(i) = self.interrupts() {
            let window = self.count(ExitReason::IrqWindow);
            let _ = writeln!(
                s,
                "interrupts: {} delivered by {}{}",
                i.total,
                i.via.name(),
                if window > 0 {
                    format!(" ({window} interrupt window exits)")
                } else {
                    String::new()
                }
            );
            for c in &i.counts {
                let what = match i.via {
                    IrqVia::KvmInterrupt => format!("vector {:#04x}", c.n),
                    _ => format!("{} {}", i.what, c.n),
                };
                let _ = writeln!(s, "  {what:<36} {:>10}", c.count);
            }
        }
        s
    }
}
