//! Source lines for a crash report: the guest ELF mapped read-only when the
//! run is prepared (one mmap, before the vCPU thread's seccomp filter,
//! which allows no file to be opened or read), and its DWARF line tables
//! read through that mapping only when a guest crashes (page faults, no
//! system call). A run that does not crash never touches the DWARF.
//!
//! The mapping is private and read-only; a file truncated while it is
//! mapped would make reading past its new end fault (SIGBUS), so the DWARF
//! is used only while the file keeps the length it had when it was mapped.

use addr2line::gimli;
use object::{Object, ObjectSection};
use std::fs::File;
use std::os::fd::AsRawFd;

/// Most DWARF read: a guest file's debug sections above this are ignored
/// (a hostile file cannot make a crash report parse gigabytes).
const MAX_DWARF: u64 = 64 << 20;

/// A guest file, mapped.
pub struct FileMap {
    ptr: *mut libc::c_void,
    len: usize,
    file: File,
}

// SAFETY: the mapping is read-only and private; nothing writes to it, and
// it is unmapped only by Drop, which needs the value.
unsafe impl Send for FileMap {}
// SAFETY: as above: shared access is reads of immutable memory.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps `file` (its current length), or None if it cannot be mapped.
    pub fn new(file: File) -> Option<FileMap> {
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a new private, read-only mapping of an open file; the
        // kernel checks the fd and the length; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(FileMap { ptr, len, file })
    }

    /// The file's bytes, while it still has the length it was mapped with.
    /// (fstat: the one call the vCPU thread's seccomp filter allows for it;
    /// `File::metadata` makes statx.)
    pub fn bytes(&self) -> Option<&[u8]> {
        // SAFETY: a zeroed stat is valid plain data for fstat to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the fstat system call itself (glibc's fstat makes
        // newfstatat) on our own open fd; it writes only `st`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fstat,
                self.file.as_raw_fd(),
                &mut st as *mut libc::stat,
            )
        };
        if rc != 0 || st.st_size as u64 != self.len as u64 {
            return None;
        }
        // SAFETY: `len` bytes are mapped readable at `ptr` until Drop, and
        // the file still has that length (no SIGBUS on reading them).
        Some(unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) })
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

/// An ELF's line tables.
pub struct Lines<'a> {
    cx: addr2line::Context<Reader<'a>>,
}

impl<'a> Lines<'a> {
    /// The DWARF of the ELF in `bytes`, if it has any (and not too much).
    pub fn from_elf(bytes: &'a [u8]) -> Option<Lines<'a>> {
        let f = object::read::elf::ElfFile64::<object::Endianness>::parse(bytes).ok()?;
        let debug: u64 = f
            .sections()
            .filter(|s| s.name().is_ok_and(|n| n.starts_with(".debug_")))
            .map(|s| s.size())
            .sum();
        if debug == 0 || debug > MAX_DWARF {
            return None;
        }
        let endian = gimli::RunTimeEndian::Little;
        let load = |id: gimli::SectionId| -> Result<Reader<'a>, gimli::Error> {
            let data = f
                .section_by_name(id.name())
                .and_then(|s| s.data().ok())
                .unwrap_or(&[]);
            Ok(gimli::EndianSlice::new(data, endian))
        };
        let dwarf = gimli::Dwarf::load(load).ok()?;
        let cx = addr2line::Context::from_dwarf(dwarf).ok()?;
        Some(Lines { cx })
    }

    /// `file:line` of the code at `addr`, control characters escaped (the
    /// file names are the guest file's text).
    pub fn at(&self, addr: u64) -> Option<String> {
        let loc = self.cx.find_location(addr).ok()??;
        let file = loc.file?;
        // the workspace's own files relative to it, as cargo prints them
        let root = env!("CARGO_MANIFEST_DIR").trim_end_matches("/host");
        let file = file
            .strip_prefix(root)
            .and_then(|f| f.strip_prefix('/'))
            .unwrap_or(file);
        let text = match loc.line {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        };
        Some(crate::diag::escape(&text).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::{FileMap, Lines};

    #[test]
    fn a_crash_address_has_its_source_line() {
        let path = crate::guests::resolve("crash").unwrap();
        let map = FileMap::new(std::fs::File::open(&path).unwrap()).unwrap();
        let bytes = map.bytes().unwrap();
        let lines = Lines::from_elf(bytes).expect("the guest has DWARF");
        let syms = crate::loader::Symbols::from_elf(bytes);
        // the first address of crash::deep is in crash.rs
        let deep = (0x100000..0x101000u64)
            .find(|&a| syms.lookup(a).as_deref() == Some("crash::deep"))
            .expect("crash::deep");
        let at = lines.at(deep).expect("a line");
        assert!(at.starts_with("guest-kernel/src/bin/crash.rs:"), "{at}");
        assert!(Lines::from_elf(b"not an elf").is_none());
    }
}
