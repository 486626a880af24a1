//! `host cargo-runner ELF [ARGS]` for a test build (`cargo test` of a
//! guest crate, ABI note flag TESTS): every `#[test]` runs in a VM of
//! its own, and the output is libtest's, so cargo and CI read it as they
//! read any test binary's. One run in list mode (RDX = TESTS_LIST) gives
//! the names; then one VM per selected test (RDX = its index). A test
//! passes when the guest halts with RAX 0; a panic (RAX 101), an exception, a triple
//! fault or a timeout fails it, with its output, and the others still run.

use super::listing::listed;
use super::prepare::{RunError, RunOptions, prepare};
use super::report::Report;
pub use super::selection::Selection;
use crate::vcpu::Stop;
use hypercall_abi::note::{TEST_FAILED, TESTS_LIST};
use std::io::Write;
use std::time::{Duration, Instant};

/// The time one test may take (ring 0 is slow on kvm-pvm: generous).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a test program's run through the harness ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every selected test passed (exit 0).
    Passed,
    /// A test failed, or the program could not list its tests (exit 101,
    /// libtest's code).
    Failed,
    /// SIGINT/SIGTERM: the summary of what ran was printed (exit 130).
    Interrupted,
}

/// The most of one failing test's output kept: its last 64 KiB (where a
/// panic message is). What came before is counted and said.
pub const TAIL_PER_TEST: usize = 64 << 10;
/// The most of all failing tests' output kept until the summary, whatever
/// the number of tests: past it a failure keeps its name and reason only.
pub const TAILS_TOTAL: usize = 16 << 20;

/// The last [`TAIL_PER_TEST`] bytes written (guest output and host lines,
/// in the order they came), and how many came before them.
#[derive(Debug, Default)]
pub struct Tail {
    bytes: Vec<u8>,
    /// Bytes trimmed from the front of `bytes`.
    trimmed: u64,
}

impl Tail {
    /// The last [`TAIL_PER_TEST`] bytes.
    pub fn kept(&self) -> &[u8] {
        &self.bytes[self.bytes.len().saturating_sub(TAIL_PER_TEST)..]
    }

    /// How many bytes were written before [`Tail::kept`]'s.
    pub fn dropped(&self) -> u64 {
        self.trimmed + (self.bytes.len() - self.kept().len()) as u64
    }
}

impl Write for Tail {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len();
        let b = if n > TAIL_PER_TEST {
            self.trimmed += (n - TAIL_PER_TEST) as u64;
            &b[n - TAIL_PER_TEST..]
        } else {
            b
        };
        self.bytes.extend_from_slice(b);
        // amortised: trim once twice the tail is held
        if self.bytes.len() > 2 * TAIL_PER_TEST {
            let cut = self.bytes.len() - TAIL_PER_TEST;
            self.trimmed += cut as u64;
            self.bytes.drain(..cut);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Both streams of a run into one writer, in order: a [`Tail`], or with
/// `--nocapture` the harness's own output.
struct Both<'a, W: Write>(&'a std::cell::RefCell<W>);

impl<W: Write> Write for Both<'_, W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write_all(b).map(|()| b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// One run of the test program: how it ended, with its output and the
/// host's lines written to `out` and `diag`.
fn run_once(
    elf: &str,
    command: u64,
    timeout: Duration,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<Report, RunError> {
    let mut opts = RunOptions {
        guest: elf.to_string(),
        ..RunOptions::default()
    };
    opts.run.timeout = Some(timeout);
    let mut p = prepare(&opts)?;
    p.vm.set_test_command(command)?;
    let outcome = p.vm.run(out, diag)?;
    Ok(Report {
        name: p.name,
        outcome,
        crash: None,
        layout: None,
    })
}

/// One test run with both its streams written to `sink` (a [`Tail`], or
/// the harness's output with `--nocapture`), which comes back after it.
fn run_test<W: Write>(
    elf: &str,
    index: u64,
    timeout: Duration,
    sink: W,
) -> Result<(Report, W), RunError> {
    let sink = std::cell::RefCell::new(sink);
    let r = run_once(elf, index, timeout, &mut Both(&sink), &mut Both(&sink))?;
    Ok((r, sink.into_inner()))
}

/// Why a test failed, from how its VM ended (None: it passed).
fn failure(r: &Report, should_panic: bool) -> Option<String> {
    let o = &r.outcome;
    match &o.stop {
        Stop::Halted if o.regs.rax == 0 => None,
        Stop::Halted if o.regs.rax == TEST_FAILED && should_panic => Some(
            "did not panic as its #[should_panic] expects (the note above says how)".to_string(),
        ),
        Stop::Halted if o.regs.rax == TEST_FAILED => {
            Some("failed: it panicked, or returned an Err (its output says which)".to_string())
        }
        Stop::Halted => Some(format!("halted with RAX {:#x}", o.regs.rax)),
        _ => {
            let line = r.human().lines().next().unwrap_or("stopped").to_string();
            let own = format!("host: {} ", r.name);
            Some(line.strip_prefix(&own).unwrap_or(&line).to_string())
        }
    }
}

/// A failed test's details, kept for the summary while they fit in
/// [`TAILS_TOTAL`].
struct Failed<'a> {
    name: &'a str,
    why: String,
    tail: Tail,
}

fn put(out: &mut dyn Write, s: &str) -> Result<(), RunError> {
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| RunError::Vm(crate::vm::VmError::Host(e.into())))
}

