//! The default guest: "Hello, world!" through print8bit, then the 42 check.
#![no_std]
#![no_main]

use guest_rt::abi::layout::{CHECK_ADDR, CHECK_VALUE};
use guest_rt::hc;

guest_rt::entry!(main, check_42);

fn main() -> u64 {
    for &b in b"Hello, world!\n" {
        hc::print8bit(b);
    }
    // SAFETY: CHECK_ADDR is identity-mapped guest RAM that the ABI reserves
    // for this check; nothing else lives there.
    unsafe { core::ptr::write_volatile(CHECK_ADDR as *mut u64, CHECK_VALUE) };
    CHECK_VALUE // left in RAX at `hlt`
}
