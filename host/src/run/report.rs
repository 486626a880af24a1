//! What `host run` reports: the text summary, the JSON object, the exit code.

use super::code;
use crate::kvm::fault::Fault;
use crate::size::Thousandths;
use crate::vcpu::Stop;
use crate::vm::{Check42, RunOutcome};
use serde_json::json;

/// Most guest output `--json` keeps (the rest is counted and dropped, so a
/// guest that prints forever cannot grow the host).
pub const JSON_OUTPUT_CAP: usize = 16 << 20;

/// Guest output captured for `--json`: the first [`JSON_OUTPUT_CAP`] bytes,
/// and how many more there were.
#[derive(Debug, Default)]
pub struct Capture {
    /// The bytes kept.
    pub bytes: Vec<u8>,
    /// Bytes dropped past the cap.
    pub dropped: u64,
}

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room = JSON_OUTPUT_CAP - self.bytes.len();
        let keep = b.len().min(room);
        self.bytes.extend_from_slice(&b[..keep]);
        self.dropped += (b.len() - keep) as u64;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The result of `host run`.
#[derive(Debug, Clone)]
pub struct Report {
    /// Guest name or path.
    pub name: String,
    /// What the run produced.
    pub outcome: RunOutcome,
    /// After a fault: the crash explained (`super::explain`).
    pub crash: Option<super::explain::Crash>,
    /// `--html`: the VM as it was set up (`host layout`'s view).
    pub layout: Option<crate::inspect::Layout>,
}

fn check_line(c: &Check42) -> String {
    format!(
        "check 42: {} (memory[{:#x}] = {}, RAX = {})",
        if c.pass { "pass" } else { "FAIL" },
        hypercall_abi::layout::CHECK_ADDR,
        c.memory,
        c.rax
    )
}

impl Report {
    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> i32 {
        match (&self.outcome.stop, &self.outcome.check) {
            (Stop::Faulted { .. } | Stop::Cancelled, _) => code::GUEST_FAULT,
            (Stop::TimedOut { .. }, _) => code::TIMEOUT,
            (Stop::Interrupted | Stop::Killed, _) => code::INTERRUPTED,
            (Stop::Halted, Some(c)) if !c.pass => code::CHECK_FAILED,
            (Stop::Halted | Stop::Snapshot, _) => code::OK,
        }
    }

