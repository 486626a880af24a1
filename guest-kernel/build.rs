//! Links every guest program with linker/guest.ld (fixed load address, ABI note kept).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = std::path::Path::new(&dir).join("../linker/guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg=-T{}", script.display());
    println!("cargo:rustc-link-arg=--no-pie");
    println!("cargo:rustc-link-arg=-zmax-page-size=4096");
}
