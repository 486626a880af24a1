//! What each kind of page holds: the JSON its script draws from.

use super::page::page;
use crate::inspect::Layout;
use crate::matrix::MatrixReport;
use crate::run::Report;
use crate::stats::exits::exit_text;
use crate::timeline::Kind;
use crate::vm::RunOutcome;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Guest output a page keeps (the rest is counted).
pub const HTML_OUTPUT_CAP: usize = 64 << 10;
/// Exit-timeline slices a page keeps, all vCPUs together (the histograms
/// count every slice the run kept).
pub const MAX_PAGE_SLICES: usize = 60_000;
/// Most KVM calls drawn in the sequence diagram.
const MAX_CALLS: usize = 400;

/// A writer that passes everything on and keeps the first
/// [`HTML_OUTPUT_CAP`] bytes for the page.
pub struct Tee<'a> {
    inner: &'a mut dyn std::io::Write,
    /// The bytes kept.
    pub kept: Vec<u8>,
    /// Bytes past the cap.
    pub dropped: u64,
}

impl<'a> Tee<'a> {
    /// A tee in front of `inner`.
    pub fn new(inner: &'a mut dyn std::io::Write) -> Tee<'a> {
        Tee {
            inner,
            kept: Vec::new(),
            dropped: 0,
        }
    }
}

impl std::io::Write for Tee<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        let room = HTML_OUTPUT_CAP - self.kept.len();
        let keep = n.min(room);
        self.kept.extend_from_slice(&b[..keep]);
        self.dropped += (n - keep) as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Log2 buckets of the host's handling time, per kind of exit: `[[lo_ns,
/// count], ...]` where a bucket holds [lo, 2*lo).
fn histograms(o: &RunOutcome) -> Value {
    // counted by the raw exit, each kind named once after
    let mut raw: BTreeMap<(u8, u8, bool, u64), BTreeMap<u32, u64>> = BTreeMap::new();
    for v in &o.vcpus {
        let Some(t) = &v.timeline else { continue };
        for s in &t.slices {
            if let Kind::Exit(e) = s.kind {
                let b = 64 - s.dur_ns.max(1).leading_zeros() - 1;
                *raw.entry(e).or_default().entry(b).or_default() += 1;
            }
        }
    }
    let mut by: BTreeMap<String, BTreeMap<u32, u64>> = BTreeMap::new();
    for (e, buckets) in raw {
        let row = by.entry(exit_text(e)).or_default();
        for (b, c) in buckets {
            *row.entry(b).or_default() += c;
        }
    }
    let rows: Vec<Value> = by
        .into_iter()
        .map(|(what, b)| {
            let n: u64 = b.values().sum();
            json!({
                "what": what,
                "count": n,
                "buckets": b.into_iter().map(|(k, c)| json!([1u64 << k, c])).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(rows)
}

/// Each vCPU's slices, compact: `kinds` names each kind once, `slices`
/// are `[start_ns, dur_ns, kind]` (kind 0: in KVM_RUN), together at most
/// [`MAX_PAGE_SLICES`].
fn timelines(o: &RunOutcome) -> Value {
    let mut kinds: Vec<String> = vec!["KVM_RUN".into()];
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    // each raw exit named once (not once per slice)
    let mut seen: BTreeMap<(u8, u8, bool, u64), usize> = BTreeMap::new();
    let per = MAX_PAGE_SLICES / o.vcpus.len().max(1);
    let mut out = Vec::new();
    for v in &o.vcpus {
        let Some(t) = &v.timeline else { continue };
        let mut slices = Vec::new();
        for s in t.slices.iter().take(per) {
            let k = match s.kind {
                Kind::Run => 0,
                Kind::Exit(e) => *seen.entry(e).or_insert_with(|| {
                    let name = exit_text(e);
                    *index.entry(name.clone()).or_insert_with(|| {
                        kinds.push(name);
                        kinds.len() - 1
                    })
                }),
            };
            slices.push(json!([s.start_ns, s.dur_ns, k]));
        }
        let left = t.slices.len().saturating_sub(per) as u64 + t.dropped;
        out.push(json!({"vcpu": v.id, "slices": slices, "dropped": left}));
    }
    json!({"kinds": kinds, "vcpus": out})
}

/// The KVM calls: set-up in order, the loop's exits by kind, the end.
fn kvm_calls(k: &crate::trace::Kept) -> Value {
    use crate::trace::Phase;
    let call = |c: &crate::trace::Call| {
        json!({
            "target": if c.ioctl { c.target.as_str() } else { "host" },
            "name": c.name, "args": c.args, "ret": c.ret, "purpose": c.purpose,
        })
    };
    let pick = |p: Phase| -> Vec<Value> {
        k.calls
            .iter()
            .filter(|c| c.phase == p)
            .take(MAX_CALLS)
            .map(call)
            .collect()
    };
    let handlers = crate::trace::handlers(&k.calls);
    json!({
        "setup": pick(Phase::Setup),
        "exits": k.exits,
        "handlers": handlers.iter().map(|(n, p, c)| json!([n, p, c])).collect::<Vec<_>>(),
        "last_exit": k.last_exit,
        "end": pick(Phase::End),
        "runs": k.runs,
        "calls": k.calls.len(),
        "dropped": k.dropped,
    })
}

/// The page of a `host run`: `json` is its `--json` object (output
/// included), `layout` the VM as it was set up, `text` the text report.
pub fn run_page(r: &Report, json_report: Value, layout: Option<&Layout>, text: &str) -> String {
    let o = &r.outcome;
    let data = json!({
        "kind": "run",
        "title": format!("host run {}", r.name),
        "run": json_report,
        "text": text,
        "layout": layout,
        "timeline": timelines(o),
        "histograms": histograms(o),
        "kvm_calls": o.kvm_calls.as_ref().map(kvm_calls),
        "simvirtio_history": o.device_history,
        "crash_text": r.crash.as_ref().map(|c| c.text()),
    });
    page(&data)
}

/// The page of a `host layout`.
pub fn layout_page(name: &str, l: &Layout) -> String {
    let data = json!({
        "kind": "layout",
        "title": format!("host layout {name}"),
        "layout": l,
        "text": l.text(),
    });
    page(&data)
}

/// The page of a `host matrix`.
pub fn matrix_page(r: &MatrixReport) -> String {
    let data = json!({
        "kind": "matrix",
        "title": "host matrix",
        "matrix": r,
        "text": r.human(),
        "timeline_svg": r.timeline_svg(),
        "turns": r.turns.len(),
    });
    page(&data)
}