    /// The human summary: outcome line, check, register dump on a fault,
    /// then the exit table.
    pub fn human(&self) -> String {
        let o = &self.outcome;
        let smp = o.vcpus.len() > 1;
        let who = if smp {
            format!("{} (vcpu {})", self.name, o.vcpu)
        } else {
            self.name.clone()
        };
        let mut s = match &o.stop {
            Stop::Halted if smp => format!(
                "host: {} halted: all {} vCPUs, {} exits in {} ms\n",
                self.name,
                o.vcpus.len(),
                o.stats.total(),
                Thousandths::ms(o.elapsed)
            ),
            Stop::Halted => format!(
                "host: {} halted after {} exits in {} ms\n",
                self.name,
                o.stats.total(),
                Thousandths::ms(o.elapsed)
            ),
            Stop::TimedOut { after_ms } => format!(
                "host: {} stopped: timeout after {} s, guest still running at RIP {:#x} ({} exits)\n",
                who,
                Thousandths(*after_ms),
                o.regs.rip,
                o.stats.total()
            ),
            Stop::Interrupted => format!(
                "host: {} stopped: interrupted (SIGINT/SIGTERM) at RIP {:#x} after {} s ({} exits)\n",
                who,
                o.regs.rip,
                Thousandths(o.elapsed.as_millis().min(u64::MAX as u128) as u64),
                o.stats.total()
            ),
            // a panic said what happened: its backtrace follows, no dump
            Stop::Faulted {
                fault: Fault::Panic,
                ..
            } => format!("host: {who} stopped: {}\n", Fault::Panic),
            Stop::Faulted {
                fault,
                cr0,
                cr3,
                cr4,
                efer,
                serving,
            } => format!(
                "host: {} stopped: {fault} at RIP {:#x}{}\n{}\n  cr0={cr0:#x} cr3={cr3:#x} cr4={cr4:#x} efer={efer:#x}\n",
                who,
                o.regs.rip,
                serving
                    .map(|v| format!(
                        ", while serving interrupt vector {v:#04x} (in service in the local APIC)"
                    ))
                    .unwrap_or_default(),
                o.regs.dump()
            ),
            Stop::Cancelled => format!("host: {who} stopped: another vCPU ended the VM\n"),
            Stop::Snapshot => format!(
                "host: {} stopped for a snapshot at RIP {:#x} after {} exits in {} ms\n",
                who,
                o.regs.rip,
                o.stats.total(),
                Thousandths::ms(o.elapsed)
            ),
            Stop::Killed => format!(
                "host: {} stopped: killed from gdb at RIP {:#x} ({} exits)\n",
                who,
                o.regs.rip,
                o.stats.total()
            ),
        };
        if let Some(c) = &self.crash {
            match &o.stop {
                Stop::Faulted {
                    fault: Fault::Panic,
                    ..
                } => s.push_str(&c.backtrace_text()),
                _ => s.push_str(&c.text()),
            }
            s.push_str(&format!(
                "host: to look closer: `host run {} --gdb` stops at the crash with its registers and memory; `host layout {} --translate ADDR` walks an address\n",
                self.name, self.name
            ));
        }
        if let Some(c) = &o.check {
            s.push_str(&format!("host: {}\n", check_line(c)));
            if !c.pass {
                s.push_str(&format!(
                    "host: the 42 check wants {} in the 32-bit word at GPA {:#x} and in RAX when the guest halts (guest_rt::pass_check_42() does both; docs/abi.md section 5)\n",
                    hypercall_abi::layout::CHECK_VALUE,
                    hypercall_abi::layout::CHECK_ADDR
                ));
            }
        }
        if o.guest_errors > 0 {
            s.push_str(&format!(
                "host: {} guest error{} (bad hypercall arguments or accesses)\n",
                o.guest_errors,
                if o.guest_errors == 1 { "" } else { "s" }
            ));
        }
        let d = &o.device;
        if d.used() {
            s.push_str(&format!(
                "simvirtio: {} bytes from TX ({} notifies, {} polls), {} bytes to RX, {} device errors{}\n",
                d.tx_bytes,
                d.notifies,
                d.polls,
                d.rx_bytes,
                d.errors,
                match d.interrupts {
                    0 => String::new(),
                    n => format!(", {n} interrupts"),
                }
            ));
        }
        if smp {
            for v in &o.vcpus {
                let end = match &v.stop {
                    Stop::Halted => "halted".to_string(),
                    Stop::TimedOut { .. } => "timed out".to_string(),
                    Stop::Interrupted => "interrupted".to_string(),
                    Stop::Cancelled => "stopped by another vCPU".to_string(),
                    Stop::Killed => "killed from gdb".to_string(),
                    Stop::Snapshot => "stopped for a snapshot".to_string(),
                    Stop::Faulted { fault, .. } => fault.to_string(),
                };
                s.push_str(&format!(
                    "vcpu {}: {end} at RIP {:#x}, {} exits\n",
                    v.id,
                    v.regs.rip,
                    v.stats.total()
                ));
                for line in v.stats.table().lines().skip(1) {
                    s.push_str(&format!("  {line}\n"));
                }
            }
            s.push_str("all vCPUs:\n");
        }
        s.push_str(&o.stats.table());
        if let Some((vm, vcpus)) = &o.kvm_stats {
            s.push_str("KVM's own counters (KVM_GET_STATS_FD; the nonzero ones, all in --json):\n");
            for (i, v) in vcpus.iter().enumerate() {
                s.push_str(&format!("  vcpu {i}: {}\n", v.nonzero()));
            }
            s.push_str(&format!("  vm: {}\n", vm.nonzero()));
        }
        s
    }

    /// The same as JSON, with the guest's output byte for byte: as a string
    /// when it is UTF-8, else base64 (`output_encoding` says which).
    pub fn json(&self, capture: &Capture) -> serde_json::Value {
        let o = &self.outcome;
        let output = &capture.bytes[..];
        json!({
            "guest": self.name,
            "output": match std::str::from_utf8(output) {
                Ok(text) => text.to_string(),
                Err(_) => base64(output),
            },
            "output_encoding": if std::str::from_utf8(output).is_ok() { "utf-8" } else { "base64" },
            "output_dropped": capture.dropped,
            "stop": o.stop,
            "exit_code": self.exit_code(),
            "check_42": o.check,
            "regs": o.regs,
            "crash": self.crash,
            "guest_errors": o.guest_errors,
            "elapsed_us": o.elapsed.as_secs_f64() * 1e6,
            "exits": {
                "total": o.stats.total(),
                "timed": o.stats.timed(),
                "by_reason": o.stats.reasons(),
                "io": o.stats.ports(),
                "mmio": o.stats.mmio(),
                "io_others": o.stats.io_others(),
                "mmio_others": o.stats.mmio_others(),
                "interrupts": o.stats.interrupts(),
            },
            "simvirtio": o.device,
            "kvm_stats": o.kvm_stats.as_ref().map(|(vm, vcpus)| json!({"vm": vm, "vcpus": vcpus})),
            "vcpu": o.vcpu,
            "vcpus": o.vcpus.iter().map(|v| json!({
                "id": v.id,
                "stop": v.stop,
                "regs": v.regs,
                "exits": {
                    "total": v.stats.total(),
                    "by_reason": v.stats.reasons(),
                    "io": v.stats.ports(),
                    "mmio": v.stats.mmio(),
                    "interrupts": v.stats.interrupts(),
                },
            })).collect::<Vec<_>>(),
        })
    }
}

/// Standard base64 (RFC 4648, with padding).
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xff, 0xfe, 0x00][..], "//4A"),
        ] {
            assert_eq!(super::base64(raw), enc);
        }
    }
}
