//! The `--timeline` picture: who ran when.

use super::report::MatrixReport;

impl MatrixReport {
    /// A picture of who ran when: a row per VM, a bar per turn, a time
    /// axis, each VM's share in the legend.
    pub fn timeline_svg(&self) -> String {
        use std::fmt::Write as _;
        const COLORS: [&str; 6] = [
            "#2b7bb9", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4",
        ];
        let (left, width, row, top) = (130.0, 900.0, 28.0, 40.0);
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
        for (i, v) in self.vms.iter().enumerate() {
            let y = top + row * i as f64;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{} (VMFD {})</text>"#,
                left - 8.0,
                y + row / 2.0 + 4.0,
                xml(&v.name),
                v.vmfd
            );
            let _ = writeln!(
                s,
                r##"<rect x="{left}" y="{}" width="{width}" height="{}" fill="#f2f2f2"/>"##,
                y + 3.0,
                row - 6.0
            );
        }
        // one rect per turn, turns closer than a pixel merged
        let px = |ns: u64| left + ns as f64 / total * width;
        let mut open: Vec<Option<(f64, f64)>> = vec![None; n];
        let flush = |s: &mut String, vm: usize, (a, b): (f64, f64)| {
            let y = top + row * vm as f64 + 3.0;
            let _ = writeln!(
                s,
                r#"<rect x="{a:.2}" y="{y}" width="{:.2}" height="{}" fill="{}"/>"#,
                (b - a).max(0.5),
                row - 6.0,
                COLORS[vm % COLORS.len()]
            );
        };
        for t in &self.turns {
            let (a, b) = (px(t.start_ns), px(t.end_ns));
            match open[t.vm] {
                Some((oa, ob)) if a - ob < 1.0 => open[t.vm] = Some((oa, b.max(ob))),
                Some(r) => {
                    flush(&mut s, t.vm, r);
                    open[t.vm] = Some((a, b));
                }
                None => open[t.vm] = Some((a, b)),
            }
        }
        for (vm, r) in open.into_iter().enumerate() {
            if let Some(r) = r {
                flush(&mut s, vm, r);
            }
        }
        // time axis
        let axis_y = top + row * n as f64 + 6.0;
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
            left + width
        );
        let step = nice_step(total / 10.0);
        let mut t = 0.0;
        while t <= total {
            let x = left + t / total * width;
            let _ = writeln!(
                s,
                r#"<line x1="{x:.2}" y1="{axis_y}" x2="{x:.2}" y2="{}" stroke="black"/><text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"#,
                axis_y + 5.0,
                axis_y + 18.0,
                time_label(t)
            );
            t += step;
        }
        for (i, v) in self.vms.iter().enumerate() {
            let y = axis_y + 40.0 + 20.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}: weight {}, {} turns, {:.1}% of guest run time</text>"#,
                y - 10.0,
                COLORS[i % COLORS.len()],
                left + 18.0,
                xml(&v.name),
                v.weight,
                v.quanta,
                v.share * 100.0
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

fn time_label(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.3} s", n / 1e9).replace(".000 s", " s"),
        n if n >= 1e6 => format!("{} ms", (n / 1e6 * 1000.0).round() / 1000.0),
        n => format!("{} µs", (n / 1e3).round()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(1.3e8), 2e8);
        assert_eq!(nice_step(4e6), 5e6);
        assert_eq!(time_label(2e9), "2 s");
        assert_eq!(time_label(5e6), "5 ms");
    }
}
