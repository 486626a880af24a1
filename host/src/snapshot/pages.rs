//! Guest memory in a snapshot: only pages that hold data. The pages the
//! kernel has never given the guest's RAM mapping (`mincore`: not
//! resident) are zero and skipped without being read, and resident pages
//! of zeros are skipped too, so a save reads what the guest touched, not
//! its whole RAM.

use super::format::{self, HEADER, PAGE, Run, SnapError, Snapshot};
use crate::wire::FNV_START;
use std::fs::File;
use std::os::unix::fs::FileExt;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// The guest pages that hold data, as runs.
pub fn data_runs(mem: &GuestMemoryMmap, size: u64) -> Vec<Run> {
    let npages = (size / PAGE) as usize;
    let mut resident = vec![1u8; npages];
    if let Ok(host) = mem.get_host_address(GuestAddress(0)) {
        // SAFETY: `host` is the start of guest RAM's mapping of `size`
        // bytes (one region from GPA 0, page-aligned), alive while `mem`
        // is; mincore writes one byte per page into `resident`, which has
        // size / 4096 of them. On failure every page counts as resident.
        let rc = unsafe { libc::mincore(host.cast(), size as usize, resident.as_mut_ptr()) };
        if rc != 0 {
            resident.fill(1);
        }
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut page = [0u8; PAGE as usize];
    for (i, r) in resident.iter().enumerate() {
        let gpa = i as u64 * PAGE;
        if r & 1 == 0
            || mem.read_slice(&mut page, GuestAddress(gpa)).is_err()
            || page.iter().all(|&b| b == 0)
        {
            continue;
        }
        match runs.last_mut() {
            Some(last) if last.gpa + last.pages * PAGE == gpa => last.pages += 1,
            _ => runs.push(Run { gpa, pages: 1 }),
        }
    }
    runs
}

/// What a save wrote.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    /// Pages of data.
    pub pages: u64,
    /// The bytes written: header, metadata and those pages (the file's
    /// length is larger: its memory image is sparse).
    pub bytes: u64,
}

/// Writes `snap` (whose `runs` are set) and those pages of `mem` to
/// `file` (open for writing, empty): the header, the metadata, then guest
/// memory as an image of `snap.mem_size` bytes at its GPAs, written only
/// where the runs are (the rest stays a hole of the sparse file), so a
/// restore maps the image whole.
pub fn write(
    file: &File,
    name: &str,
    snap: &Snapshot,
    mem: &GuestMemoryMmap,
) -> Result<Saved, SnapError> {
    let io = |source| SnapError::Io {
        path: name.to_string(),
        source,
    };
    let meta = snap.encode();
    if meta.len() as u64 > format::MAX_META {
        return Err(SnapError::Bad {
            path: name.to_string(),
            why: format!(
                "{} bytes of metadata, more than a snapshot may hold",
                meta.len()
            ),
        });
    }
    let off = format::pages_offset(meta.len() as u64);
    let mut sum = FNV_START;
    let mut buf = vec![0u8; 1 << 20];
    for (gpa, n) in format::pieces(&snap.runs) {
        mem.read_slice(&mut buf[..n], GuestAddress(gpa))
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        file.write_all_at(&buf[..n], off + gpa).map_err(io)?;
        sum = format::pages_sum(sum, &buf[..n]);
    }
    file.write_all_at(&meta, HEADER).map_err(io)?;
    // zeros up to the image
    let meta_end = HEADER + meta.len() as u64;
    let pad = vec![0u8; (off - meta_end) as usize];
    file.write_all_at(&pad, meta_end).map_err(io)?;
    // the image's full length: a hole up to its end
    file.set_len(off + snap.mem_size).map_err(io)?;
    let h = format::header(&meta, snap.mem_size, sum);
    file.write_all_at(&h, 0).map_err(io)?;
    Ok(Saved {
        pages: snap.pages(),
        bytes: off + snap.pages() * PAGE,
    })
}
