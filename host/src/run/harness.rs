//! `host cargo-runner ELF [ARGS]` for a test build (`cargo test` of a
//! guest crate, ABI note flag TESTS): every `#[test_case]` runs in a VM of
//! its own, and the output is libtest's, so cargo and CI read it as they
//! read any test binary's. One run in list mode (RDX = TESTS_LIST) gives
//! the names; then one VM per selected test (RDX = its index). A test
//! passes when the guest halts with RAX 0; a panic (RAX 101), a triple
//! fault or a timeout fails it, with its output, and the others still run.

use super::prepare::{RunError, RunOptions, prepare};
use super::report::{Capture, Report};
use crate::vcpu::Stop;
use hypercall_abi::note::{TEST_FAILED, TESTS_LIST};
use std::io::Write;
use std::time::{Duration, Instant};

/// The time one test may take (ring 0 is slow on kvm-pvm: generous).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What `cargo test -- ARGS` asked for.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Name filters (a test runs if its name contains one; all without).
    pub filters: Vec<String>,
    /// `--exact`: filters must equal the name.
    pub exact: bool,
    /// `--list`: print the names, run nothing.
    pub list: bool,
    /// `--ignored`: only the ignored tests; `--include-ignored`: all.
    pub ignored: bool,
    /// `--include-ignored`.
    pub include_ignored: bool,
    /// `--timeout DURATION` (ours, not libtest's): the limit per test.
    pub timeout: Option<Duration>,
}

impl Selection {
    /// libtest's arguments: filters, `--exact`, `--list`; output-format
    /// flags are accepted and ignored. Another flag is an error.
    pub fn parse(args: &[String]) -> Result<Selection, String> {
        let mut s = Selection::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--exact" => s.exact = true,
                "--list" => s.list = true,
                "--ignored" => s.ignored = true,
                "--include-ignored" => s.include_ignored = true,
                "--timeout" => {
                    let v = it
                        .next()
                        .ok_or("cargo-runner: --timeout needs a duration")?;
                    s.timeout = Some(crate::size::parse_duration(v).map_err(|e| e.to_string())?);
                }
                "--nocapture" | "--show-output" | "-q" | "--quiet" => {}
                "--test-threads" | "--color" | "--format" | "-Z" => {
                    it.next();
                }
                f if f.starts_with("--test-threads=")
                    || f.starts_with("--color=")
                    || f.starts_with("--format=") => {}
                f if f.starts_with('-') => {
                    return Err(format!(
                        "cargo-runner: unknown test option {f} (filters, --exact, --list, --ignored, --include-ignored and --timeout are supported)"
                    ));
                }
                f => s.filters.push(f.to_string()),
            }
        }
        Ok(s)
    }

    fn wants(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|f| {
                if self.exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            })
    }
}

/// One run of the test program: its output (and the host's lines) and how
/// it ended.
fn run_once(elf: &str, command: u64, timeout: Duration) -> Result<(Report, Vec<u8>), RunError> {
    let mut opts = RunOptions {
        guest: elf.to_string(),
        ..RunOptions::default()
    };
    opts.run.timeout = Some(timeout);
    let mut p = prepare(&opts)?;
    p.vm.set_test_command(command)?;
    let mut out = Capture::default();
    let mut diag = Capture::default();
    let outcome = p.vm.run(&mut out, &mut diag)?;
    let report = Report {
        name: p.name,
        outcome,
        crash: None,
    };
    let mut text = out.bytes;
    text.extend_from_slice(&diag.bytes);
    Ok((report, text))
}

