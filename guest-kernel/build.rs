//! Links every guest program with linker/guest.ld (fixed load address, ABI note kept).
include!("../linker/link.rs");

fn main() {
    link_with_guest_ld();
}
