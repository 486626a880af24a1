//! The queues over time (`--html`, `--trace-out`): at each drain of TX,
//! how many bytes waited in TX and in RX, and the byte counts so far.
//! Bounded: past [`MAX_SAMPLES`] samples are counted, not kept.

use super::memory::queue;
use hypercall_abi::simvirtio as sv;
use std::time::Instant;
use vm_memory::GuestMemoryMmap;

/// Samples kept; later ones are counted in `dropped`.
pub const MAX_SAMPLES: usize = 20_000;

/// The queues at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// ns after the run's start.
    pub t_ns: u64,
    /// Bytes waiting in TX (driver to device).
    pub tx_queued: u32,
    /// Bytes waiting in RX (device to driver).
    pub rx_queued: u32,
    /// TX data bytes taken so far.
    pub tx_bytes: u64,
    /// RX bytes put so far.
    pub rx_bytes: u64,
}

/// The samples of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct History {
    #[serde(skip)]
    epoch: Instant,
    /// In time order.
    pub samples: Vec<Sample>,
    /// Samples past [`MAX_SAMPLES`].
    pub dropped: u64,
}

/// Bytes in a queue whose control block is at `at` (0 if unreadable or
/// out of range: the guest owns it).
fn queued(mem: &GuestMemoryMmap, at: u64) -> u32 {
    queue(mem, at).map_or(0, |q| {
        let len = u32::from(sv::QUEUE_LEN);
        if q.head >= len || q.tail >= len {
            return 0;
        }
        (q.head + len - q.tail) % len
    })
}

impl History {
    /// An empty history whose times count from `epoch`.
    pub fn new(epoch: Instant) -> History {
        History {
            epoch,
            samples: Vec::new(),
            dropped: 0,
        }
    }

    /// Keeps the queues as they are now.
    pub fn sample(&mut self, mem: &GuestMemoryMmap, stats: &super::DeviceStats) {
        if self.samples.len() >= MAX_SAMPLES {
            self.dropped += 1;
            return;
        }
        self.samples.push(Sample {
            t_ns: self.epoch.elapsed().as_nanos() as u64,
            tx_queued: queued(mem, sv::TX_CONTROL),
            rx_queued: queued(mem, sv::RX_CONTROL),
            tx_bytes: stats.tx_bytes,
            rx_bytes: stats.rx_bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn samples_count_queued_bytes_and_stop_at_the_bound() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        // TX: head 10, tail 4; RX: head 1, tail 250 (wrapped)
        mem.write_obj(10u32, GuestAddress(sv::TX_CONTROL)).unwrap();
        mem.write_obj(4u32, GuestAddress(sv::TX_CONTROL + 4))
            .unwrap();
        mem.write_obj(1u32, GuestAddress(sv::RX_CONTROL)).unwrap();
        mem.write_obj(250u32, GuestAddress(sv::RX_CONTROL + 4))
            .unwrap();
        let mut h = History::new(Instant::now());
        h.sample(&mem, &super::super::DeviceStats::default());
        assert_eq!((h.samples[0].tx_queued, h.samples[0].rx_queued), (6, 7));
        // a head out of range reads as empty, not as a huge count
        mem.write_obj(999u32, GuestAddress(sv::TX_CONTROL)).unwrap();
        h.sample(&mem, &super::super::DeviceStats::default());
        assert_eq!(h.samples[1].tx_queued, 0);
        h.samples.resize(MAX_SAMPLES, h.samples[0]);
        h.sample(&mem, &super::super::DeviceStats::default());
        assert_eq!((h.samples.len(), h.dropped), (MAX_SAMPLES, 1));
    }
}
