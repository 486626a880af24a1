//! `host run --trace-out FILE`: the run as Chrome trace-event JSON, which
//! ui.perfetto.dev and chrome://tracing open. One track per vCPU thread
//! with its KVM_RUN slices and the host's handling of each exit (named as
//! the exit table names it), hypercalls and SIMVIRTIO register accesses as
//! instant events on that track. The file is made before the run (the
//! vCPU thread cannot open one once jailed) and written after it.

use super::prepare::RunError;
use crate::stats::exits::exit_text;
use crate::timeline::{Kind, MAX_SLICES};
use crate::vm::{RunOutcome, VmError};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// The file `--trace-out` writes, made now.
pub fn create(path: &Path) -> Result<std::fs::File, RunError> {
    std::fs::File::create(path).map_err(|source| RunError::Create {
        path: crate::diag::escape(&path.display().to_string()).into_owned(),
        source,
    })
}

/// What an exit was, besides its slice: a hypercall or a SIMVIRTIO
/// register, as an instant event's name and category.
fn instant((reason, dir, mmio, at): (u8, u8, bool, u64)) -> Option<(String, &'static str)> {
    use hypercall_abi::simvirtio as sv;
    if reason != crate::stats::ExitReason::Io as u8
        && reason != crate::stats::ExitReason::Mmio as u8
    {
        return None;
    }
    match (mmio, dir) {
        (false, 1 | 2) => u16::try_from(at)
            .ok()
            .and_then(hypercall_abi::Hypercall::from_port)
            .map(|h| (format!("hypercall {}", h.name()), "hypercall")),
        (true, 1 | 2) if sv::in_window(at) => Some((
            format!(
                "simvirtio {} {}",
                if dir == 1 { "read" } else { "write" },
                sv::reg::ident(at - sv::MMIO_BASE)
            ),
            "device",
        )),
        _ => None,
    }
}

/// The host track: each KVM call (ioctl or system call) as an instant
/// event at its time after `base` (the trace's time 0).
fn host_track(calls: &crate::trace::Kept, base: std::time::Instant, events: &mut Vec<Value>) {
    events.push(json!({
        "ph": "M", "pid": 1, "tid": 0, "name": "thread_name",
        "args": {"name": "host: KVM calls"},
    }));
    for c in &calls.calls {
        let Some(at) = c.at else { continue };
        let ts = at.saturating_duration_since(base).as_nanos() as f64 / 1e3;
        events.push(json!({
            "ph": "i", "s": "t", "pid": 1, "tid": 0, "cat": if c.ioctl { "ioctl" } else { "syscall" },
            "name": c.name, "ts": ts,
            "args": {"target": c.target, "args": c.args, "ret": c.ret, "purpose": c.purpose},
        }));
    }
}

/// The trace-event document of `outcome`, and the slices it holds and
/// dropped.
pub fn document(name: &str, outcome: &RunOutcome) -> (Value, u64, u64) {
    let mut events = vec![json!({
        "ph": "M", "pid": 1, "tid": 0, "name": "process_name",
        "args": {"name": format!("host run {name}")},
    })];
    // time 0: the first KVM call, or the run's start
    let epoch = outcome
        .vcpus
        .iter()
        .find_map(|v| v.timeline.as_ref().map(crate::timeline::Timeline::epoch));
    let first_call = outcome
        .kvm_calls
        .as_ref()
        .and_then(|k| k.calls.iter().find_map(|c| c.at));
    let base = match (epoch, first_call) {
        (Some(e), Some(c)) => e.min(c),
        (e, c) => e.or(c).unwrap_or_else(std::time::Instant::now),
    };
    let shift = epoch.map_or(0, |e| e.saturating_duration_since(base).as_nanos() as u64);
    let us = |ns: u64| ns as f64 / 1e3;
    let at = |ns: u64| us(ns + shift);
    if let Some(k) = &outcome.kvm_calls {
        host_track(k, base, &mut events);
    }
    let (mut kept, mut dropped) = (0u64, 0u64);
    for v in &outcome.vcpus {
        let tid = v.id + 1;
        events.push(json!({
            "ph": "M", "pid": 1, "tid": tid, "name": "thread_name",
            "args": {"name": format!("vcpu {}", v.id)},
        }));
        let Some(t) = &v.timeline else { continue };
        dropped += t.dropped;
        for s in &t.slices {
            kept += 1;
            let (name, cat) = match s.kind {
                Kind::Run => ("KVM_RUN".to_string(), "kvm"),
                Kind::Exit(e) => (exit_text(e), "exit"),
            };
            events.push(json!({
                "ph": "X", "pid": 1, "tid": tid, "name": name, "cat": cat,
                "ts": at(s.start_ns), "dur": us(s.dur_ns),
            }));
            if let Kind::Exit(e) = s.kind
                && let Some((what, cat)) = instant(e)
            {
                events.push(json!({
                    "ph": "i", "s": "t", "pid": 1, "tid": tid, "name": what, "cat": cat,
                    "ts": at(s.start_ns),
                }));
            }
        }
    }
    let doc = json!({
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "guest": name,
            "exits": outcome.stats.total(),
            "slices": kept,
            "dropped_slices": dropped,
            "slices_kept_per_vcpu": MAX_SLICES,
            "kvm_calls": outcome.kvm_calls.as_ref().map_or(0, |k| k.calls.len()),
            "dropped_kvm_calls": outcome.kvm_calls.as_ref().map_or(0, |k| k.dropped),
        },
    });
    (doc, kept, dropped)
}

/// Writes the trace of `outcome` to `file`; the line that says so.
pub fn write(
    file: &std::fs::File,
    path: &Path,
    name: &str,
    outcome: &RunOutcome,
) -> Result<String, RunError> {
    let (doc, kept, dropped) = document(name, outcome);
    let shown = crate::diag::escape(&path.display().to_string()).into_owned();
    let text = serde_json::to_string(&doc).unwrap_or_default();
    let mut f = file;
    f.write_all(text.as_bytes())
        .and_then(|()| f.flush())
        .map_err(|source| RunError::Vm(VmError::Host(crate::diag::HostError::Output(source))))?;
    Ok(format!(
        "trace: {kept} slices of {} vCPU{} written to {shown} (open it in ui.perfetto.dev){}",
        outcome.vcpus.len(),
        if outcome.vcpus.len() == 1 { "" } else { "s" },
        match dropped {
            0 => String::new(),
            n => format!("; {n} later slices dropped (at most {MAX_SLICES} per vCPU)"),
        }
    ))
}
