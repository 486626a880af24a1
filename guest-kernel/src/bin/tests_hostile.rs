//! tests_hostile: a test program written by hand (the harness protocol of
//! guest_rt::testing without its macros), for the hostile suite's checks
//! of `host cargo-runner` (tests/hostile.rs): its ABI note has the TESTS
//! flag, so the runner lists its tests and runs each in a VM of its own.
//!
//! - `pass_000` .. `pass_199`: pass after spinning ~100k iterations (a
//!   slow suite: Ctrl-C must end it at once, with the summary);
//! - `loud_00` .. `loud_39`: print 1 MiB each, then fail (failing tests'
//!   output must not pile up in the host);
//! - one test whose name carries terminal escapes (ESC ] title, clear
//!   screen, CR and a forged host line): it passes, and the host's
//!   `test ... ok` line must show the name escaped.
//!
//! Filters pick a family: `host cargo-runner ELF loud_`.
#![no_std]
#![no_main]

// The program is the test program; `cargo test` of this crate builds it as
// an ordinary test program with no tests.
#[cfg(test)]
guest_rt::entry!(@note 0);
#[cfg(test)]
guest_rt::entry!(@tests);

#[cfg(not(test))]
mod program {
    use core::ffi::CStr;
    use guest_rt::abi::note::{FLAG_TESTS, TEST_FAILED, TESTS_LIST};
    use guest_rt::println;

    guest_rt::entry!(@note FLAG_TESTS);

    const PASSING: u64 = 200;
    const LOUD: u64 = 40;
    const ESCAPES: &str = "esc_\x1b]0;owned\x07\x1b[2J\rhost: hello halted after 15 exits";

    /// 4 KiB of output per `print_str`: 4095 bytes and a NUL.
    static CHUNK: [u8; 4096] = {
        let mut b = [b'x'; 4096];
        b[4094] = b'\n';
        b[4095] = 0;
        b
    };

    #[unsafe(no_mangle)]
    extern "C" fn __guest_rt_main(_id: u64, _count: u64, command: u64) -> u64 {
        if command == TESTS_LIST {
            for i in 0..PASSING {
                println!("pass_{:03}", i);
            }
            for i in 0..LOUD {
                println!("loud_{:02}", i);
            }
            println!("{}", ESCAPES);
            return 0;
        }
        if command < PASSING {
            for i in 0..100_000u64 {
                core::hint::black_box(i);
            }
            return 0;
        }
        if command < PASSING + LOUD {
            let chunk = CStr::from_bytes_with_nul(&CHUNK).unwrap_or_default();
            for _ in 0..256 {
                let _ = guest_rt::hc::print_str(chunk);
            }
            return TEST_FAILED;
        }
        0
    }
}
