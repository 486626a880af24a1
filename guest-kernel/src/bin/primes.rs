//! primes: the primes below LIMIT, PER_LINE to a line, from the program's
//! arguments (`host run primes -- 100 7`, `cargo run -p guest-kernel
//! --bin primes -- 100 7`; defaults 50 and 10). A guest as ordinary Rust:
//! arguments as `&[&str]`, a `Vec` on the heap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use guest_rt::{print, println};

guest_rt::entry!(main);
guest_rt::heap!(256 * 1024);

/// Argument `i` as a number, `default` when absent; None (after a line
/// that says why) when it is not one.
fn arg(i: usize, name: &str, default: u32) -> Option<u32> {
    match guest_rt::args().get(i) {
        None => Some(default),
        Some(a) => match a.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                println!(
                    "primes: {name} must be a positive number, not {a:?} (usage: primes [LIMIT [PER_LINE]])"
                );
                None
            }
        },
    }
}

fn main() -> u64 {
    let (Some(limit), Some(per_line)) = (arg(0, "LIMIT", 50), arg(1, "PER_LINE", 10)) else {
        return 2;
    };
    if limit > 100_000 {
        println!("primes: LIMIT is at most 100000 (the sieve lives in a 256 KiB heap)");
        return 2;
    }
    // a sieve, one byte per number
    let mut composite: Vec<bool> = Vec::new();
    composite.resize(limit as usize, false);
    let mut found = Vec::new();
    for n in 2..limit as usize {
        if !composite[n] {
            found.push(n as u32);
            let mut m = n * n;
            while m < limit as usize {
                composite[m] = true;
                m += n;
            }
        }
    }
    for line in found.chunks(per_line as usize) {
        for (i, p) in line.iter().enumerate() {
            if i > 0 {
                print!(" ");
            }
            print!("{p}");
        }
        println!();
    }
    println!("{} primes below {limit}", found.len());
    0
}
