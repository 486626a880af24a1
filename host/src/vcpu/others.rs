//! The other vCPUs of a run with several, for vCPU 0's debugger: whether
//! any of them still runs, and when the last one ended.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The other vCPUs of a run with several, as vCPU 0's driver sees them:
/// while any of them runs, the guest runs even when the debugger has vCPU
/// 0 stopped, so only the stopped time after the last of them ended is
/// left out of the run's reported time.
#[derive(Debug)]
pub struct Others {
    base: Instant,
    running: AtomicUsize,
    /// When the last one ended, in ns after `base`.
    last_end: AtomicU64,
}

impl Others {
    /// `n` other vCPUs, all running from now.
    pub fn new(n: usize) -> Others {
        Others {
            base: Instant::now(),
            running: AtomicUsize::new(n),
            last_end: AtomicU64::new(0),
        }
    }

    /// One of them ended (its thread calls this once).
    pub fn ended(&self) {
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_end.fetch_max(ns, Ordering::Relaxed);
        self.running.fetch_sub(1, Ordering::Release);
    }

    /// Of the time from `from` to `to`, the part after every other vCPU
    /// had ended (none of it while one still runs).
    pub fn idle_part(&self, from: Instant, to: Instant) -> Duration {
        if self.running.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let end = self.base + Duration::from_nanos(self.last_end.load(Ordering::Relaxed));
        to.saturating_duration_since(from.max(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_time_after_the_last_other_vcpu_ended_is_idle() {
        let o = Others::new(2);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        o.ended();
        let t1 = Instant::now();
        assert_eq!(o.idle_part(t0, t1), Duration::ZERO, "one still runs");
        std::thread::sleep(Duration::from_millis(2));
        o.ended();
        let t2 = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let t3 = Instant::now();
        // stopped from t0 to t3: the part after the second end only
        let idle = o.idle_part(t0, t3);
        assert!(idle >= t3 - t2 && idle <= t3 - t1, "{idle:?}");
        // a stop that began after both ended counts whole
        assert_eq!(
            o.idle_part(t2 + Duration::from_millis(1), t3),
            t3 - t2 - Duration::from_millis(1)
        );
    }
}
