//! The guest test harness on display (`cargo test -p guest-kernel --bin
//! harness_demo -- --include-ignored`, docs/guests.md): one test that
//! passes, and, ignored unless asked for, one that panics, one that
//! triple-faults and one that never returns. tests/harness.rs checks that
//! each is reported by name with its output and the others still run.
#![no_std]
#![no_main]

guest_rt::entry!(main);

fn main() -> u64 {
    guest_rt::println!("harness_demo: run it with cargo test");
    0
}

#[cfg(test)]
mod tests {
    use guest_rt::{ignored_test, println};

    #[test_case]
    fn passes() {
        println!("this one passes");
        assert_eq!(2 + 2, 4);
    }

    fn panics() {
        println!("about to fail");
        assert_eq!(1 + 1, 3, "arithmetic");
    }
    ignored_test!(panics);

    fn triple_faults() {
        // SAFETY: ud2 raises #UD; with no IDT it becomes a triple fault,
        // which is what this test shows.
        unsafe { core::arch::asm!("ud2") };
    }
    ignored_test!(triple_faults);

    fn never_returns() {
        loop {
            core::hint::spin_loop();
        }
    }
    ignored_test!(never_returns);
}
