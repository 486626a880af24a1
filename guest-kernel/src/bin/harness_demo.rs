//! The guest test harness on display (`cargo test -p guest-kernel --bin
//! harness_demo -- --include-ignored`, docs/guests.md): libtest's
//! attributes (`use guest_rt::test;`, then `#[test]`, `#[should_panic]`,
//! `#[ignore]`). Three tests pass (one by panicking as it should, one by
//! returning `Ok`). Ignored unless asked for: one returns an `Err`, one
//! panics, one faults (#UD), one never returns, one should panic and does
//! not, one panics with the wrong message.
//! tests/harness.rs checks that each is reported by name with its output
//! and the others still run.
#![no_std]
#![no_main]

guest_rt::entry!(main);

fn main() -> u64 {
    guest_rt::println!("harness_demo: run it with cargo test");
    0
}

#[cfg(test)]
mod tests {
    use guest_rt::{println, test};

    #[test]
    fn passes() {
        println!("this one passes");
        assert_eq!(core::hint::black_box(2) + 2, 4);
    }

    #[test]
    #[should_panic(expected = "divide by zero")]
    fn divides_by_zero() {
        let d = core::hint::black_box(0u32);
        if d == 0 {
            panic!("attempt to divide by zero");
        }
    }

    #[test]
    #[ignore]
    fn panics() {
        println!("about to fail");
        assert_eq!(core::hint::black_box(1) + 1, 3, "arithmetic");
    }

    #[test]
    #[ignore = "an invalid opcode, on purpose"]
    fn faults() {
        // SAFETY: ud2 raises #UD, which the host reports (the test fails);
        // that is what this test shows.
        unsafe { core::arch::asm!("ud2") };
    }

    #[test]
    #[ignore]
    fn never_returns() {
        loop {
            core::hint::spin_loop();
        }
    }

    #[test]
    #[ignore]
    #[should_panic]
    fn does_not_panic() {}

    #[test]
    fn returns_ok() -> Result<(), &'static str> {
        Ok(())
    }

    #[test]
    #[ignore]
    fn returns_an_error() -> Result<(), &'static str> {
        Err(core::hint::black_box("no such file"))
    }

    #[test]
    #[ignore]
    #[should_panic(expected = "out of range")]
    fn panics_with_another_message() {
        panic!("overflow");
    }
}
