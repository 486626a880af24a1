//! The shape of the code, checked (docs/architecture.md): the host's
//! modules import only from their own layer or below, no module graph has a
//! circle (host and guest-rt, between top-level modules and between the
//! files of one module), a `mod.rs` only declares and re-exports, and no
//! file has more than ~400 lines of non-test code.
//!
//! The sources are read as text: an import is any `crate::a::b` or
//! `super::b` path outside comments and `#[cfg(test)]` code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The host's layers, lowest first (as in host/src/lib.rs).
const HOST_LAYERS: &[(&str, &[&str])] = &[
    ("leaves", &["stats", "trace", "size", "wire", "timeline"]),
    ("x86 facts", &["x86"]),
    (
        "plumbing",
        &[
            "diag", "config", "loader", "guests", "signals", "seccomp", "snapshot",
        ],
    ),
    ("KVM objects", &["kvm"]),
    ("devices", &["devices"]),
    ("one vCPU", &["vcpu"]),
    ("the VM", &["vm"]),
    (
        "commands",
        &["run", "gdb", "inspect", "matrix", "bench", "abi", "report"],
    ),
];

/// Most lines of non-test code in one file.
const MAX_LINES: usize = 420;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("source folder").flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its test module and without comments.
fn code(text: &str) -> String {
    let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a file under `src` (`vm/machine.rs` -> ["vm",
/// "machine"], `vm/mod.rs` -> ["vm"], `lib.rs` -> []).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The identifiers of a path starting at `s`: `a::b::C` -> [a, b, C], and
/// what follows it.
fn chain(mut s: &str) -> (Vec<String>, &str) {
    let mut ids = Vec::new();
    loop {
        let n = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .count();
        if n == 0 {
            return (ids, s);
        }
        ids.push(s[..n].to_string());
        s = &s[n..];
        match s.strip_prefix("::") {
            Some(r) if r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') => s = r,
            _ => return (ids, s),
        }
    }
}

/// Every `crate::x::y` and `super::y` path in `code` (one level of braces
/// opened: `crate::a::{b, c}` gives a::b and a::c), as module paths; the
/// tail may be an item, which `resolve` drops.
fn imports(code: &str, me: &[String], is_mod_rs: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (start, from_root) in [("crate::", true), ("super::", false)] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
                continue;
            }
            let base = if from_root {
                Vec::new()
            } else {
                // `super` of a mod.rs is the parent of its folder
                let up = if is_mod_rs { 2 } else { 1 };
                me[..me.len().saturating_sub(up)].to_vec()
            };
            let (ids, after) = chain(rest);
            let mut p = base;
            p.extend(ids);
            if let Some(group) = after.strip_prefix("::{") {
                for item in group.split('}').next().unwrap_or("").split(',') {
                    let (sub, _) = chain(item.trim());
                    let mut q = p.clone();
                    q.extend(sub);
                    out.push(q);
                }
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The longest known module that `path` starts with.
fn resolve(path: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

struct Crate {
    /// module -> the modules it imports (resolved), from non-test code.
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    /// Files whose names are mod.rs, with their code.
    mod_rs: Vec<(PathBuf, String)>,
    /// (file, lines of non-test code).
    sizes: Vec<(PathBuf, usize)>,
}

fn read_crate(src: &Path, skip: &[&str]) -> Crate {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.retain(|f| {
        !skip
            .iter()
            .any(|s| f.strip_prefix(src).is_ok_and(|r| r.starts_with(s)))
    });
    let known: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut c = Crate {
        edges: BTreeMap::new(),
        mod_rs: Vec::new(),
        sizes: Vec::new(),
    };
    for f in &files {
        let text = std::fs::read_to_string(f).expect("source file");
        let code = code(&text);
        let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
        c.sizes.push((f.clone(), text[..cut].lines().count()));
        let is_mod = f.file_name().is_some_and(|n| n == "mod.rs");
        let me = module_of(src, f);
        if is_mod {
            c.mod_rs.push((f.clone(), code.clone()));
        }
        let targets = c.edges.entry(me.clone()).or_default();
        for p in imports(&code, &me, is_mod) {
            if let Some(t) = resolve(&p, &known)
                && t != me
                && !t.is_empty()
            {
                targets.insert(t);
            }
        }
    }
    c
}

/// A circle in `edges`, if any, as the modules on it.
fn find_circle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let i = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut c: Vec<String> = stack[i..].iter().map(|m| m.join("::")).collect();
                c.push(n.join("::"));
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for t in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(t, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut state, &mut Vec::new()))
}

/// The graph between top-level modules (a file's edges count for its
/// top-level module; edges inside one top-level module are left out).
fn top_level(c: &Crate) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (from, tos) in &c.edges {
        let Some(f) = from.first() else { continue };
        let e = g.entry(vec![f.clone()]).or_default();
        for t in tos {
            if t[0] != *f {
                e.insert(vec![t[0].clone()]);
            }
        }
    }
    g
}

/// The graph between the files of each module, mod.rs files left out (they
/// only declare and re-export, so every child "imports" them).
fn inside_modules(c: &Crate) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let parents: BTreeSet<Vec<String>> = c.mod_rs.iter().map(|_| Vec::new()).collect();
    let _ = parents;
    let dirs: BTreeSet<Vec<String>> = c
        .edges
        .keys()
        .filter(|k| {
            c.edges
                .keys()
                .any(|o| o.len() > k.len() && o.starts_with(k))
        })
        .cloned()
        .collect();
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (from, tos) in &c.edges {
        if dirs.contains(from) || from.len() < 2 {
            continue;
        }
        let e = g.entry(from.clone()).or_default();
        for t in tos {
            if t[0] == from[0] && !dirs.contains(t) {
                e.insert(t.clone());
            }
        }
    }
    g
}

#[test]
fn host_modules_import_only_from_their_layer_or_below() {
    let c = read_crate(&root().join("host/src"), &["cli"]);
    let rank = |m: &str| {
        HOST_LAYERS
            .iter()
            .position(|(_, ms)| ms.contains(&m))
            .unwrap_or_else(|| panic!("module `{m}` is in no layer: add it to HOST_LAYERS, host/src/lib.rs and docs/architecture.md"))
    };
    let mut wrong = Vec::new();
    for (from, tos) in top_level(&c) {
        for t in tos {
            let (a, b) = (rank(&from[0]), rank(&t[0]));
            if b > a {
                wrong.push(format!(
                    "{} ({}) imports {} ({})",
                    from[0], HOST_LAYERS[a].0, t[0], HOST_LAYERS[b].0
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that go up a layer:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_circle_in_the_host_or_in_guest_rt() {
    for (name, src, skip) in [
        ("host", "host/src", &["cli"][..]),
        ("guest-rt", "guest-rt/src", &[][..]),
    ] {
        let c = read_crate(&root().join(src), skip);
        assert!(c.edges.len() > 5, "{name}: too few modules read");
        if let Some(circle) = find_circle(&top_level(&c)) {
            panic!("{name}: import circle {}", circle.join(" -> "));
        }
        if let Some(circle) = find_circle(&inside_modules(&c)) {
            panic!("{name}: import circle {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_circle_finder_finds_circles() {
    let m = |s: &str| vec![s.to_string()];
    let mut g = BTreeMap::new();
    g.insert(m("a"), BTreeSet::from([m("b")]));
    g.insert(m("b"), BTreeSet::from([m("c")]));
    g.insert(m("c"), BTreeSet::new());
    assert_eq!(find_circle(&g), None);
    g.insert(m("c"), BTreeSet::from([m("a")]));
    assert_eq!(
        find_circle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let known: BTreeSet<Vec<String>> = [m("x"), vec!["x".into(), "y".into()]].into();
    let me = vec!["x".to_string(), "z".to_string()];
    let i = imports("use crate::x::y::{A, B};\nuse super::y::C;", &me, false);
    let r: Vec<_> = i.iter().filter_map(|p| resolve(p, &known)).collect();
    assert_eq!(r, [vec!["x", "y"], vec!["x", "y"], vec!["x", "y"]]);
}

#[test]
fn a_mod_rs_only_declares_and_reexports() {
    for src in ["host/src", "guest-rt/src"] {
        let c = read_crate(&root().join(src), &[]);
        for (f, code) in &c.mod_rs {
            for l in code.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let ok = [
                    "mod ",
                    "pub mod ",
                    "pub use ",
                    "pub(crate) use ",
                    "use ",
                    "#[",
                ]
                .iter()
                .any(|p| l.starts_with(p))
                    || l.starts_with('}')
                    || !l.contains(['(', '{', '=']) && !l.starts_with("fn ");
                assert!(
                    ok,
                    "{}: `{l}`: a mod.rs only declares and re-exports",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn no_file_has_more_than_about_400_lines_of_non_test_code() {
    let mut big = Vec::new();
    for src in [
        "host/src",
        "guest-rt/src",
        "guest-rt-macros/src",
        "hypercall-abi/src",
    ] {
        for (f, n) in read_crate(&root().join(src), &[]).sizes {
            if n > MAX_LINES {
                big.push(format!("{}: {n} lines", f.display()));
            }
        }
    }
    assert!(big.is_empty(), "split by concern:\n{}", big.join("\n"));
}
