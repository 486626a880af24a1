//! Rewrites its own page tables into a loop and to point outside memory,
//! then asks the host to translate through them. The host must answer
//! (valid or "Invalid GVA"), never hang, never read outside guest memory.
#![no_std]
#![no_main]

use guest_rt::abi::layout::PAGE_TABLES;
use guest_rt::{hc, println};

guest_rt::entry!(main);

const PRESENT_WRITABLE: u64 = 0x3;

fn set_pml4(index: u64, value: u64) {
    let entry = (PAGE_TABLES + index * 8) as *mut u64;
    // SAFETY: the PML4 is identity-mapped guest RAM; entries 1..3 map
    // nothing this program uses (it runs below 1 GiB, through entry 0).
    unsafe { entry.write_volatile(value) };
}

fn main() -> u64 {
    // PML4[1] -> the PML4 itself: every level reuses a table
    set_pml4(1, PAGE_TABLES | PRESENT_WRITABLE);
    println!("loop: {:?}", hc::gva_to_hva(1 << 39).map(|_| "mapped"));
    // PML4[2] -> a PDPT far outside guest memory
    set_pml4(2, 0x7fff_0000_0000 | PRESENT_WRITABLE);
    println!("outside: {:?}", hc::gva_to_hva(2 << 39));
    // PML4[3] -> not present
    set_pml4(3, 0);
    println!("absent: {:?}", hc::gva_to_hva(3 << 39));
    0
}
