//! `--trace-out`: when each vCPU was in KVM_RUN and when the host handled
//! each exit, kept per vCPU (bounded) for a Chrome trace-event file that
//! ui.perfetto.dev and chrome://tracing open (`run/trace_out.rs` writes
//! it). Nothing is kept without the flag: the exit loop's only cost then
//! is one `Option` test per exit.

use std::time::Instant;

/// Slices one vCPU keeps; later ones are counted in `dropped`.
pub const MAX_SLICES: usize = 200_000;

/// What a slice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The vCPU was in KVM_RUN (the guest ran, or KVM served exits itself).
    Run,
    /// The host handled the exit KVM_RUN returned with.
    Exit((u8, u8, bool, u64)),
}

/// One slice of a vCPU's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// What it was.
    pub kind: Kind,
    /// When it began, ns after the run's start.
    pub start_ns: u64,
    /// How long, ns.
    pub dur_ns: u64,
}

/// One vCPU's slices.
#[derive(Debug, Clone)]
pub struct Timeline {
    epoch: Instant,
    /// When KVM_RUN returned, while the host handles that exit.
    open: Option<Instant>,
    /// The slices, in time order.
    pub slices: Vec<Slice>,
    /// Slices past [`MAX_SLICES`].
    pub dropped: u64,
}

impl Timeline {
    /// An empty timeline whose times count from `epoch`.
    pub fn new(epoch: Instant) -> Timeline {
        Timeline {
            epoch,
            open: None,
            slices: Vec::new(),
            dropped: 0,
        }
    }

    /// When its times count from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// KVM_RUN, begun at `from`, has returned now: its slice is kept, and
    /// the handling of its exit begins.
    pub fn ran(&mut self, from: Instant) {
        let now = Instant::now();
        self.push(Kind::Run, from, now);
        self.open = Some(now);
    }

    /// The host has handled the exit (`exit`: what it was, as the exit
    /// statistics recorded it); nothing if no exit was being handled.
    pub fn handled(&mut self, exit: Option<(u8, u8, bool, u64)>) {
        if let Some(from) = self.open.take() {
            let kind = Kind::Exit(exit.unwrap_or_default());
            self.push(kind, from, Instant::now());
        }
    }

    /// Keeps the slice `kind` from `from` to `to`.
    pub fn push(&mut self, kind: Kind, from: Instant, to: Instant) {
        if self.slices.len() >= MAX_SLICES {
            self.dropped += 1;
            return;
        }
        let start = from.saturating_duration_since(self.epoch).as_nanos() as u64;
        let dur = to.saturating_duration_since(from).as_nanos() as u64;
        self.slices.push(Slice {
            kind,
            start_ns: start,
            dur_ns: dur,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_kept_in_order_up_to_the_bound() {
        let t0 = Instant::now();
        let mut t = Timeline::new(t0);
        let t1 = Instant::now();
        t.push(Kind::Run, t0, t1);
        t.push(Kind::Exit((0, 2, false, 0xe9)), t1, t1);
        assert_eq!(t.slices.len(), 2);
        assert_eq!(t.slices[0].start_ns, 0);
        assert_eq!(t.slices[1].dur_ns, 0);
        t.slices.resize(MAX_SLICES, t.slices[0]);
        t.push(Kind::Run, t0, t1);
        assert_eq!((t.slices.len(), t.dropped), (MAX_SLICES, 1));
    }
}
