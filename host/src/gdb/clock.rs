//! `--timeout` under gdb: the guest's run time counts, time stopped in
//! the debugger does not.

use crate::signals::Timer;
use crate::vcpu::ExitLoop;
use crate::vcpu::others::Others;
use std::time::{Duration, Instant};

/// `--timeout` counts guest time only: the timer runs while the guest
/// does and is disarmed while gdb has it stopped.
pub struct Clock<'t> {
    left: Option<Duration>,
    total: Duration,
    timer: Option<&'t Timer>,
    since: Option<Instant>,
    /// Since when the guest is stopped for gdb, and for how long it was
    /// before (the run's reported time leaves it out).
    stopped_since: Option<Instant>,
    stopped: Duration,
    /// With several vCPUs: the others, which run on while vCPU 0 is
    /// stopped (only the stopped time after they all ended is left out).
    others: Option<&'t Others>,
}

impl<'t> Clock<'t> {
    /// The clock of a run with `deadline` (ExitLoop's) and its timer,
    /// stopped: the timer set up with the thread is disarmed.
    pub fn stopped(
        deadline: Option<(Instant, Duration)>,
        timer: Option<&'t Timer>,
        others: Option<&'t Others>,
    ) -> Self {
        let mut c = Clock {
            left: deadline.map(|(at, _)| at.saturating_duration_since(Instant::now())),
            total: deadline.map_or(Duration::ZERO, |(_, d)| d),
            timer,
            since: None,
            stopped_since: Some(Instant::now()),
            stopped: Duration::ZERO,
            others,
        };
        c.disarm();
        c
    }

    fn disarm(&mut self) {
        if let Some(t) = self.timer {
            // a timer that cannot be set leaves the guest unbounded by
            // --timeout; the next start tries again
            let _ = t.arm(Duration::ZERO);
        }
    }

    /// The guest runs from now: the deadline and the timer get the time left.
    pub fn start(&mut self, lp: &mut ExitLoop<'_>) {
        if let Some(t) = self.stopped_since.take() {
            self.stopped += self.not_running(t, Instant::now());
        }
        let Some(left) = self.left else { return };
        let now = Instant::now();
        lp.deadline = Some((now + left, self.total));
        if let Some(t) = self.timer {
            // zero would disarm: at least a microsecond
            let _ = t.arm(left.max(Duration::from_micros(1)));
        }
        self.since = Some(now);
    }

    /// The guest stopped: the time it ran is spent.
    pub fn stop(&mut self) {
        self.stopped_since.get_or_insert_with(Instant::now);
        if let (Some(since), Some(left)) = (self.since.take(), self.left) {
            self.left = Some(left.saturating_sub(since.elapsed()));
            self.disarm();
        }
    }

    /// Of a stop from `from` to `to`, the time no part of the guest ran.
    fn not_running(&self, from: Instant, to: Instant) -> Duration {
        match self.others {
            Some(o) => o.idle_part(from, to),
            None => to.saturating_duration_since(from),
        }
    }

    /// How long the guest has been stopped for gdb in all (with several
    /// vCPUs: stopped while none of the others ran).
    pub fn stopped_total(&self) -> Duration {
        self.stopped
            + self
                .stopped_since
                .map_or(Duration::ZERO, |t| self.not_running(t, Instant::now()))
    }
}
