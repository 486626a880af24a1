//! The snapshot file (docs/snapshots.md): a 64-byte header, the metadata
//! (`crate::wire` fields, checksummed), then the guest pages that hold
//! data, page-aligned so that a restore maps them. A file is untrusted
//! input: every length, count, range and checksum is checked before
//! anything is allocated by it or given to KVM.

use crate::config::IrqChip;
use crate::wire::{Dec, Enc, WireError, fold, hash};
use crate::x86::CpuMode;

/// The first eight bytes.
pub const MAGIC: [u8; 8] = *b"KVMWBSNP";
/// The format's version; a file of another is refused.
pub const VERSION: u32 = 1;
/// The header's size.
pub const HEADER: u64 = 64;
/// Guest page size, and the alignment of the page data in the file.
pub const PAGE: u64 = 4096;
/// The most metadata a file may have (the guest's output is at most
/// [`MAX_OUTPUT`] of it).
pub const MAX_META: u64 = 64 << 20;
/// The most guest output a snapshot keeps.
pub const MAX_OUTPUT: usize = 16 << 20;

/// A run of guest pages with data: `pages` pages from GPA `gpa`, stored
/// one after the other in the file's page data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First page's guest-physical address (page-aligned).
    pub gpa: u64,
    /// How many pages.
    pub pages: u64,
}

