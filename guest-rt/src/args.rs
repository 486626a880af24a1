//! The program's arguments (`host run GUEST -- ARG...`, or `cargo run
//! --bin GUEST -- ARG...`): [`args`] gives them as `&'static [&'static
//! str]`, without the program's name. The host writes them into guest
//! memory at `hypercall_abi::args::AREA` before the first instruction
//! (docs/abi.md, "Arguments").

use core::sync::atomic::{AtomicU8, Ordering};
use hypercall_abi::args::{AREA, AREA_END, CAPACITY, ENTRY, HEADER};

/// 0: the entries are the host's (gpa, len); 1: being turned into `&str`s;
/// 2: they are `&str`s.
static STATE: AtomicU8 = AtomicU8::new(0);

/// The guest's arguments: `host run primes -- 100 7` gives `["100", "7"]`.
/// The first call (from any vCPU) turns the host's entries into `&str`s in
/// place; an entry the host could not have written (outside the area, not
/// UTF-8) becomes "". Long mode (the area is identity-mapped RAM).
pub fn args() -> &'static [&'static str] {
    let argc = read_u32(AREA).min(((CAPACITY - HEADER) / ENTRY) as u32) as usize;
    match STATE.compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            convert(argc);
            STATE.store(2, Ordering::Release);
        }
        Err(_) => {
            while STATE.load(Ordering::Acquire) != 2 {
                core::hint::spin_loop();
            }
        }
    }
    // SAFETY: `convert` wrote `argc` valid `&'static str`s (16 bytes,
    // 8-aligned, as the entries they replaced) at AREA + HEADER, which no
    // one writes again (STATE stays 2); the area is identity-mapped RAM.
    unsafe { core::slice::from_raw_parts((AREA as usize + HEADER) as *const &'static str, argc) }
}

fn read_u32(gpa: u64) -> u32 {
    // SAFETY: the area is identity-mapped guest RAM that the ABI reserves
    // for the arguments; an aligned read of a word inside it.
    unsafe { core::ptr::read_volatile(gpa as usize as *const u32) }
}

fn read_u64(gpa: u64) -> u64 {
    // SAFETY: as in `read_u32`.
    unsafe { core::ptr::read_volatile(gpa as usize as *const u64) }
}

/// Replaces each (gpa, len) entry by the `&str` it describes.
fn convert(argc: usize) {
    let text = AREA + (HEADER + ENTRY * argc) as u64;
    for i in 0..argc {
        let e = AREA + (HEADER + ENTRY * i) as u64;
        let (gpa, len) = (read_u64(e), read_u64(e + 8));
        let s: &'static str = match gpa.checked_add(len) {
            Some(end) if gpa >= text && end <= AREA_END => {
                // SAFETY: [gpa, gpa + len) lies inside the area, after the
                // entries (checked just above): RAM nothing else writes.
                let bytes =
                    unsafe { core::slice::from_raw_parts(gpa as usize as *const u8, len as usize) };
                core::str::from_utf8(bytes).unwrap_or("")
            }
            _ => "",
        };
        // SAFETY: the entry is 16 bytes, 8-aligned (AREA and HEADER are
        // multiples of 8), the size and alignment of a `&str`; it was read
        // above and is not read as an entry again.
        unsafe { core::ptr::write(e as usize as *mut &'static str, s) };
    }
}

const _: () = {
    assert!(core::mem::size_of::<&str>() == ENTRY);
    assert!(core::mem::align_of::<&str>() <= 8);
    assert!(AREA.is_multiple_of(8) && HEADER.is_multiple_of(8));
};
