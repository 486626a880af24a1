//! Reading a snapshot file as untrusted input: the header, the metadata
//! and the page data are checked before anything else uses them.

use super::format::{
    HEADER, MAGIC, MAX_META, PAGE, SnapError, Snapshot, VERSION, pages_offset, pages_sum, pieces,
};
use crate::wire::{FNV_START, hash};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A snapshot read and checked, and its file, open for the page data at
/// `pages_off`.
pub struct Opened {
    /// The metadata.
    pub snap: Snapshot,
    /// The file.
    pub file: std::fs::File,
    /// Where the page data starts.
    pub pages_off: u64,
}

/// [`open`], and the snapshot must come from a host of this hypercall
/// ABI (its fingerprint).
pub fn open_restorable(path: &Path) -> Result<Opened, SnapError> {
    let o = open(path)?;
    let bad = |why: String| SnapError::Bad {
        path: crate::diag::escape(&path.display().to_string()).into_owned(),
        why,
    };
    if o.snap.fingerprint != hypercall_abi::FINGERPRINT {
        return Err(bad(format!(
            "it was saved by a host with hypercall ABI fingerprint {:#018x}, and this host's is {:#018x} (`host abi`): restore it with the host that saved it",
            o.snap.fingerprint,
            hypercall_abi::FINGERPRINT
        )));
    }
    Ok(o)
}

/// Whether `path` is a regular file that starts like a snapshot (a FIFO
/// or a device is not opened: opening a FIFO would wait for a writer).
pub fn is_snapshot(path: &Path) -> bool {
    let mut head = [0u8; 8];
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .and_then(|f| f.read_exact_at(&mut head, 0))
            .is_ok()
        && head == MAGIC
}

/// Reads and checks the snapshot at `path`: header, metadata and the page
/// data's checksum (read once, in 1 MiB pieces: O(pages with data), not
/// O(guest RAM)).
pub fn open(path: &Path) -> Result<Opened, SnapError> {
    let name = crate::diag::escape(&path.display().to_string()).into_owned();
    let io = |source| SnapError::Io {
        path: name.clone(),
        source,
    };
    let bad = |why: String| SnapError::Bad {
        path: name.clone(),
        why,
    };
    // O_NONBLOCK: a FIFO put where a snapshot was named opens without
    // waiting for a writer (and is then refused: not a regular file)
    let file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io)?
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let len = meta.len();
    if len < HEADER {
        return Err(bad(format!(
            "{len} bytes, shorter than the {HEADER}-byte header"
        )));
    }
    let mut h = [0u8; HEADER as usize];
    file.read_exact_at(&mut h, 0).map_err(io)?;
    if h[0..8] != MAGIC {
        return Err(bad("it does not start with \"KVMWBSNP\"".into()));
    }
    let word = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(bad(format!(
            "format version {version}; this host reads version {VERSION}"
        )));
    }
    if word(56) != hash(&h[..56]) {
        return Err(bad(
            "the header's checksum does not match (corrupt header)".into()
        ));
    }
    let (meta_len, meta_sum, pages_off, pages_len, want_sum) =
        (word(16), word(24), word(32), word(40), word(48));
    if meta_len > MAX_META || HEADER + meta_len > len {
        return Err(bad(format!(
            "metadata of {meta_len} bytes does not fit a {len}-byte file (truncated?)"
        )));
    }
    let mut m = vec![0u8; meta_len as usize];
    file.read_exact_at(&mut m, HEADER).map_err(io)?;
    if hash(&m) != meta_sum {
        return Err(bad(
            "the metadata's checksum does not match (corrupt file)".into()
        ));
    }
    let snap = Snapshot::decode(&m).map_err(|e| bad(e.to_string()))?;
    if pages_off != pages_offset(meta_len) || pages_len != snap.mem_size {
        return Err(bad(format!(
            "a memory image at {pages_off:#x} of {pages_len} bytes does not match its {} bytes of guest memory",
            snap.mem_size
        )));
    }
    let end = pages_off.saturating_add(pages_len);
    if end != len {
        return Err(bad(match end > len {
            true => format!("{len} bytes, but its page data ends at {end} (truncated)"),
            false => format!("{} bytes after its page data", len - end),
        }));
    }
    // the padding between the metadata and the pages is zeros
    let mut pad = vec![0u8; (pages_off - HEADER - meta_len) as usize];
    file.read_exact_at(&mut pad, HEADER + meta_len)
        .map_err(io)?;
    if pad.iter().any(|&b| b != 0) {
        return Err(bad(
            "the padding before the page data is not zero (corrupt file)".into(),
        ));
    }
    let mut sum = FNV_START;
    let mut buf = vec![0u8; 1 << 20];
    for (gpa, n) in pieces(&snap.runs) {
        file.read_exact_at(&mut buf[..n], pages_off + gpa)
            .map_err(io)?;
        sum = pages_sum(sum, &buf[..n]);
    }
    if sum != want_sum {
        return Err(bad(
            "the page data's checksum does not match (corrupt file)".into(),
        ));
    }
    zeros_between_runs(&file, pages_off, &snap).map_err(|why| match why {
        Ok(why) => bad(why),
        Err(e) => io(e),
    })?;
    Ok(Opened {
        snap,
        file,
        pages_off,
    })
}

/// Checks that the memory image holds zeros outside the listed pages:
/// the file system lists where it stored data (lseek SEEK_DATA and
/// SEEK_HOLE, O(extents)), and only data outside the runs is read (all of
/// it on a file system without holes). Err(Ok(why)): not zero.
fn zeros_between_runs(
    file: &std::fs::File,
    off: u64,
    snap: &Snapshot,
) -> Result<(), Result<String, std::io::Error>> {
    let fd = file.as_raw_fd();
    let end = off + snap.mem_size;
    let mut pos = off;
    let mut buf = vec![0u8; 64 << 10];
    while pos < end {
        // SAFETY: lseek on our own open fd; no memory is passed.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENXIO) => return Ok(()),
                _ => return Err(Err(e)),
            }
        }
        let data = data as u64;
        if data >= end {
            return Ok(());
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        let hole = if hole < 0 {
            end
        } else {
            (hole as u64).min(end)
        };
        // the parts of [data, hole) that no run covers must be zeros
        let mut at = data;
        while at < hole {
            let gpa = at - off;
            let covered = snap
                .runs
                .iter()
                .find(|r| r.gpa <= gpa && gpa < r.gpa + r.pages * PAGE)
                .map(|r| off + r.gpa + r.pages * PAGE);
            if let Some(run_end) = covered {
                at = run_end.min(hole);
                continue;
            }
            let next_run = snap
                .runs
                .iter()
                .map(|r| off + r.gpa)
                .find(|&s| s > at)
                .unwrap_or(hole)
                .min(hole);
            let n = (next_run - at).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], at).map_err(Err)?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(Ok(format!(
                    "guest page {:#x} holds data the page list does not name (corrupt file)",
                    (at - off + buf[..n].iter().position(|&b| b != 0).unwrap_or(0) as u64)
                        & !(PAGE - 1)
                )));
            }
            at += n as u64;
        }
        pos = hole;
    }
    Ok(())
}
