//! `#[test]` in guests: `cargo test -p guest-rt` or `-p guest-kernel`
//! builds each program with its tests (custom test frameworks, enabled for
//! every guest crate by .cargo/config.toml), and cargo's runner, the host,
//! runs every test in a VM of its own (`host cargo-runner`): first the
//! program in list mode, which prints the tests' names, then once per test.
//!
//! A test module writes `use guest_rt::test;` and then `#[test]`,
//! `#[should_panic]` (also `= "text"` and `(expected = "text")`) and
//! `#[ignore]` (also `= "reason"`) as with libtest (the attribute macro
//! [`crate::test`]). A test passes when it returns (or returns `Ok`); a
//! panic prints its message and halts with RAX = 101; a triple fault, an
//! exception or a timeout fails it too. A `#[should_panic]` test passes
//! when it panics (with the expected text in its message) and halts with
//! RAX = 0. The host prints libtest's lines and `test result: ...`.

use crate::abi::note::{TEST_FAILED, TESTS_LIST};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// What the host asked for at entry (RDX).
static COMMAND: AtomicU64 = AtomicU64::new(TESTS_LIST);
/// A test is running (the panic handler halts with [`TEST_FAILED`]).
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The running test's `#[should_panic]`: 0 no, 1 yes, 2 with the text in
/// [`EXPECTED`].
static SHOULD_PANIC: AtomicUsize = AtomicUsize::new(0);
/// The expected text's address and length (2 in [`SHOULD_PANIC`]).
static EXPECTED: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// A test: a `#[test]` function ([`Test`]) or a `#[test_case]` one.
pub trait Testable {
    /// Runs it.
    fn run(&self);
    /// Its path, e.g. `guest_rt::print::tests::formats_numbers`.
    fn name(&self) -> &'static str;
    /// Whether it runs only when asked (`cargo test -- --ignored`).
    fn ignored(&self) -> bool {
        false
    }
    /// Why it is ignored (`#[ignore = "reason"]`).
    fn reason(&self) -> Option<&'static str> {
        None
    }
    /// Its `#[should_panic]`.
    fn should_panic(&self) -> ShouldPanic {
        ShouldPanic::No
    }
}

impl<T: Fn()> Testable for T {
    fn run(&self) {
        self()
    }

    fn name(&self) -> &'static str {
        core::any::type_name::<T>()
    }
}

/// A test's `#[should_panic]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShouldPanic {
    /// It must not panic.
    No,
    /// It must panic.
    Yes,
    /// It must panic with this text in its message.
    Expected(&'static str),
}

/// A `#[test]` function, as [`crate::test`] registers it.
pub struct Test {
    /// Its module path (`crate::tests::name`).
    pub path: &'static str,
    /// Runs it and checks what it returned.
    pub run: fn(),
    /// Its `#[should_panic]`.
    pub should_panic: ShouldPanic,
    /// `#[ignore]`.
    pub ignore: bool,
    /// `#[ignore = "reason"]`.
    pub reason: Option<&'static str>,
}

impl Testable for Test {
    fn run(&self) {
        (self.run)()
    }

    fn name(&self) -> &'static str {
        self.path
    }

    fn ignored(&self) -> bool {
        self.ignore
    }

    fn reason(&self) -> Option<&'static str> {
        self.reason
    }

    fn should_panic(&self) -> ShouldPanic {
        self.should_panic
    }
}

/// What a `#[test]` function may return: `()`, or a `Result` whose `Err`
/// fails the test (its `Debug` is printed, as libtest does).
pub trait TestReturn {
    /// Fails the test (halts) on an error.
    fn check(self);
}

impl TestReturn for () {
    fn check(self) {}
}

impl<E: core::fmt::Debug> TestReturn for Result<(), E> {
    fn check(self) {
        if let Err(e) = self {
            crate::println!("Error: {e:?}");
            halt_failed();
        }
    }
}

#[doc(hidden)]
pub fn select(command: u64) {
    COMMAND.store(command, Ordering::Relaxed);
}

/// Whether a test is running.
pub fn running() -> bool {
    RUNNING.load(Ordering::Relaxed)
}

#[doc(hidden)]
pub fn halt_failed() -> ! {
    halt(TEST_FAILED)
}

fn halt(rax: u64) -> ! {
    loop {
        // SAFETY: hlt with RAX set ends the run; the host reads RAX.
        unsafe { core::arch::asm!("hlt", in("rax") rax, options(nomem, nostack)) };
    }
}

/// libtest's name: the path without the crate's name.
fn test_name(path: &str) -> &str {
    path.split_once("::").map_or(path, |(_, rest)| rest)
}

