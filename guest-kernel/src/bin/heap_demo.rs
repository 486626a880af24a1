//! heap_demo: `Vec`, `String`, `format!` and `Box` in a guest, over the
//! 64 KiB heap `guest_rt::heap!` gives it (docs/guests.md "A heap").
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

guest_rt::entry!(main);
guest_rt::heap!(64 * 1024);

fn main() -> u64 {
    let squares: Vec<u64> = (0..1000).map(|i| i * i).collect();
    let sum: u64 = squares.iter().sum();
    let text: String = alloc::format!("the sum of the first 1000 squares is {sum}");
    guest_rt::println!("{text}");
    drop(squares);
    // the freed memory is used again
    let boxes: Vec<Box<[u8; 100]>> = (0..200).map(|i| Box::new([i as u8; 100])).collect();
    let total: u64 = boxes.iter().map(|b| u64::from(b[99])).sum();
    guest_rt::println!("{} boxes, their last bytes add up to {total}", boxes.len());
    // too much: the heap says so, and the allocation failure panics
    let big: Vec<u8> = Vec::with_capacity(core::hint::black_box(1 << 20));
    big.capacity() as u64
}
