//! Generates the table of built guest programs from the artifact dependency.
use std::fmt::Write as _;

fn main() {
    const PREFIX: &str = "CARGO_BIN_FILE_GUEST_KERNEL_";
    let mut guests: Vec<(String, String)> = std::env::vars()
        .filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|name| (name.to_string(), v)))
        .collect();
    guests.sort();
    let mut code =
        String::from("/// Guest programs built from guest-kernel/src/bin: (name, ELF path).\n");
    code.push_str("pub static BUILT_GUESTS: &[(&str, &str)] = &[\n");
    for (name, path) in &guests {
        let _ = writeln!(code, "    ({name:?}, {path:?}),");
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    let dest = std::path::Path::new(&out).join("built_guests.rs");
    if let Err(e) = std::fs::write(&dest, code) {
        println!("cargo::error=cannot write {}: {e}", dest.display());
    }
    println!("cargo::rerun-if-changed=build.rs");
    link_order();
}

/// The release `host` executable is linked with the functions `host run
/// hello` executes side by side (tools/link-ordered, the linker for this
/// target in .cargo/config.toml): a new list relinks it.
fn link_order() {
    println!("cargo::rerun-if-changed=link/order.txt");
}
