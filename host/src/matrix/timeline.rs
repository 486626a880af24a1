//! The `--timeline` picture: who ran when.

use super::report::MatrixReport;

impl MatrixReport {
    /// The run as Chrome trace-event JSON (`host matrix --trace-out`,
    /// ui.perfetto.dev): a track per VM, a slice per turn it was given
    /// (all on the one scheduler thread, so no two overlap).
    pub fn trace_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut events = vec![json!({
            "ph": "M", "pid": 1, "tid": 0, "name": "process_name",
            "args": {"name": "host matrix"},
        })];
        for (i, v) in self.vms.iter().enumerate() {
            events.push(json!({
                "ph": "M", "pid": 1, "tid": i + 1, "name": "thread_name",
                "args": {"name": format!("{} (VMFD {})", v.name, v.vmfd)},
            }));
        }
        for t in &self.turns {
            events.push(json!({
                "ph": "X", "pid": 1, "tid": t.vm + 1, "name": "turn", "cat": "matrix",
                "ts": t.start_ns as f64 / 1e3,
                "dur": t.end_ns.saturating_sub(t.start_ns) as f64 / 1e3,
            }));
        }
        json!({
            "traceEvents": events,
            "displayTimeUnit": "ns",
            "otherData": {"vms": self.vms.len(), "turns": self.turns.len()},
        })
    }

    /// A picture of who ran when: a row per VM, a bar per turn, a time
    /// axis, each VM's share in the legend.
    pub fn timeline_svg(&self) -> String {
        use std::fmt::Write as _;
        const COLORS: [&str; 6] = [
            "#2b7bb9", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4",
        ];
        let labels: Vec<String> = self
            .vms
            .iter()
            .map(|v| format!("{} (VMFD {})", xml(&v.name), v.vmfd))
            .collect();
        // wide enough for the longest label (about 7 px a character at 12 px)
        let longest = self
            .vms
            .iter()
            .map(|v| v.name.chars().count() + 11)
            .max()
            .unwrap_or(0);
        let left = (longest as f64 * 7.0 + 24.0).max(130.0).round();
        let (width, row, top) = (900.0, 28.0, 40.0);
        let n = self.vms.len();
        let total = self.elapsed_ns.max(1) as f64;
        let height = top + row * n as f64 + 40.0 + 20.0 * n as f64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="12">"#,
            left + width + 20.0
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="20" font-size="14">host matrix: who ran when ({} turns, {:.3} s)</text>"#,
            self.turns.len(),
            total / 1e9
        );
        for (i, label) in labels.iter().enumerate() {
            let y = top + row * i as f64;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{label}</text>"#,
                left - 8.0,
                y + row / 2.0 + 4.0,
            );
            let _ = writeln!(
                s,
                r##"<rect x="{left}" y="{}" width="{width}" height="{}" fill="#f2f2f2"/>"##,
                y + 3.0,
                row - 6.0
            );
        }
        // one rect per turn; a white edge keeps back-to-back turns of one
        // VM apart
        let px = |ns: u64| left + ns as f64 / total * width;
        for t in &self.turns {
            let (a, b) = (px(t.start_ns), px(t.end_ns));
            let _ = writeln!(
                s,
                r#"<rect x="{a:.2}" y="{}" width="{:.2}" height="{}" fill="{}" stroke="white" stroke-width="0.5"/>"#,
                top + row * t.vm as f64 + 3.0,
                (b - a).max(0.5),
                row - 6.0,
                COLORS[t.vm % COLORS.len()]
            );
        }
        // time axis
        let axis_y = top + row * n as f64 + 6.0;
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
            left + width
        );
        let step = nice_step(total / 10.0);
        // one unit for the whole axis, from the run's length: 0 s, 0.2 s...
        let unit = Unit::for_span(total);
        let mut t = 0.0;
        while t <= total {
            let x = left + t / total * width;
            let _ = writeln!(
                s,
                r#"<line x1="{x:.2}" y1="{axis_y}" x2="{x:.2}" y2="{}" stroke="black"/><text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"#,
                axis_y + 5.0,
                axis_y + 18.0,
                unit.label(t)
            );
            t += step;
        }
        for (i, v) in self.vms.iter().enumerate() {
            let y = axis_y + 40.0 + 20.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}: weight {}, {} turn{}, {:.1}% of the CPU time (target {:.1}%)</text>"#,
                y - 10.0,
                COLORS[i % COLORS.len()],
                left + 18.0,
                xml(&v.name),
                v.weight,
                v.quanta,
                if v.quanta == 1 { "" } else { "s" },
                v.share * 100.0,
                v.target_share * 100.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 1, 2 or 5 times a power of ten, at least `raw` ns.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1.0).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&v| v >= raw)
        .unwrap_or(10.0 * p)
}

/// The axis's unit.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Unit {
    ns: f64,
    name: &'static str,
}

impl Unit {
    /// Seconds for a run of a second or more, else ms, else µs.
    fn for_span(span: f64) -> Unit {
        match span {
            s if s >= 1e9 => Unit { ns: 1e9, name: "s" },
            s if s >= 1e6 => Unit {
                ns: 1e6,
                name: "ms",
            },
            _ => Unit {
                ns: 1e3,
                name: "µs",
            },
        }
    }

    /// `ns` in this unit, without trailing zeros: "0 s", "1.5 s", "200 ms".
    fn label(self, ns: f64) -> String {
        let v = format!("{:.3}", ns / self.ns);
        let v = v.trim_end_matches('0').trim_end_matches('.');
        format!("{v} {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(1.3e8), 2e8);
        assert_eq!(nice_step(4e6), 5e6);
        let s = Unit::for_span(4e8);
        assert_eq!(
            s,
            Unit {
                ns: 1e6,
                name: "ms"
            }
        );
        assert_eq!(s.label(0.0), "0 ms");
        assert_eq!(s.label(4e8), "400 ms");
        let s = Unit::for_span(5e9);
        assert_eq!(
            (s.label(0.0), s.label(1.5e9)),
            ("0 s".into(), "1.5 s".into())
        );
    }
}
