//! Exercises every hypercall once, with output a test can check exactly.
#![no_std]
#![no_main]

use guest_rt::{hc, println};

guest_rt::entry!(main);

static MESSAGE: &core::ffi::CStr = c"print_str: this line is one exit\n";

fn main() -> u64 {
    for &b in b"print8bit: ok\n" {
        hc::print8bit(b);
    }

    println!("print32bit:");
    hc::print32bit(0);
    hc::print32bit(4_294_967_295);

    let before = hc::num_exits();
    let _ = hc::print_str(MESSAGE);
    let after = hc::num_exits();
    println!(
        "num_exits: before {before}, after {after}, difference {}",
        after - before
    );

    let summary = hc::num_exits_by_type();
    println!("num_exits_by_type: string at {summary:#x}");
    let _ = hc::print_str_at(summary);

    let gva = MESSAGE.as_ptr() as u64;
    match (hc::gva_to_hva(gva), hc::gva_to_hva(gva + 0x1000)) {
        (Ok(a), Ok(b)) => println!("gva_to_hva({gva:#x}) = {a:#x}; next page +{:#x}", b - a),
        _ => println!("gva_to_hva({gva:#x}) failed"),
    }
    let unmapped = 0xdead_0000_0000_u64;
    match hc::gva_to_hva(unmapped) {
        Ok(h) => println!("gva_to_hva({unmapped:#x}) = {h:#x}"),
        Err(e) => println!("gva_to_hva({unmapped:#x}) = 0 ({e:?})"),
    }
    0
}
