//! The unit-test program of guest-rt is a guest like any other: linked
//! with linker/guest.ld at its fixed address (a library ignores link args).
include!("../linker/link.rs");

fn main() {
    link_with_guest_ld();
}
