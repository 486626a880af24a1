//! snapshot_demo: set-up that takes a while, then a `snapshot` hypercall,
//! then the work. `host run snapshot_demo --snapshot demo.snap` saves the
//! VM at the call (and stops); `host run --restore demo.snap` continues
//! from there, skipping the set-up, any number of times. The set-up is a
//! sieve of Eratosthenes over 0..LIMIT in guest memory (the heap); the work
//! counts primes in ranges given as arguments (`-- 1000 2000`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use guest_rt::println;

guest_rt::entry!(main, check_42);
guest_rt::heap!(256 * 1024);

/// The sieve's size.
const LIMIT: usize = 200_000;

fn main() -> u64 {
    let mut composite = vec![false; LIMIT];
    for i in 2..LIMIT {
        if !composite[i] {
            let mut j = i * i;
            while j < LIMIT {
                composite[j] = true;
                j += i;
            }
        }
    }
    let total = (2..LIMIT).filter(|&i| !composite[i]).count();
    println!("set-up: {total} primes below {LIMIT}");
    guest_rt::hc::snapshot(1);
    println!("after the snapshot call");
    let args = guest_rt::args();
    let range = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (lo, hi) = (range(0, 1000).min(LIMIT), range(1, 2000).min(LIMIT));
    let n = (lo.max(2)..hi).filter(|&i| !composite[i]).count();
    println!("{n} primes in {lo}..{hi}");
    guest_rt::pass_check_42()
}