/// What a snapshot holds besides its page data. The vCPU, controller,
/// device and statistics parts are the bytes their owners write
/// (`kvm::state`, `devices`, `stats`), which check them when they read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The guest's display name.
    pub guest: String,
    /// Its file when saved.
    pub guest_path: String,
    /// FNV-1a of the guest file's bytes the host read.
    pub guest_hash: u64,
    /// The hypercall ABI fingerprint of the host that saved it.
    pub fingerprint: u64,
    /// ABI note flags of the run.
    pub flags: u32,
    /// The CPU mode the VM was made in.
    pub mode: CpuMode,
    /// Guest RAM.
    pub mem_size: u64,
    /// The interrupt controller.
    pub irqchip: IrqChip,
    /// The vCPUs got the supported CPUID.
    pub cpuid: bool,
    /// Each vCPU's KVM state.
    pub vcpus: Vec<Vec<u8>>,
    /// Each vCPU's exit counts.
    pub stats: Vec<Vec<u8>>,
    /// Each vCPU had halted for good when the VM was saved (several vCPUs:
    /// it stays halted when restored).
    pub halted: Vec<bool>,
    /// The in-kernel controllers (`IrqChip::Kernel`).
    pub chips: Option<Vec<u8>>,
    /// The devices.
    pub device: Vec<u8>,
    /// The guest's output so far.
    pub output: Vec<u8>,
    /// Guest errors reported so far.
    pub guest_errors: u64,
    /// Guest time so far, ns.
    pub elapsed_ns: u64,
    /// The pages with data, ascending.
    pub runs: Vec<Run>,
}

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a snapshot, or a damaged one.
    #[error("{path} is not a usable snapshot: {why}")]
    Bad {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

fn mode_code(m: CpuMode) -> u8 {
    match m {
        CpuMode::Real => 0,
        CpuMode::Protected => 1,
        CpuMode::Paged32 => 2,
        CpuMode::Long => 3,
    }
}

fn chip_code(c: IrqChip) -> u8 {
    match c {
        IrqChip::None => 0,
        IrqChip::User => 1,
        IrqChip::Kernel => 2,
    }
}

impl Snapshot {
    /// The metadata's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.bytes(self.guest.as_bytes());
        e.bytes(self.guest_path.as_bytes());
        e.u64(self.guest_hash);
        e.u64(self.fingerprint);
        e.u32(self.flags);
        e.u8(mode_code(self.mode));
        e.u64(self.mem_size);
        e.u8(chip_code(self.irqchip));
        e.u8(u8::from(self.cpuid));
        e.u64(self.vcpus.len() as u64);
        for ((v, s), &h) in self.vcpus.iter().zip(&self.stats).zip(&self.halted) {
            e.bytes(v);
            e.bytes(s);
            e.u8(u8::from(h));
        }
        match &self.chips {
            Some(c) => {
                e.u8(1);
                e.bytes(c);
            }
            None => e.u8(0),
        }
        e.bytes(&self.device);
        e.bytes(&self.output);
        e.u64(self.guest_errors);
        e.u64(self.elapsed_ns);
        e.u64(self.runs.len() as u64);
        for r in &self.runs {
            e.u64(r.gpa);
            e.u64(r.pages);
        }
        e.buf
    }

    /// The metadata `encode` wrote, with its ranges checked.
    pub fn decode(b: &[u8]) -> Result<Snapshot, WireError> {
        let mut d = Dec::new(b);
        let text = |d: &mut Dec, what| -> Result<String, WireError> {
            Ok(String::from_utf8_lossy(d.bytes(what)?).into_owned())
        };
        let guest = text(&mut d, "guest name")?;
        let guest_path = text(&mut d, "guest path")?;
        let guest_hash = d.u64("guest hash")?;
        let fingerprint = d.u64("ABI fingerprint")?;
        let flags = d.u32("flags")?;
        let mode = match d.u8("CPU mode")? {
            0 => CpuMode::Real,
            1 => CpuMode::Protected,
            2 => CpuMode::Paged32,
            3 => CpuMode::Long,
            v => return Err(bad("CPU mode", v)),
        };
        let mem_size = d.u64("memory size")?;
        if !mem_size.is_multiple_of(PAGE)
            || !(hypercall_abi::layout::MIN_MEM..=hypercall_abi::layout::MAX_MEM)
                .contains(&mem_size)
        {
            return Err(bad("memory size", mem_size));
        }
        let irqchip = match d.u8("interrupt controller")? {
            0 => IrqChip::None,
            1 => IrqChip::User,
            2 => IrqChip::Kernel,
            v => return Err(bad("interrupt controller", v)),
        };
        let cpuid = d.bool("CPUID")?;
        let n = d.count("vCPUs", 16)?;
        if n == 0 || n > hypercall_abi::layout::MAX_VCPUS {
            return Err(bad("number of vCPUs", n));
        }
        let (mut vcpus, mut stats, mut halted) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            vcpus.push(d.bytes("vCPU state")?.to_vec());
            stats.push(d.bytes("exit counts")?.to_vec());
            halted.push(d.bool("vCPU halted")?);
        }
        let chips = match d.bool("controllers present")? {
            true => Some(d.bytes("controllers")?.to_vec()),
            false => None,
        };
        if chips.is_some() != (irqchip == IrqChip::Kernel) {
            return Err(bad("controllers present", u8::from(chips.is_some())));
        }
        let device = d.bytes("device")?.to_vec();
        let output = d.bytes("output")?;
        if output.len() > MAX_OUTPUT {
            return Err(bad("output length", output.len() as u64));
        }
        let output = output.to_vec();
        let guest_errors = d.u64("guest errors")?;
        let elapsed_ns = d.u64("elapsed")?;
        let n = d.count("page runs", 16)?;
        let mut runs = Vec::with_capacity(n as usize);
        let mut end = 0u64;
        for _ in 0..n {
            let r = Run {
                gpa: d.u64("page run address")?,
                pages: d.u64("page run length")?,
            };
            let stop = r
                .pages
                .checked_mul(PAGE)
                .and_then(|l| r.gpa.checked_add(l))
                .filter(|&s| s <= mem_size);
            // page-aligned, not empty, inside RAM, ascending, no overlap
            match stop {
                Some(s) if r.gpa.is_multiple_of(PAGE) && r.pages > 0 && r.gpa >= end => end = s,
                _ => return Err(bad("page run address", r.gpa)),
            }
            runs.push(r);
        }
        d.end()?;
        Ok(Snapshot {
            guest,
            guest_path,
            guest_hash,
            fingerprint,
            flags,
            mode,
            mem_size,
            irqchip,
            cpuid,
            vcpus,
            stats,
            halted,
            chips,
            device,
            output,
            guest_errors,
            elapsed_ns,
            runs,
        })
    }

    /// Pages of data.
    pub fn pages(&self) -> u64 {
        self.runs.iter().map(|r| r.pages).sum()
    }

    /// The configuration of a VM to restore this into: the snapshot's
    /// mode, memory, controller, CPUID and vCPUs; the rest from `base`.
    pub fn vm_config(&self, base: &crate::config::VmConfig) -> crate::config::VmConfig {
        crate::config::VmConfig {
            mode: self.mode,
            mem_size: self.mem_size,
            irqchip: Some(self.irqchip),
            cpuid: self.cpuid,
            vcpus: self.vcpus.len() as u32,
            ..base.clone()
        }
    }
}

