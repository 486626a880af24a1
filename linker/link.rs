// Included by guest-kernel/build.rs and guest-rt/build.rs: links a guest
// program (or guest-rt's test program) with linker/guest.ld at its fixed
// address, the ABI note kept.
fn link_with_guest_ld() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = std::path::Path::new(&dir).join("../linker/guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg=-T{}", script.display());
    println!("cargo:rustc-link-arg=--no-pie");
    println!("cargo:rustc-link-arg=-zmax-page-size=4096");
}
