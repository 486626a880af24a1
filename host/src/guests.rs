//! The guest programs built from `guest-kernel/src/bin/` and how a name on
//! the command line becomes an ELF path.

use crate::diag::escape;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/built_guests.rs"));

/// Why a guest could not be found.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// Neither a built guest's name nor an existing file.
    #[error(
        "unknown guest '{}': {}not a file, and the built guests are {}",
        escape(name),
        closest.as_ref().map(|c| format!("did you mean '{}'? It is ", escape(c))).unwrap_or_default(),
        names.iter().map(|n| escape(n)).collect::<Vec<_>>().join(", ")
    )]
    Unknown {
        /// What the user gave.
        name: String,
        /// The built guest whose name is closest, if one is close.
        closest: Option<String>,
        /// Every built guest's name.
        names: Vec<String>,
    },
    /// The build recorded a path that is gone.
    #[error(
        "guest '{}' was built to {}, which no longer exists: rebuild with `cargo build -p host`",
        escape(name),
        escape(path)
    )]
    Missing {
        /// Guest name.
        name: String,
        /// Recorded path.
        path: String,
    },
}

/// Where `cargo build -p guest-kernel` (and `cargo run`/`cargo test` of a
/// guest) put guest programs, found from this executable's place in the
/// target folder: `target/x86_64-unknown-none/{debug,release}/`.
fn build_dirs() -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    // target/debug/host, target/release/host, target/debug/deps/<test>
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("x86_64-unknown-none"))
        .find(|d| d.is_dir())
        .map(|d| vec![d.join("debug"), d.join("release")])
        .unwrap_or_default()
}

/// Whether `p` is a file that starts like an ELF.
fn is_elf(p: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == *b"\x7fELF"
}

/// The modification time of `p` if it is a file (one stat).
fn file_mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.modified().unwrap_or(std::time::UNIX_EPOCH))
}

/// The modification time of `p` if `name` in a build folder is a guest
/// program: cargo's outputs are `name` beside `name.d` (dep files and
/// folders are not), and an ELF.
fn built_guest(name: &str, p: &Path) -> Option<std::time::SystemTime> {
    if name.contains('.') {
        return None;
    }
    file_mtime(p).filter(|_| is_elf(p))
}

/// A guest ELF and its modification time (None: the file is gone).
type Found = (PathBuf, Option<std::time::SystemTime>);

/// Keeps the newer of `found` and the build output `p` (modified at `t`);
/// an entry whose file is gone always loses. Either way one `Option<Found>`
/// is dropped, so `host run NAME` executes the same functions whichever
/// build folder holds the newest ELF (tools/order-file --check compares
/// them with host/link/order.txt).
fn keep_newest(found: &mut Option<Found>, p: PathBuf, t: std::time::SystemTime) {
    let newer = found
        .as_ref()
        .is_none_or(|(_, old)| old.is_none_or(|o| t > o));
    let candidate = Some((p, Some(t)));
    let loser = if newer {
        std::mem::replace(found, candidate)
    } else {
        candidate
    };
    drop(loser);
}

/// The ELF of the guest `name` that this host was built with.
fn built_with(name: &str) -> Option<Found> {
    BUILT_GUESTS.iter().find(|(n, _)| *n == name).map(|(_, p)| {
        let p = PathBuf::from(p);
        let t = file_mtime(&p);
        (p, t)
    })
}

/// Every built guest, by name, with the newest ELF of that name: the ones
/// this host was built with (`BUILT_GUESTS`) and the ones the guest build
/// put in its output folders since (a guest written after the host was
/// built runs without rebuilding the host).
pub fn list() -> Vec<(String, PathBuf)> {
    let mut all: std::collections::BTreeMap<String, Option<Found>> = BUILT_GUESTS
        .iter()
        .map(|(n, _)| (n.to_string(), built_with(n)))
        .collect();
    for dir in build_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if let Some(t) = built_guest(&name, &p) {
                keep_newest(all.entry(name).or_default(), p, t);
            }
        }
    }
    all.into_iter()
        .filter_map(|(n, f)| f.map(|(p, _)| (n, p)))
        .collect()
}

/// Whether the source of guest `name` is gone from the workspace this host
/// was built in: an ELF left in target/ after its file in
/// guest-kernel/src/bin/ was deleted or renamed. Said only when that
/// folder is there (a host copied elsewhere cannot tell).
pub fn source_gone(name: &str) -> bool {
    let bins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kernel/src/bin");
    bins.is_dir() && !bins.join(format!("{name}.rs")).exists()
}

/// `arg` as a path if it names an existing file or contains a '/',
/// else as the name of a built guest (the newest of that name). Only the
/// files of that name are looked at, each with one stat; the build folders
/// are listed only to say what an unknown name could have meant.
pub fn resolve(arg: &str) -> Result<PathBuf, GuestError> {
    let as_path = Path::new(arg);
    // Anything that exists is a path (a FIFO or a folder too: reading
    // refuses those with a clear line instead of taking them for a name).
    if arg.contains('/') || as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    let mut found = built_with(arg);
    for dir in build_dirs() {
        let p = dir.join(arg);
        if let Some(t) = built_guest(arg, &p) {
            keep_newest(&mut found, p, t);
        }
    }
    match found {
        Some((path, Some(_))) => Ok(path),
        Some((path, None)) => Err(GuestError::Missing {
            name: arg.to_string(),
            path: path.display().to_string(),
        }),
        None => {
            let names: Vec<String> = list().into_iter().map(|(n, _)| n).collect();
            Err(GuestError::Unknown {
                name: arg.to_string(),
                closest: closest(arg, &names).map(str::to_string),
                names,
            })
        }
    }
}

/// Edit distance (insertions, deletions, substitutions) between two names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The name in `names` closest to `name`: at most 2 edits away, or one
/// that starts with it.
fn closest<'a>(name: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (distance(name, n), n.as_str()))
        .filter(|&(d, n)| d <= 2.min(name.len().saturating_sub(1)) || n.starts_with(name))
        .min()
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        assert_eq!(distance("helo", "hello"), 1);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("kitten", "sitting"), 3);
        let names: Vec<String> = ["hello", "hypercalls", "smp"].map(String::from).to_vec();
        assert_eq!(closest("helo", &names), Some("hello"));
        assert_eq!(closest("hypercall", &names), Some("hypercalls"));
        assert_eq!(closest("zzzzzz", &names), None);
    }

    #[test]
    fn the_default_guests_are_built() {
        for g in ["hello", "hypercalls", "badptr"] {
            let p = resolve(g).unwrap();
            assert!(p.is_file(), "{g}: {}", p.display());
        }
    }

    #[test]
    fn unknown_names_list_the_built_ones() {
        let e = resolve("no-such-guest").unwrap_err().to_string();
        assert!(e.starts_with("unknown guest 'no-such-guest'"), "{e}");
        assert!(e.contains("hello") && e.contains("hypercalls"), "{e}");
    }
}
