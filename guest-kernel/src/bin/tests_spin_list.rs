//! tests_spin_list: a test program (ABI note flag TESTS) that prints a
//! little and then spins instead of listing its tests: `host cargo-runner`
//! must obey `--timeout` for the listing run too and report a failure,
//! with the host's line on a line of its own (tests/hostile.rs).
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
    use guest_rt::abi::note::FLAG_TESTS;

    guest_rt::entry!(@note FLAG_TESTS);

    #[unsafe(no_mangle)]
    extern "C" fn __guest_rt_main(_id: u64, _count: u64, _command: u64) -> u64 {
        guest_rt::print!("listing");
        loop {
            core::hint::spin_loop();
        }
    }
}
