//! Interrupts the host delivered, by vector or IRQ line, and how.

use serde::Serialize;

/// How the host delivered interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IrqVia {
    /// KVM_INTERRUPT (user-space controller): the number is a vector.
    KvmInterrupt,
    /// An eventfd bound with KVM_IRQFD: the number is an IRQ line.
    Irqfd,
    /// KVM_IRQ_LINE (raise, then lower): the number is an IRQ line.
    IrqLine,
}

impl IrqVia {
    /// The KVM call.
    pub fn name(self) -> &'static str {
        match self {
            IrqVia::KvmInterrupt => "KVM_INTERRUPT",
            IrqVia::Irqfd => "KVM_IRQFD (eventfd write)",
            IrqVia::IrqLine => "KVM_IRQ_LINE",
        }
    }

    /// What the number names.
    pub fn what(self) -> &'static str {
        match self {
            IrqVia::KvmInterrupt => "vector",
            IrqVia::Irqfd | IrqVia::IrqLine => "IRQ line",
        }
    }
}

/// Counts by vector or line, and the way they went: one row per number
/// seen, none until the first interrupt (an ExitStats is made for every
/// vCPU of every VM, and most never deliver one).
#[derive(Debug, Clone, Default)]
pub struct IrqCounts {
    via: Option<IrqVia>,
    rows: Vec<IrqCount>,
}

/// One row: a vector or line and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IrqCount {
    /// The vector or IRQ line.
    pub n: u8,
    /// Delivered.
    pub count: u64,
}

/// The interrupts of a run, for the table and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IrqSummary {
    /// How.
    pub via: IrqVia,
    /// "vector" or "IRQ line".
    pub what: &'static str,
    /// All of them.
    pub total: u64,
    /// By number, ascending.
    pub counts: Vec<IrqCount>,
}

impl IrqCounts {
    /// Heap bytes of the rows.
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<IrqCount>()
    }
}

impl IrqCounts {
    /// Counts one interrupt `n` delivered `via`.
    pub fn record(&mut self, via: IrqVia, n: u8) {
        self.via = Some(via);
        self.add(n, 1);
    }

    fn add(&mut self, n: u8, count: u64) {
        // at most 256 rows, kept in order of the number
        match self.rows.binary_search_by_key(&n, |r| r.n) {
            Ok(i) => self.rows[i].count += count,
            Err(i) => self.rows.insert(i, IrqCount { n, count }),
        }
    }

    /// Adds `other`'s counts (the total of several vCPUs).
    pub fn merge(&mut self, other: &IrqCounts) {
        self.via = self.via.or(other.via);
        for r in &other.rows {
            self.add(r.n, r.count);
        }
    }

    /// Appends the counts to a snapshot's bytes.
    pub(super) fn save(&self, e: &mut crate::wire::Enc) {
        e.u8(match self.via {
            None => 0,
            Some(IrqVia::KvmInterrupt) => 1,
            Some(IrqVia::Irqfd) => 2,
            Some(IrqVia::IrqLine) => 3,
        });
        e.u64(self.rows.len() as u64);
        for r in &self.rows {
            e.u8(r.n);
            e.u64(r.count);
        }
    }

    /// The counts `save` wrote.
    pub(super) fn load(d: &mut crate::wire::Dec) -> Result<IrqCounts, crate::wire::WireError> {
        let via = match d.u8("interrupt counts' kind")? {
            0 => None,
            1 => Some(IrqVia::KvmInterrupt),
            2 => Some(IrqVia::Irqfd),
            3 => Some(IrqVia::IrqLine),
            v => {
                return Err(crate::wire::WireError::Bad {
                    what: "interrupt counts' kind",
                    value: u64::from(v),
                });
            }
        };
        let mut c = IrqCounts {
            via,
            rows: Vec::new(),
        };
        for _ in 0..d.count("interrupt count rows", 9)?.min(256) {
            let n = d.u8("interrupt number")?;
            let count = d.u64("interrupt count")?;
            c.add(n, count);
        }
        Ok(c)
    }

    /// The summary, if any interrupt was delivered.
    pub fn summary(&self) -> Option<IrqSummary> {
        let via = self.via?;
        Some(IrqSummary {
            via,
            what: via.what(),
            total: self.rows.iter().map(|c| c.count).sum(),
            counts: self.rows.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_number_and_merges() {
        let mut a = IrqCounts::default();
        assert_eq!(a.summary(), None);
        for _ in 0..3 {
            a.record(IrqVia::KvmInterrupt, 0x20);
        }
        a.record(IrqVia::KvmInterrupt, 0xff);
        let mut b = IrqCounts::default();
        b.record(IrqVia::KvmInterrupt, 0x20);
        b.merge(&a);
        let s = b.summary().unwrap();
        assert_eq!((s.total, s.what), (5, "vector"));
        assert_eq!(
            s.counts,
            [
                IrqCount { n: 0x20, count: 4 },
                IrqCount { n: 0xff, count: 1 }
            ]
        );
    }
}
