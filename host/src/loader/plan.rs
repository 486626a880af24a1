//! A checked plan of what goes where, and flat images.

use super::error::LoadError;
use hypercall_abi::layout;
use std::ops::Range;

/// One piece of the image: `file[file]` goes to `gpa`, followed by
/// `memsz - file.len()` zero bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub gpa: u64,
    /// Byte range in the file.
    pub file: Range<usize>,
    /// Size in memory (>= file length).
    pub memsz: u64,
    /// Executable.
    pub exec: bool,
}

impl Segment {
    /// Guest-physical range covered.
    pub fn range(&self) -> Range<u64> {
        self.gpa..self.gpa + self.memsz
    }
}

/// What kind of image it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// ELF executable.
    Elf,
    /// Flat binary.
    Flat,
}

/// A checked loading plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// ELF or flat.
    pub kind: ImageKind,
    /// Segments, sorted by address, non-overlapping, inside guest memory.
    pub segments: Vec<Segment>,
    /// Entry point (guest physical = virtual).
    pub entry: u64,
    /// The ABI note's flags (0 for flat images).
    pub flags: u32,
    /// `guest_rt::heap!`'s area (`__guest_rt_heap_area`): address and size.
    pub heap: Option<(u64, u64)>,
}

impl Plan {
    /// Highest guest-physical address used, exclusive.
    pub fn end(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.gpa + s.memsz)
            .max()
            .unwrap_or(0)
    }
}

pub(super) fn check_place_in(
    what: &str,
    start: u64,
    memsz: u64,
    area: &Range<u64>,
    mem: u64,
) -> Result<(), LoadError> {
    if area.start == layout::IMAGE_MIN {
        return check_place(what, start, memsz, mem);
    }
    let end = start.saturating_add(memsz);
    if start < area.start || end > area.end {
        return Err(LoadError::OutsideArea {
            what: what.to_string(),
            start,
            end,
            area_start: area.start,
            area_end: area.end,
        });
    }
    Ok(())
}

pub(super) fn check_place(what: &str, start: u64, memsz: u64, mem: u64) -> Result<(), LoadError> {
    let end = start.checked_add(memsz).ok_or(LoadError::TooLittleMemory {
        what: what.to_string(),
        end: u64::MAX,
        mem,
        need: u64::MAX,
    })?;
    if start < layout::IMAGE_MIN {
        return Err(LoadError::OverHostArea {
            what: what.to_string(),
            start,
            end,
        });
    }
    if end > mem {
        let need = end.div_ceil(1 << 20).saturating_mul(1 << 20);
        return Err(LoadError::TooLittleMemory {
            what: what.to_string(),
            end,
            mem,
            need,
        });
    }
    Ok(())
}

/// Checks a flat image of `len` bytes to be loaded and entered at `addr`
/// (long or 32-bit mode: at or above `layout::IMAGE_MIN`).
pub fn plan_flat(len: usize, addr: u64, mem: u64) -> Result<Plan, LoadError> {
    plan_flat_in(len, addr, &(layout::IMAGE_MIN..mem), mem)
}

/// `plan_flat` for an image area of a given CPU mode (`CpuMode::image_area`).
pub fn plan_flat_in(len: usize, addr: u64, area: &Range<u64>, mem: u64) -> Result<Plan, LoadError> {
    if len == 0 {
        return Err(LoadError::Empty);
    }
    check_place_in("flat image", addr, len as u64, area, mem)?;
    Ok(Plan {
        kind: ImageKind::Flat,
        segments: vec![Segment {
            gpa: addr,
            file: 0..len,
            memsz: len as u64,
            exec: true,
        }],
        entry: addr,
        heap: None,
        flags: 0,
    })
}
