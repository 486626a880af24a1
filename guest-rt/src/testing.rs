//! `#[test]` in guests: `cargo test -p guest-rt` or `-p guest-kernel`
//! builds each program with its tests (custom test frameworks, enabled for
//! every guest crate by .cargo/config.toml), and cargo's runner, the host,
//! runs every test in a VM of its own (`host cargo-runner`): first the
//! program in list mode, which prints the tests' names, then once per test.
//! A test passes when it returns; a panic prints its message and halts
//! with RAX = 101; a triple fault or a timeout fails it too. The host prints
//! libtest's lines and `test result: ...`.

use crate::abi::note::{TEST_FAILED, TESTS_LIST};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the host asked for at entry (RDX).
static COMMAND: AtomicU64 = AtomicU64::new(TESTS_LIST);
/// A test is running (the panic handler halts with [`TEST_FAILED`]).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// A test: a `#[test_case]` function, or an [`Ignored`] one.
pub trait Testable {
    /// Runs it.
    fn run(&self);
    /// Its path, e.g. `guest_rt::print::tests::formats_numbers`.
    fn name(&self) -> &'static str;
    /// Whether it runs only when asked (`cargo test -- --ignored`).
    fn ignored(&self) -> bool {
        false
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

/// A test that runs only with `--ignored` or `--include-ignored`, like
/// libtest's `#[ignore]`; declare it with [`crate::ignored_test!`].
pub struct Ignored {
    /// Its path.
    pub name: &'static str,
    /// The test.
    pub run: fn(),
}

impl Testable for Ignored {
    fn run(&self) {
        (self.run)()
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn ignored(&self) -> bool {
        true
    }
}

/// `ignored_test!(f)`: the function `f` is a test that runs only when
/// asked (`cargo test -- --ignored`).
#[macro_export]
macro_rules! ignored_test {
    ($f:ident) => {
        // a module of the function's name (modules and functions do not
        // clash): its path is the test's name
        #[allow(non_snake_case)]
        mod $f {
            #[test_case]
            static TEST: $crate::testing::Ignored = $crate::testing::Ignored {
                name: module_path!(),
                run: super::$f,
            };
        }
    };
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
    loop {
        // SAFETY: hlt with RAX = TEST_FAILED ends the run; the host reads RAX.
        unsafe { core::arch::asm!("hlt", in("rax") TEST_FAILED, options(nomem, nostack)) };
    }
}

/// The harness (`#![test_runner]`): lists the tests or runs the one the
/// host selected.
pub fn runner(tests: &[&dyn Testable]) {
    let command = COMMAND.load(Ordering::Relaxed);
    if command == TESTS_LIST {
        // one line per test: its name, then " ignored" for an ignored one
        for t in tests {
            let mark = if t.ignored() { " ignored" } else { "" };
            crate::println!("{}{mark}", t.name());
        }
        return;
    }
    if let Some(t) = usize::try_from(command).ok().and_then(|i| tests.get(i)) {
        RUNNING.store(true, Ordering::Relaxed);
        t.run();
        RUNNING.store(false, Ordering::Relaxed);
    } else {
        crate::println!("no test {command}: the program has {}", tests.len());
        halt_failed();
    }
}