/// Runs the test program `elf`; prints libtest's lines to `out`. Returns
/// whether every selected test passed.
pub fn run_tests(elf: &str, sel: &Selection, out: &mut dyn Write) -> Result<bool, RunError> {
    let start = Instant::now();
    let (listed, text) = run_once(elf, TESTS_LIST, TEST_TIMEOUT)?;
    if listed.outcome.stop != Stop::Halted {
        let _ = out.write_all(&text);
        let _ = out.write_all(listed.human().as_bytes());
        return Err(RunError::Usage(format!(
            "{elf}: the test program did not list its tests (see above)"
        )));
    }
    // one line per test: its name, then " ignored" for an ignored one
    let tests: Vec<(String, bool)> = String::from_utf8_lossy(&text)
        .lines()
        .map(|l| match l.strip_suffix(" ignored") {
            Some(n) => (n.to_string(), true),
            None => (l.to_string(), false),
        })
        .collect();
    let chosen: Vec<(usize, &String, bool)> = tests
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| sel.wants(n))
        .map(|(i, (n, ig))| (i, n, *ig))
        .collect();
    let timeout = sel.timeout.unwrap_or(TEST_TIMEOUT);
    let w = |out: &mut dyn Write, s: String| {
        out.write_all(s.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| RunError::Vm(crate::vm::VmError::Host(e.into())))
    };
    if sel.list {
        for (_, n, _) in &chosen {
            w(out, format!("{n}: test\n"))?;
        }
        w(out, format!("\n{} tests, 0 benchmarks\n", chosen.len()))?;
        return Ok(true);
    }
    let s = if chosen.len() == 1 { "" } else { "s" };
    w(out, format!("\nrunning {} test{s}\n", chosen.len()))?;
    let mut failures = Vec::new();
    let mut ignored = 0;
    for &(i, name, is_ignored) in &chosen {
        let runs = if is_ignored {
            sel.ignored || sel.include_ignored
        } else {
            !sel.ignored
        };
        if !runs {
            ignored += 1;
            w(out, format!("test {name} ... ignored\n"))?;
            continue;
        }
        let (r, text) = run_once(elf, i as u64, timeout)?;
        let o = &r.outcome;
        let why = match &o.stop {
            Stop::Halted if o.regs.rax == 0 => None,
            Stop::Halted if o.regs.rax == TEST_FAILED => Some("panicked".to_string()),
            Stop::Halted => Some(format!("halted with RAX {:#x}", o.regs.rax)),
            _ => {
                let line = r.human().lines().next().unwrap_or("stopped").to_string();
                let own = format!("host: {} ", r.name);
                Some(line.strip_prefix(&own).unwrap_or(&line).to_string())
            }
        };
        match why {
            None => w(out, format!("test {name} ... ok\n"))?,
            Some(why) => {
                w(out, format!("test {name} ... FAILED\n"))?;
                failures.push((name.clone(), why, text));
            }
        }
    }
    if !failures.is_empty() {
        w(out, "\nfailures:\n".into())?;
        for (name, why, text) in &failures {
            w(
                out,
                format!(
                    "\n---- {name} stdout ----\n{}host: the test {why}\n",
                    String::from_utf8_lossy(text)
                ),
            )?;
        }
        w(out, "\nfailures:\n".into())?;
        for (name, ..) in &failures {
            w(out, format!("    {name}\n"))?;
        }
    }
    let failed = failures.len();
    w(
        out,
        format!(
            "\ntest result: {}. {} passed; {failed} failed; {ignored} ignored; 0 measured; {} filtered out; finished in {:.2}s\n\n",
            if failed == 0 { "ok" } else { "FAILED" },
            chosen.len() - failed - ignored,
            tests.len() - chosen.len(),
            start.elapsed().as_secs_f64()
        ),
    )?;
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::Selection;

    #[test]
    fn libtest_arguments() {
        let a = |v: &[&str]| Selection::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let s = a(&["ring", "--exact", "--test-threads", "1", "--nocapture"]).unwrap();
        assert_eq!(s.filters, ["ring"]);
        assert!(s.exact && !s.list);
        assert!(s.wants("ring") && !s.wants("ring2"));
        let s = a(&[
            "--list",
            "--format=terse",
            "--include-ignored",
            "--timeout",
            "2s",
        ])
        .unwrap();
        assert!(s.list && s.wants("anything") && s.include_ignored);
        assert_eq!(s.timeout, Some(std::time::Duration::from_secs(2)));
        assert!(a(&["--bogus"]).unwrap_err().contains("--bogus"));
    }
}
