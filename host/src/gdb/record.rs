//! Time travel's memory (`--record`): checkpoints of the guest and of the
//! host's state for it, taken every [`Recorder::every`] guest exits while
//! gdb runs the guest forward, within a budget.
//!
//! A checkpoint is a point right after one of the guest's own exits (kicks
//! and debugger stops not counted) was served and completed: the vCPU's
//! state (as a snapshot saves it), the exit counts, the device, the guest
//! errors, and the guest pages that changed since the checkpoint before,
//! with what they held then. A copy of guest RAM as it was at the newest
//! checkpoint (`shadow`) finds the changed pages, whoever wrote them (the
//! guest, or the host serving an exit). Any checkpoint is brought back by
//! putting back the pages that differ from the shadow, then each newer
//! checkpoint's old pages, newest first. `super::reverse` re-executes
//! from there.

use crate::devices::hypercall::GuestErrors;
use crate::kvm::state::VcpuState;
use crate::stats::ExitStats;
use std::collections::VecDeque;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest page size.
pub const PAGE: usize = 4096;
/// Default `--record-budget`.
pub const DEFAULT_BUDGET: u64 = 256 << 20;
/// The most guest RAM `--record` takes: each checkpoint compares every
/// page with its copy.
pub const MAX_RECORD_MEM: u64 = 256 << 20;
/// Guest exits between two checkpoints.
pub const EVERY: u64 = 64;

/// One checkpoint.
pub struct Checkpoint {
    /// Guest exits served (and completed) here.
    pub exits: u64,
    /// The vCPU.
    pub vcpu: VcpuState,
    /// The exit counts.
    pub stats: ExitStats,
    /// The devices' state (`Bus::save`).
    pub device: Vec<u8>,
    /// Bad hypercall arguments counted so far.
    pub guest_errors: GuestErrors,
    /// Pages that changed since the checkpoint before, with what they held
    /// there (none for the oldest).
    pub undo: Vec<(u64, Box<[u8]>)>,
}

impl Checkpoint {
    /// What it takes in memory: itself, the vCPU's XSAVE area and MSRs,
    /// the counts' rows, the device's state and the old pages.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Checkpoint>()
            + std::mem::size_of::<kvm_bindings::kvm_xsave>()
            + self.vcpu.msrs.capacity() * 16
            + self.stats.compact_bytes()
            - std::mem::size_of::<ExitStats>()
            + self.device.capacity()
            + self.undo.capacity() * 24
            + self.undo.len() * PAGE
    }
}

/// The checkpoints of one recording.
pub struct Recorder {
    /// Oldest first.
    pub cps: VecDeque<Checkpoint>,
    /// Guest RAM at the newest checkpoint.
    shadow: Vec<u8>,
    /// Most bytes the checkpoints (and the shadow) may take.
    pub budget: u64,
    /// Bytes they take now.
    pub used: u64,
    /// Guest exits between two checkpoints.
    pub every: u64,
    /// The most guest exits run forward so far: exits up to here were
    /// served (and their output printed) once; re-executing them prints
    /// nothing again.
    pub frontier: u64,
    /// Checkpoints dropped for the budget.
    pub dropped: u64,
}

/// Guest RAM (one region from GPA 0) as bytes, read in place.
fn ram(mem: &GuestMemoryMmap) -> &[u8] {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let Some(r) = mem.iter().next() else {
        return &[];
    };
    let len = r.len() as usize;
    match mem.get_slice(GuestAddress(0), len) {
        // SAFETY: the slice is the whole mapping of the region, which lives
        // as long as `mem`; time travel reads it only while vCPU 0 (run by
        // this thread) is out of KVM_RUN and no other thread touches guest
        // memory (--record refuses several vCPUs and device threads).
        Ok(v) => unsafe { std::slice::from_raw_parts(v.ptr_guard().as_ptr(), len) },
        Err(_) => &[],
    }
}

