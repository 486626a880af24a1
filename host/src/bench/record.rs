//! What time travel costs (`--record`, issue 30): a guest of `exits` PIO
//! exits ending in a fault, run as `host run` does, then under gdb without
//! and with `--record` (this process is the gdb client, on a Unix socket),
//! then reverse-stepi from the fault with all those exits of history, and
//! what the recording holds.
//!
//! Figures: `record_plain_run_ms` (the whole `host run` process),
//! `record_gdb_run_ms` and `record_run_ms` (gdb's `c` to the fault, as
//! gdb sees it), `record_run_ratio` (recorded / plain), `reverse_stepi_ms`
//! and `reverse_stepi_max_ms` (median and worst of 10 reverse-stepi),
//! `record_mem_mib` of `record_budget_mib` (what the checkpoints hold, as
//! `monitor record` says), `record_rss_extra_mib` (the recorded process's
//! peak resident memory over the unrecorded one's).

use super::common::BenchError;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn io(e: std::io::Error) -> BenchError {
    bad(format!("the gdb connection: {e}"))
}

fn bad(what: String) -> BenchError {
    BenchError::Kvm(format!("time travel: {what}"))
}

/// A minimal gdb remote-protocol client (no-ack mode).
struct Client {
    s: UnixStream,
}

impl Client {
    fn connect(path: &Path, child: &mut Child) -> Result<Client, BenchError> {
        let t0 = Instant::now();
        loop {
            if let Ok(s) = UnixStream::connect(path) {
                s.set_read_timeout(Some(Duration::from_secs(120)))
                    .map_err(io)?;
                let mut c = Client { s };
                c.send("QStartNoAckMode")?;
                c.reply()?;
                c.s.write_all(b"+").map_err(io)?;
                return Ok(c);
            }
            if t0.elapsed() > Duration::from_secs(10) || child.try_wait()?.is_some() {
                return Err(bad("the host did not wait for gdb".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn send(&mut self, body: &str) -> Result<(), BenchError> {
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        self.s
            .write_all(format!("${body}#{sum:02x}").as_bytes())
            .map_err(io)?;
        Ok(())
    }

    /// The next packet's body (acks skipped).
    fn reply(&mut self) -> Result<String, BenchError> {
        let mut b = [0u8];
        loop {
            self.s.read_exact(&mut b).map_err(io)?;
            if b[0] == b'$' {
                break;
            }
        }
        let mut body = Vec::new();
        loop {
            self.s.read_exact(&mut b).map_err(io)?;
            if b[0] == b'#' {
                break;
            }
            body.push(b[0]);
        }
        let mut sum = [0u8; 2];
        self.s.read_exact(&mut sum).map_err(io)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Sends `body`; the reply and how long it took.
    fn ask(&mut self, body: &str) -> Result<(String, Duration), BenchError> {
        let t0 = Instant::now();
        self.send(body)?;
        let r = self.reply()?;
        Ok((r, t0.elapsed()))
    }

    /// A `monitor` command's text.
    fn monitor(&mut self, cmd: &str) -> Result<String, BenchError> {
        let hex: String = cmd.bytes().map(|b| format!("{b:02x}")).collect();
        self.send(&format!("qRcmd,{hex}"))?;
        let mut text = Vec::new();
        loop {
            let r = self.reply()?;
            let h = match r.strip_prefix('O') {
                Some(h) if r != "OK" => h,
                _ => return Ok(String::from_utf8_lossy(&text).into_owned()),
            };
            for i in (0..h.len() / 2).map(|i| i * 2) {
                text.push(u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(b'?'));
            }
        }
    }
}

/// What one run under gdb gave.
struct GdbRun {
    run: Duration,
    back: Vec<f64>,
    record: String,
    hwm_kib: u64,
}

/// Files of the benchmark, removed when it ends.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn under_gdb(exe: &Path, base: &[String], sock: &Path, record: bool) -> Result<GdbRun, BenchError> {
    let _ = std::fs::remove_file(sock);
    let mut args = base.to_vec();
    args.extend(["--gdb".into(), sock.display().to_string()]);
    if record {
        args.push("--record".into());
    }
    let mut child = Command::new(exe)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::Spawn("host run --gdb".into(), e))?;
    let r = (|| -> Result<GdbRun, BenchError> {
        let mut c = Client::connect(sock, &mut child)?;
        let (stop, run) = c.ask("c")?;
        if !stop.starts_with('T') && !stop.starts_with('S') {
            return Err(bad(format!("`c` gave {stop:?}, not the fault's stop")));
        }
        let mut back = Vec::new();
        if record {
            for _ in 0..10 {
                let (r, t) = c.ask("bs")?;
                if !r.starts_with('T') && !r.starts_with('S') {
                    return Err(bad(format!("reverse-stepi gave {r:?}")));
                }
                back.push(t.as_secs_f64() * 1e3);
            }
        }
        let record = c.monitor("record")?;
        let hwm_kib = super::process::hwm_kib(child.id() as libc::pid_t).unwrap_or(0);
        c.send("vKill;1")?;
        let _ = c.reply();
        Ok(GdbRun {
            run,
            back,
            record,
            hwm_kib,
        })
    })();
    if r.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = std::fs::remove_file(sock);
    r
}

/// `used MiB of budget MiB` in `monitor record`'s summary.
fn mib(summary: &str) -> Option<(f64, f64)> {
    let (before, after) = summary.split_once(" MiB of ")?;
    let used = before.rsplit(' ').next()?.parse().ok()?;
    let budget = after.split(' ').next()?.parse().ok()?;
    Some((used, budget))
}

/// The figures of a guest with `exits` exits.
pub fn run(out: &mut dyn Write, exits: u32, kvm_path: &Path) -> Result<(), BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Spawn("host".into(), e))?;
    let dir = std::env::temp_dir();
    let tag = format!("kvmwb-bench-record-{}", std::process::id());
    let img = dir.join(format!("{tag}.bin"));
    let sock = dir.join(format!("{tag}.sock"));
    let _scratch = Scratch(vec![img.clone(), sock.clone()]);
    // the PIO loop, then `ud2`
    std::fs::write(&img, super::common::pio_loop_then(exits, &[0x0f, 0x0b]))?;
    let base: Vec<String> = [
        "run",
        "--mode",
        "long",
        "--flat",
        "0x100000",
        "--kvm-device",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([kvm_path.display().to_string(), img.display().to_string()])
    .collect();

    let t0 = Instant::now();
    let st = Command::new(&exe)
        .args(&base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| BenchError::Spawn("host run".into(), e))?;
    let plain = t0.elapsed();
    // the image ends in #UD: `host run` reports a crash (exit 3)
    if st.code() != Some(3) {
        return Err(BenchError::Child(st));
    }
    let gdb = under_gdb(&exe, &base, &sock, false)?;
    let rec = under_gdb(&exe, &base, &sock, true)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    writeln!(out, "record_plain_run_ms {:.1} ms", ms(plain))?;
    writeln!(out, "record_gdb_run_ms {:.1} ms", ms(gdb.run))?;
    writeln!(out, "record_run_ms {:.1} ms", ms(rec.run))?;
    writeln!(
        out,
        "record_run_ratio {:.2} x",
        rec.run.as_secs_f64() / plain.as_secs_f64()
    )?;
    let mut back = rec.back.clone();
    let med = super::common::pct(&mut back, 0.5);
    let max = back.last().copied().unwrap_or(0.0);
    writeln!(out, "reverse_stepi_ms {med:.1} ms")?;
    writeln!(out, "reverse_stepi_max_ms {max:.1} ms")?;
    let (used, budget) =
        mib(&rec.record).ok_or_else(|| bad(format!("monitor record said {:?}", rec.record)))?;
    writeln!(out, "record_mem_mib {used:.1} MiB")?;
    writeln!(out, "record_budget_mib {budget:.0} MiB")?;
    writeln!(
        out,
        "record_rss_extra_mib {:.1} MiB",
        rec.hwm_kib.saturating_sub(gdb.hwm_kib) as f64 / 1024.0
    )?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_gives_used_and_budget() {
        let s = "recording: 1563 checkpoints (every 64 exits) from exit 0 to exit 99968, 6.3 MiB of 256 MiB\n";
        assert_eq!(super::mib(s), Some((6.3, 256.0)));
        assert_eq!(super::mib("not recording"), None);
    }
}