/// Runs the test program `elf`; prints libtest's lines to `out`.
///
/// A SIGINT/SIGTERM ends it before the next test starts (the one running
/// is stopped by the kick), with libtest's summary of what ran.
pub fn run_tests(elf: &str, sel: &Selection, out: &mut dyn Write) -> Result<Verdict, RunError> {
    crate::signals::report_interrupts();
    let start = Instant::now();
    let timeout = sel.timeout.unwrap_or(TEST_TIMEOUT);
    let mut list = super::Capture::default();
    let mut list_diag = super::Capture::default();
    let r = run_once(elf, TESTS_LIST, timeout, &mut list, &mut list_diag)?;
    if r.outcome.stop != Stop::Halted || list.dropped > 0 {
        // the guest's output, then the host's lines, each on a line of its own
        let _ = out.write_all(&list.bytes);
        if list.bytes.last().is_some_and(|&b| b != b'\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.write_all(&list_diag.bytes);
        let why = if list.dropped > 0 {
            format!(
                "its list is longer than {} (the harness reads that much)",
                crate::size::human(list.bytes.len() as u64)
            )
        } else {
            let _ = out.write_all(r.human().as_bytes());
            failure(&r, false).unwrap_or_else(|| "halted".into())
        };
        put(
            out,
            &format!(
                "host: {}: the test program did not list its tests: {why}\n",
                crate::diag::escape(elf)
            ),
        )?;
        return Ok(if r.outcome.stop == Stop::Interrupted {
            Verdict::Interrupted
        } else {
            Verdict::Failed
        });
    }
    let text = String::from_utf8_lossy(&list.bytes);
    let total = listed(&text).count();
    let chosen = listed(&text).filter(|t| sel.wants(t.name)).count();
    if sel.list {
        for t in listed(&text).filter(|t| sel.wants(t.name)) {
            put(out, &format!("{}: test\n", crate::diag::escape(t.name)))?;
        }
        put(out, &format!("\n{chosen} tests, 0 benchmarks\n"))?;
        return Ok(Verdict::Passed);
    }
    let s = if chosen == 1 { "" } else { "s" };
    put(out, &format!("\nrunning {chosen} test{s}\n"))?;
    // every failure is a bit (the final list of names); its details are
    // kept while they fit in TAILS_TOTAL
    let mut failed_bits = vec![0u64; total.div_ceil(64)];
    let mut details: Vec<Failed> = Vec::new();
    // --show-output: passing tests' output, in the same budget
    let mut successes: Vec<Failed> = Vec::new();
    let (mut passed, mut failed, mut ignored, mut kept) = (0, 0, 0, 0usize);
    let mut interrupted = None;
    for t in listed(&text).filter(|t| sel.wants(t.name)) {
        let (i, raw) = (t.index, t.name);
        let name = crate::diag::escape(raw);
        let runs = if t.ignored {
            sel.ignored || sel.include_ignored
        } else {
            !sel.ignored
        };
        // libtest's line for a test, or its one character with --format terse
        let sp = if t.should_panic {
            " - should panic"
        } else {
            ""
        };
        let line = |verdict: &str, c: &str| match sel.terse {
            true => c.to_string(),
            false => format!("test {name}{sp} ... {verdict}\n"),
        };
        if !runs {
            ignored += 1;
            let verdict = match t.reason {
                "" => "ignored".to_string(),
                r => format!("ignored, {}", crate::diag::escape(r)),
            };
            put(out, &line(&verdict, "i"))?;
            continue;
        }
        if crate::signals::interrupted() {
            interrupted = Some(name.into_owned());
            break;
        }
        let (r, tail) = if sel.nocapture {
            // the output as it comes: nothing is kept
            (
                run_test(elf, i as u64, timeout, &mut *out)?.0,
                Tail::default(),
            )
        } else {
            run_test(elf, i as u64, timeout, Tail::default())?
        };
        if r.outcome.stop == Stop::Interrupted {
            interrupted = Some(name.into_owned());
            break;
        }
        match failure(&r, t.should_panic) {
            None => {
                passed += 1;
                put(out, &line("ok", "."))?;
                let size = tail.kept().len() + raw.len();
                if sel.show_output && !tail.kept().is_empty() && kept + size <= TAILS_TOTAL {
                    kept += size;
                    successes.push(Failed {
                        name: raw,
                        why: String::new(),
                        tail,
                    });
                }
            }
            Some(why) => {
                failed += 1;
                put(out, &line("FAILED", "F"))?;
                failed_bits[i / 64] |= 1 << (i % 64);
                let size = tail.kept().len() + raw.len() + why.len();
                if kept + size <= TAILS_TOTAL {
                    kept += size;
                    details.push(Failed {
                        name: raw,
                        why,
                        tail,
                    });
                }
            }
        }
    }
    if sel.terse {
        put(out, "\n")?;
    }
    if !successes.is_empty() {
        put(out, "\nsuccesses:\n")?;
        for t in &successes {
            put(
                out,
                &format!("\n---- {} stdout ----\n", crate::diag::escape(t.name)),
            )?;
            out.write_all(t.tail.kept())
                .map_err(|e| RunError::Vm(crate::vm::VmError::Host(e.into())))?;
        }
        put(out, "\nsuccesses:\n")?;
        for t in &successes {
            put(out, &format!("    {}\n", crate::diag::escape(t.name)))?;
        }
    }
    if failed > 0 {
        put(out, "\nfailures:\n")?;
        for f in &details {
            let t = &f.tail;
            put(
                out,
                &format!("\n---- {} stdout ----\n", crate::diag::escape(f.name)),
            )?;
            if t.dropped() > 0 {
                put(
                    out,
                    &format!(
                        "host: {} bytes of this test's output dropped: the harness keeps the last {} of a failing test\n",
                        t.dropped(),
                        crate::size::human(TAIL_PER_TEST as u64)
                    ),
                )?;
            }
            out.write_all(t.kept())
                .map_err(|e| RunError::Vm(crate::vm::VmError::Host(e.into())))?;
            if t.kept().last().is_some_and(|&b| b != b'\n') {
                put(out, "\n")?;
            }
            put(out, &format!("host: the test {}\n", f.why))?;
        }
        if details.len() < failed {
            put(
                out,
                &format!(
                    "\nhost: {} more tests failed; their output and reasons were dropped: the harness keeps {} of failing tests' output in all\n",
                    failed - details.len(),
                    crate::size::human(TAILS_TOTAL as u64)
                ),
            )?;
        }
        put(out, "\nfailures:\n")?;
        for t in listed(&text) {
            let i = t.index;
            if failed_bits[i / 64] & (1 << (i % 64)) != 0 {
                put(out, &format!("    {}\n", crate::diag::escape(t.name)))?;
            }
        }
    }
    if let Some(name) = &interrupted {
        let ran = passed + failed;
        put(
            out,
            &format!(
                "\nhost: interrupted (SIGINT/SIGTERM) at {name}: {ran} of {chosen} tests ran\n"
            ),
        )?;
    }
    put(
        out,
        &format!(
            "\ntest result: {}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {} filtered out; finished in {:.2}s\n\n",
            if failed == 0 && interrupted.is_none() {
                "ok"
            } else {
                "FAILED"
            },
            total - chosen,
            start.elapsed().as_secs_f64()
        ),
    )?;
    Ok(match (&interrupted, failed) {
        (Some(_), _) => Verdict::Interrupted,
        (None, 0) => Verdict::Passed,
        (None, _) => Verdict::Failed,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tail_keeps_the_last_bytes_and_counts_the_rest() {
        use super::{TAIL_PER_TEST, Tail};
        use std::io::Write;
        let mut t = Tail::default();
        t.write_all(b"start").unwrap();
        assert_eq!((t.kept(), t.dropped()), (&b"start"[..], 0));
        let mut all = b"start".to_vec();
        for i in 0..1000u32 {
            let chunk = vec![(i % 251) as u8; 1000 + i as usize];
            t.write_all(&chunk).unwrap();
            all.extend_from_slice(&chunk);
            assert!(t.bytes.len() <= 2 * TAIL_PER_TEST);
        }
        t.write_all(&vec![7; 3 * TAIL_PER_TEST]).unwrap();
        all.extend_from_slice(&vec![7; 3 * TAIL_PER_TEST]);
        t.write_all(b"end").unwrap();
        all.extend_from_slice(b"end");
        assert_eq!(t.kept(), &all[all.len() - TAIL_PER_TEST..]);
        assert_eq!(t.dropped(), (all.len() - TAIL_PER_TEST) as u64);
    }
}