fn bad(what: &'static str, value: impl Into<u64>) -> WireError {
    WireError::Bad {
        what,
        value: value.into(),
    }
}

/// The page data's checksum, continued from `sum` (start with
/// `FNV_START`) over whole pages: each page's hash folded in, so any
/// split into whole pages gives the same sum.
pub fn pages_sum(sum: u64, pages: &[u8]) -> u64 {
    pages
        .chunks(PAGE as usize)
        .fold(sum, |s, p| fold(s, hash(p)))
}

/// The pages with data of `runs` in pieces of at most 1 MiB, in run
/// order: (guest-physical address, length), how a save writes them and a
/// read checks them.
pub fn pieces(runs: &[Run]) -> impl Iterator<Item = (u64, usize)> + '_ {
    const PIECE: u64 = 1 << 20;
    runs.iter().flat_map(|r| {
        let len = r.pages * PAGE;
        (0..len.div_ceil(PIECE))
            .map(move |i| (r.gpa + i * PIECE, (len - i * PIECE).min(PIECE) as usize))
    })
}

/// Where the page data starts, after the header and `meta` bytes.
pub fn pages_offset(meta: u64) -> u64 {
    (HEADER + meta).div_ceil(PAGE) * PAGE
}

/// The header for `meta` and a RAM image of `pages_len` bytes (the guest's
/// memory size) whose data pages' checksum is `pages_sum`.
pub fn header(meta: &[u8], pages_len: u64, pages_sum: u64) -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(meta.len() as u64).to_le_bytes());
    h[24..32].copy_from_slice(&hash(meta).to_le_bytes());
    h[32..40].copy_from_slice(&pages_offset(meta.len() as u64).to_le_bytes());
    h[40..48].copy_from_slice(&pages_len.to_le_bytes());
    h[48..56].copy_from_slice(&pages_sum.to_le_bytes());
    let sum = hash(&h[..56]);
    h[56..64].copy_from_slice(&sum.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Snapshot {
        Snapshot {
            guest: "hello".into(),
            guest_path: "/x/hello".into(),
            guest_hash: 1,
            fingerprint: hypercall_abi::FINGERPRINT,
            flags: 1,
            mode: CpuMode::Long,
            mem_size: 2 << 20,
            irqchip: IrqChip::None,
            cpuid: false,
            vcpus: vec![vec![1, 2, 3]],
            stats: vec![vec![4]],
            halted: vec![false],
            chips: None,
            device: vec![5],
            output: b"Hello".to_vec(),
            guest_errors: 0,
            elapsed_ns: 7,
            runs: vec![
                Run { gpa: 0, pages: 2 },
                Run {
                    gpa: 0x10000,
                    pages: 1,
                },
            ],
        }
    }

    #[test]
    fn metadata_round_trips_and_bad_ranges_are_refused() {
        let s = sample();
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
        for runs in [
            vec![Run {
                gpa: 0x1001,
                pages: 1,
            }],
            vec![Run { gpa: 0, pages: 0 }],
            vec![Run {
                gpa: 2 << 20,
                pages: 1,
            }],
            vec![Run {
                gpa: 0,
                pages: u64::MAX,
            }],
            vec![
                Run {
                    gpa: 0x2000,
                    pages: 1,
                },
                Run {
                    gpa: 0x1000,
                    pages: 2,
                },
            ],
        ] {
            let t = Snapshot { runs, ..sample() };
            assert!(Snapshot::decode(&t.encode()).is_err(), "{:?}", t.runs);
        }
        let t = Snapshot {
            mem_size: 3,
            ..sample()
        };
        assert!(Snapshot::decode(&t.encode()).is_err());
        let t = Snapshot {
            vcpus: vec![],
            stats: vec![],
            halted: vec![],
            ..sample()
        };
        assert!(Snapshot::decode(&t.encode()).is_err());
    }
}
