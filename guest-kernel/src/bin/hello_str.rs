//! "Hello, world!" in one exit: the whole line through print_str (compare
//! `host run hello`, which spends one print8bit exit per byte), then the 42
//! check.
#![no_std]
#![no_main]

use guest_rt::hc;

guest_rt::entry!(main, check_42);

fn main() -> u64 {
    let _ = hc::print_str(c"Hello, world!\n");
    guest_rt::pass_check_42()
}
