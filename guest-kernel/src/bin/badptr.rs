//! Hands the host bad pointers: each hypercall must fail cleanly, with one
//! line from the host, and the guest goes on and sees the error status.
//! Run with the default 2 MiB of memory.
#![no_std]
#![no_main]

use guest_rt::abi::MAX_STR_LEN;
use guest_rt::{hc, println};

guest_rt::entry!(main);

const MEM_END: u64 = 2 << 20;
static mut LONG: [u8; MAX_STR_LEN as usize + 8] = [b'a'; MAX_STR_LEN as usize + 8];

fn main() -> u64 {
    println!("outside: {:?}", hc::print_str_at(0xffff_0000));

    // "xyz" in the last three bytes of memory, no NUL after it
    let tail = (MEM_END - 3) as *mut u8;
    for (i, &b) in b"xyz".iter().enumerate() {
        // SAFETY: the last 3 bytes of the 2 MiB of identity-mapped guest RAM;
        // nothing else of this program lives there.
        unsafe { tail.add(i).write_volatile(b) };
    }
    println!("straddling: {:?}", hc::print_str_at(MEM_END - 3));

    let long = &raw const LONG;
    println!("unterminated: {:?}", hc::print_str_at(long as u64));

    hc::gva_to_hva_raw(0xffff_fff0);
    println!("block outside: survived");
    0
}
