//! The guest programs built from `guest-kernel/src/bin/` and how a name on
//! the command line becomes an ELF path.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/built_guests.rs"));

/// Why a guest could not be found.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// Neither a built guest's name nor an existing file.
    #[error(
        "unknown guest '{name}': {}not a file, and the built guests are {}",
        closest.map(|c| format!("did you mean '{c}'? It is ")).unwrap_or_default(),
        names()
    )]
    Unknown {
        /// What the user gave.
        name: String,
        /// The built guest whose name is closest, if one is close.
        closest: Option<&'static str>,
    },
    /// The build recorded a path that is gone.
    #[error(
        "guest '{name}' was built to {path}, which no longer exists: rebuild with `cargo build -p host`"
    )]
    Missing {
        /// Guest name.
        name: String,
        /// Recorded path.
        path: String,
    },
}

fn names() -> String {
    BUILT_GUESTS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of all built guests, sorted.
pub fn list() -> impl Iterator<Item = (&'static str, &'static Path)> {
    BUILT_GUESTS.iter().map(|(n, p)| (*n, Path::new(*p)))
}

/// `arg` as a path if it names an existing file or contains a '/',
/// else as the name of a built guest.
pub fn resolve(arg: &str) -> Result<PathBuf, GuestError> {
    let as_path = Path::new(arg);
    // Anything that exists is a path (a FIFO or a folder too: reading
    // refuses those with a clear line instead of taking them for a name).
    if arg.contains('/') || as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    match BUILT_GUESTS.iter().find(|(n, _)| *n == arg) {
        Some((_, path)) if Path::new(path).is_file() => Ok(PathBuf::from(path)),
        Some((name, path)) => Err(GuestError::Missing {
            name: name.to_string(),
            path: path.to_string(),
        }),
        None => Err(GuestError::Unknown {
            name: arg.to_string(),
            closest: closest(arg),
        }),
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

/// The built guest closest to `name`: at most 2 edits away, or one that
/// starts with it.
fn closest(name: &str) -> Option<&'static str> {
    BUILT_GUESTS
        .iter()
        .map(|(n, _)| (distance(name, n), *n))
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
        if BUILT_GUESTS.iter().any(|(n, _)| *n == "hello") {
            assert_eq!(closest("helo"), Some("hello"));
            assert_eq!(closest("hypercall"), Some("hypercalls"));
            assert_eq!(closest("zzzzzz"), None);
        }
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
