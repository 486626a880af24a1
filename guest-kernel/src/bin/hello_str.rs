//! "Hello, world!" in one exit: the whole line through print_str (compare
//! `host run hello`, which spends one print8bit exit per byte), then the 42
//! check.
#![no_std]
#![no_main]

use guest_rt::abi::layout::{CHECK_ADDR, CHECK_VALUE};
use guest_rt::hc;

guest_rt::entry!(main, check_42);

fn main() -> u64 {
    let _ = hc::print_str(c"Hello, world!\n");
    // SAFETY: CHECK_ADDR is identity-mapped guest RAM that the ABI reserves
    // for this check; nothing else lives there.
    unsafe { core::ptr::write_volatile(CHECK_ADDR as *mut u64, CHECK_VALUE) };
    CHECK_VALUE
}