impl Recorder {
    /// An empty recording of a VM with `mem_size` bytes of RAM.
    pub fn new(budget: u64, mem_size: u64) -> Recorder {
        Recorder {
            cps: VecDeque::new(),
            shadow: vec![0; mem_size as usize],
            budget,
            used: mem_size,
            every: EVERY,
            frontier: 0,
            dropped: 0,
        }
    }

    /// Where the recording starts: the oldest checkpoint's exits.
    pub fn start(&self) -> u64 {
        self.cps.front().map_or(0, |c| c.exits)
    }

    /// The newest checkpoint's exits.
    pub fn newest(&self) -> Option<u64> {
        self.cps.back().map(|c| c.exits)
    }

    /// Keeps a checkpoint of `state` with memory `mem` as it is now; drops
    /// the oldest ones past the budget (the recording then starts later).
    pub fn push(&mut self, mem: &GuestMemoryMmap, mut cp: Checkpoint) {
        // a checkpoint at the same place replaces nothing: keep the first
        if self.newest() == Some(cp.exits) {
            return;
        }
        let first = self.cps.is_empty();
        let now = ram(mem);
        let n = self.shadow.len().min(now.len()) / PAGE;
        for i in 0..n {
            let at = i * PAGE..(i + 1) * PAGE;
            let old = &mut self.shadow[at.clone()];
            if first {
                old.copy_from_slice(&now[at]);
            } else if *old != now[at.clone()] {
                cp.undo
                    .push(((i * PAGE) as u64, old.to_vec().into_boxed_slice()));
                old.copy_from_slice(&now[at]);
            }
        }
        self.used += cp.bytes() as u64;
        self.cps.push_back(cp);
        while self.used > self.budget && self.cps.len() > 1 {
            if let Some(gone) = self.cps.pop_front() {
                self.used -= gone.bytes() as u64;
                self.dropped += 1;
            }
            // the new oldest needs no way back further
            if let Some(f) = self.cps.front_mut() {
                let before = f.bytes();
                f.undo = Vec::new();
                self.used -= (before - f.bytes()) as u64;
            }
        }
    }

    /// The newest checkpoint at or before `exits`.
    pub fn at_or_before(&self, exits: u64) -> Option<usize> {
        self.cps.iter().rposition(|c| c.exits <= exits)
    }

    /// Puts guest memory back as it was at checkpoint `i`.
    pub fn restore_memory(&self, mem: &GuestMemoryMmap, i: usize) {
        // the pages that differ first, then the writes (not while the
        // bytes are borrowed for reading)
        let differ: Vec<usize> = {
            let now = ram(mem);
            let n = self.shadow.len().min(now.len()) / PAGE;
            (0..n)
                .filter(|p| now[p * PAGE..(p + 1) * PAGE] != self.shadow[p * PAGE..(p + 1) * PAGE])
                .collect()
        };
        for p in differ {
            let at = p * PAGE..(p + 1) * PAGE;
            let _ = mem.write_slice(&self.shadow[at], GuestAddress((p * PAGE) as u64));
        }
        for cp in self.cps.iter().skip(i + 1).rev() {
            for (gpa, bytes) in &cp.undo {
                let _ = mem.write_slice(bytes, GuestAddress(*gpa));
            }
        }
    }