/// The harness (`#![test_runner]`): lists the tests or runs the one the
/// host selected.
pub fn runner(tests: &[&dyn Testable]) {
    let command = COMMAND.load(Ordering::Relaxed);
    if command == TESTS_LIST {
        // one line per test: its name, then a tab and `should_panic` for a
        // test that must panic, then a tab and `ignored` (with `=reason`,
        // if any) for an ignored one
        for t in tests {
            let sp = match t.should_panic() {
                ShouldPanic::No => "",
                _ => "\tshould_panic",
            };
            let ig = if t.ignored() { "\tignored" } else { "" };
            let (sep, reason) = match t.reason() {
                Some(r) if t.ignored() => ("=", r),
                _ => ("", ""),
            };
            crate::println!("{}{sp}{ig}{sep}{reason}", test_name(t.name()));
        }
        return;
    }
    if let Some(t) = usize::try_from(command).ok().and_then(|i| tests.get(i)) {
        let sp = t.should_panic();
        let (code, text) = match sp {
            ShouldPanic::No => (0, ""),
            ShouldPanic::Yes => (1, ""),
            ShouldPanic::Expected(s) => (2, s),
        };
        EXPECTED[0].store(text.as_ptr() as usize, Ordering::Relaxed);
        EXPECTED[1].store(text.len(), Ordering::Relaxed);
        SHOULD_PANIC.store(code, Ordering::Relaxed);
        RUNNING.store(true, Ordering::Relaxed);
        t.run();
        RUNNING.store(false, Ordering::Relaxed);
        if sp != ShouldPanic::No {
            crate::println!("note: test did not panic as expected");
            halt_failed();
        }
    } else {
        crate::println!("no test {command}: the program has {}", tests.len());
        halt_failed();
    }
}

/// The text a `#[should_panic(expected = ...)]` test expects.
fn expected() -> &'static str {
    let (p, n) = (
        EXPECTED[0].load(Ordering::Relaxed),
        EXPECTED[1].load(Ordering::Relaxed),
    );
    if n == 0 {
        return "";
    }
    // SAFETY: `runner` stored the address and length of a `&'static str`
    // (the attribute's literal) before the test ran.
    let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, n) };
    core::str::from_utf8(bytes).unwrap_or("")
}

/// Whether `needle` occurs in what is written to it: a window of
/// [`Contains::WINDOW`] bytes slides over the text, keeping the last
/// `needle.len() - 1` bytes each time it is full, so the text may be of any
/// length.
struct Contains<'a> {
    needle: &'a [u8],
    window: [u8; Contains::WINDOW],
    len: usize,
    found: bool,
}

impl<'a> Contains<'a> {
    const WINDOW: usize = 4096;

    fn new(needle: &'a str) -> Self {
        Contains {
            needle: needle.as_bytes(),
            window: [0; Self::WINDOW],
            len: 0,
            found: needle.is_empty(),
        }
    }

    fn search(&mut self) {
        let n = self.needle.len();
        if !self.found && n <= self.len {
            self.found = self.window[..self.len].windows(n).any(|w| w == self.needle);
        }
    }
}

impl core::fmt::Write for Contains<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let keep = self.needle.len().saturating_sub(1);
        for &b in s.as_bytes() {
            if self.len == Self::WINDOW {
                self.search();
                self.window.copy_within(Self::WINDOW - keep.., 0);
                self.len = keep;
            }
            self.window[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Called by the panic handler while a test runs: a `#[should_panic]` test
/// whose message holds the expected text passes (RAX 0); any other fails
/// (RAX 101), with libtest's note when the text is missing.
pub(crate) fn panicked(message: &core::panic::PanicMessage) -> ! {
    use core::fmt::Write;
    match SHOULD_PANIC.load(Ordering::Relaxed) {
        1 => halt(0),
        2 => {
            let want = expected();
            if want.len() >= Contains::WINDOW {
                crate::println!(
                    "note: the expected text is longer than {} bytes: the harness cannot look for it",
                    Contains::WINDOW - 1
                );
                halt_failed();
            }
            let mut c = Contains::new(want);
            let _ = write!(c, "{message}");
            c.search();
            if c.found {
                halt(0);
            }
            crate::println!(
                "note: panic did not contain expected string\n      panic message: {:?},\n expected substring: {want:?}",
                PanicText(message)
            );
            halt_failed()
        }
        _ => halt_failed(),
    }
}

/// A panic message shown with `{:?}` quoting, as libtest's note does.
struct PanicText<'a, 'b>(&'a core::panic::PanicMessage<'b>);

impl core::fmt::Debug for PanicText<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        f.write_char('"')?;
        write!(Escaped(f), "{}", self.0)?;
        f.write_char('"')
    }
}

/// Writes through `escape_debug`.
struct Escaped<'a, 'b>(&'a mut core::fmt::Formatter<'b>);

impl core::fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write!(self.0, "{}", s.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    use super::Contains;
    use crate::test;
    use core::fmt::Write;

    #[test]
    fn contains_finds_text_across_window_slides() {
        let mut c = Contains::new("needle");
        for _ in 0..1000 {
            let _ = c.write_str("hay ");
        }
        let _ = c.write_str("nee");
        let _ = c.write_str("dle");
        c.search();
        assert!(c.found);
        let mut c = Contains::new("absent");
        for _ in 0..3000 {
            let _ = c.write_str("abs ent ");
        }
        c.search();
        assert!(!c.found);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn should_panic_with_the_expected_text_passes() {
        let v = [1, 2, 3];
        let i = core::hint::black_box(7);
        if i >= v.len() {
            panic!("index {i} out of range for 3 elements");
        }
    }

    #[test]
    #[ignore = "shows the reason in the list"]
    fn ignored_with_a_reason() {
        panic!("never runs unless asked");
    }
}
