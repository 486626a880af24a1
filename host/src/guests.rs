//! The guest programs built from `guest-kernel/src/bin/` and how a name on
//! the command line becomes an ELF path.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/built_guests.rs"));

/// Why a guest could not be found.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// Neither a built guest's name nor an existing file.
    #[error(
        "unknown guest '{name}': not a file, and the built guests are {}",
        names()
    )]
    Unknown {
        /// What the user gave.
        name: String,
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
    if arg.contains('/') || as_path.is_file() {
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
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