    /// Kept checkpoints, and the first exit gdb can go back to.
    pub fn summary(&self) -> String {
        format!(
            "recording: {} checkpoints (every {} exits) from exit {} to exit {}, {:.1} MiB of {} MiB{}\n",
            self.cps.len(),
            self.every,
            self.start(),
            self.newest().unwrap_or(0),
            self.used as f64 / (1 << 20) as f64,
            self.budget >> 20,
            match self.dropped {
                0 => String::new(),
                n => format!("; {n} older checkpoints dropped for the budget"),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(exits: u64) -> Checkpoint {
        Checkpoint {
            exits,
            vcpu: VcpuState {
                regs: Default::default(),
                sregs: Default::default(),
                xsave: Box::default(),
                xcrs: Default::default(),
                debugregs: Default::default(),
                events: Default::default(),
                mp_state: Default::default(),
                msrs: Vec::new(),
                lapic: None,
            },
            stats: ExitStats::default(),
            device: Vec::new(),
            guest_errors: GuestErrors::default(),
            undo: Vec::new(),
        }
    }

    fn ram(pages: usize) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), pages * PAGE)]).unwrap()
    }

    /// Each checkpoint keeps the pages changed since the one before; any
    /// checkpoint's memory comes back, however much changed since.
    #[test]
    fn memory_comes_back_as_each_checkpoint_had_it() {
        let mem = ram(8);
        let mut r = Recorder::new(DEFAULT_BUDGET, 8 * PAGE as u64);
        mem.write_obj(1u8, GuestAddress(0)).unwrap();
        r.push(&mem, cp(0));
        mem.write_obj(2u8, GuestAddress(0)).unwrap();
        mem.write_obj(9u8, GuestAddress(3 * PAGE as u64)).unwrap();
        r.push(&mem, cp(64));
        assert_eq!(r.cps[1].undo.len(), 2, "pages 0 and 3 changed");
        mem.write_obj(3u8, GuestAddress(0)).unwrap();
        mem.write_obj(7u8, GuestAddress(5 * PAGE as u64)).unwrap();
        r.push(&mem, cp(128));
        // changed after the newest checkpoint too
        mem.write_obj(4u8, GuestAddress(7 * PAGE as u64)).unwrap();
        let at = |m: &GuestMemoryMmap, p: usize| {
            m.read_obj::<u8>(GuestAddress((p * PAGE) as u64)).unwrap()
        };
        r.restore_memory(&mem, 0);
        assert_eq!(
            [at(&mem, 0), at(&mem, 3), at(&mem, 5), at(&mem, 7)],
            [1, 0, 0, 0]
        );
        r.restore_memory(&mem, 2);
        assert_eq!(
            [at(&mem, 0), at(&mem, 3), at(&mem, 5), at(&mem, 7)],
            [3, 9, 7, 0]
        );
        r.restore_memory(&mem, 1);
        assert_eq!([at(&mem, 0), at(&mem, 3), at(&mem, 5)], [2, 9, 0]);
        assert_eq!(r.at_or_before(100), Some(1));
        assert_eq!(r.at_or_before(128), Some(2));
    }

    /// Past the budget the oldest checkpoints go, the recording starts
    /// later, and what is kept stays within the budget.
    #[test]
    fn the_budget_drops_the_oldest_checkpoints() {
        let pages = 64;
        let mem = ram(pages);
        let budget = (pages * PAGE) as u64 + 20 * PAGE as u64;
        let mut r = Recorder::new(budget, (pages * PAGE) as u64);
        for n in 0..40u64 {
            // every checkpoint changes 4 pages
            for p in 0..4 {
                mem.write_obj(
                    n as u8 + 1,
                    GuestAddress(((n as usize * 4 + p) % pages * PAGE) as u64),
                )
                .unwrap();
            }
            r.push(&mem, cp(n * 64));
            assert!(r.used <= r.budget, "{} > {}", r.used, r.budget);
        }
        assert!(r.dropped > 0);
        assert_eq!(r.dropped as usize + r.cps.len(), 40);
        assert!(r.start() > 0);
        assert!(r.cps[0].undo.is_empty(), "the oldest needs no way back");
        let s = r.summary();
        assert!(
            s.contains("older checkpoints dropped for the budget"),
            "{s}"
        );
        // the oldest kept checkpoint's memory still comes back
        let oldest = r.start() / 64;
        r.restore_memory(&mem, 0);
        let p = (oldest as usize * 4) % pages;
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress((p * PAGE) as u64)).unwrap(),
            oldest as u8 + 1
        );
    }
}
