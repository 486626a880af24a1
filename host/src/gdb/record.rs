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
    fn bytes(&self) -> usize {
        std::mem::size_of::<Checkpoint>() + self.device.len() + self.undo.len() * (PAGE + 32)
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
                self.used -= (f.undo.len() * (PAGE + 32)) as u64;
                f.undo = Vec::new();
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
