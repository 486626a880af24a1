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

/// Release builds of the `host` executable put the functions `host run
/// hello` executes side by side (lld's --symbol-ordering-file, with the list
/// `make order-file` writes to link/order.txt): the kernel maps the text 64
/// KiB around each page fault, so scattered code made nearly all of it
/// resident (issue 19: 2356 KiB of RSS, 948 KiB with the order). Symbols
/// the list names but the build lacks are skipped without a warning.
fn link_order() {
    let order = std::path::Path::new("link/order.txt");
    println!("cargo::rerun-if-changed=link/order.txt");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if release && order.is_file() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        let path = std::path::Path::new(&dir).join(order);
        println!(
            "cargo::rustc-link-arg-bin=host=-Wl,--symbol-ordering-file={}",
            path.display()
        );
        println!("cargo::rustc-link-arg-bin=host=-Wl,--no-warn-symbol-ordering");
    }
}
