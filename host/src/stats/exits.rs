//! The counts of one VM (or vCPU): by exit reason, by port and direction,
//! by MMIO address and direction, bounded and indexed (`super::index`).

use super::index::{Index, MAX_ROWS, key};
use super::kinds::*;
use hypercall_abi::Hypercall;
use hypercall_abi::simvirtio as sv;

/// All the counts of one VM.
#[derive(Debug, Clone, Default)]
pub struct ExitStats {
    pub(super) total: u64,
    pub(super) by_reason: [u64; ExitReason::ALL.len()],
    pub(super) io_in: u64,
    pub(super) io_out: u64,
    /// At most [`MAX_ROWS`] rows, found through `io_index`.
    pub(super) io: Vec<PortCount>,
    pub(super) io_index: Index,
    pub(super) io_others: Others,
    /// At most [`MAX_ROWS`] rows, found through `mmio_index`.
    pub(super) mmio: Vec<AddrCount>,
    pub(super) mmio_index: Index,
    pub(super) mmio_others: Others,
    /// Handling time by reason, ns.
    pub(super) reason_ns: [u64; ExitReason::ALL.len()],
    /// What the last exit was counted under, for `charge`.
    last: Last,
    /// Whether any time was charged (`--stats`).
    pub(super) timed: bool,
}

/// The entries the last recorded exit was counted under.
#[derive(Debug, Clone, Copy, Default)]
struct Last {
    reason: usize,
    io: Option<Row>,
    mmio: Option<Row>,
}

/// A row, or the others.
#[derive(Debug, Clone, Copy)]
enum Row {
    At(usize),
    Others,
}

fn count_other(o: &mut Others, dir: Dir) -> Seen {
    let first = o.total() == 0;
    add_other(o, dir, 1, 0);
    Seen::Others { first }
}

fn add_other(o: &mut Others, dir: Dir, count: u64, ns: u64) {
    match dir {
        Dir::In => o.reads += count,
        Dir::Out => o.writes += count,
    }
    o.handling_ns += ns;
}

impl ExitStats {
    /// Counts one exit; returns the new total.
    #[inline]
    pub fn record(&mut self, r: ExitReason) -> u64 {
        self.total += 1;
        self.by_reason[r as usize] += 1;
        self.last = Last {
            reason: r as usize,
            io: None,
            mmio: None,
        };
        self.total
    }

    /// Adds the host's handling time of the last recorded exit to its
    /// reason and its port or address.
    pub fn charge(&mut self, d: std::time::Duration) {
        let ns = d.as_nanos() as u64;
        self.timed = true;
        self.reason_ns[self.last.reason] += ns;
        match self.last.io {
            Some(Row::At(i)) => self.io[i].handling_ns += ns,
            Some(Row::Others) => self.io_others.handling_ns += ns,
            None => {}
        }
        match self.last.mmio {
            Some(Row::At(i)) => self.mmio[i].handling_ns += ns,
            Some(Row::Others) => self.mmio_others.handling_ns += ns,
            None => {}
        }
    }

    /// Whether handling times were measured.
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// Counts one I/O exit on `port`.
    #[inline]
    pub fn record_io(&mut self, dir: Dir, port: u16) -> Seen {
        self.record(ExitReason::Io);
        match dir {
            Dir::In => self.io_in += 1,
            Dir::Out => self.io_out += 1,
        }
        let k = key(dir == Dir::Out, u64::from(port));
        if let Some(i) = self.io_index.get(k) {
            self.last.io = Some(Row::At(i));
            self.io[i].count += 1;
            return Seen::Again;
        }
        if self.io.len() == MAX_ROWS {
            self.last.io = Some(Row::Others);
            return count_other(&mut self.io_others, dir);
        }
        let row = self.io.len();
        self.last.io = Some(Row::At(row));
        self.io_index.insert(k, row);
        self.io.push(PortCount {
            dir,
            port,
            hypercall: Hypercall::from_port(port).map(Hypercall::name),
            count: 1,
            handling_ns: 0,
        });
        Seen::First(row)
    }

    /// Counts one MMIO exit at `addr`.
    #[inline]
    pub fn record_mmio(&mut self, dir: Dir, addr: u64) -> Seen {
        self.record(ExitReason::Mmio);
        let k = key(dir == Dir::Out, addr);
        if let Some(i) = self.mmio_index.get(k) {
            self.last.mmio = Some(Row::At(i));
            self.mmio[i].count += 1;
            return Seen::Again;
        }
        if self.mmio.len() == MAX_ROWS {
            self.last.mmio = Some(Row::Others);
            return count_other(&mut self.mmio_others, dir);
        }
        let row = self.mmio.len();
        self.last.mmio = Some(Row::At(row));
        self.mmio_index.insert(k, row);
        let device = sv::in_window(addr).then(|| sv::reg::ident(addr - sv::MMIO_BASE));
        self.mmio.push(AddrCount {
            dir,
            addr,
            device,
            count: 1,
            handling_ns: 0,
        });
        Seen::First(row)
    }

    /// Exits on ports beyond the rows.
    pub fn io_others(&self) -> Others {
        self.io_others
    }

    /// Exits on MMIO addresses beyond the rows.
    pub fn mmio_others(&self) -> Others {
        self.mmio_others
    }

    /// Adds `other`'s counts to these (the total of several vCPUs).
    pub fn merge(&mut self, other: &ExitStats) {
        self.total += other.total;
        for (a, b) in self.by_reason.iter_mut().zip(other.by_reason) {
            *a += b;
        }
        for (a, b) in self.reason_ns.iter_mut().zip(other.reason_ns) {
            *a += b;
        }
        self.timed |= other.timed;
        self.io_in += other.io_in;
        self.io_out += other.io_out;
        for p in &other.io {
            let k = key(p.dir == Dir::Out, u64::from(p.port));
            match self.io_index.get(k) {
                Some(i) => {
                    self.io[i].count += p.count;
                    self.io[i].handling_ns += p.handling_ns;
                }
                None if self.io.len() < MAX_ROWS => {
                    self.io_index.insert(k, self.io.len());
                    self.io.push(p.clone());
                }
                None => add_other(&mut self.io_others, p.dir, p.count, p.handling_ns),
            }
        }
        for m in &other.mmio {
            let k = key(m.dir == Dir::Out, m.addr);
            match self.mmio_index.get(k) {
                Some(i) => {
                    self.mmio[i].count += m.count;
                    self.mmio[i].handling_ns += m.handling_ns;
                }
                None if self.mmio.len() < MAX_ROWS => {
                    self.mmio_index.insert(k, self.mmio.len());
                    self.mmio.push(m.clone());
                }
                None => add_other(&mut self.mmio_others, m.dir, m.count, m.handling_ns),
            }
        }
        for (mine, theirs) in [
            (&mut self.io_others, other.io_others),
            (&mut self.mmio_others, other.mmio_others),
        ] {
            mine.reads += theirs.reads;
            mine.writes += theirs.writes;
            mine.handling_ns += theirs.handling_ns;
        }
    }

    /// All exits.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Exits of one reason.
    pub fn count(&self, r: ExitReason) -> u64 {
        self.by_reason[r as usize]
    }

    /// `in` exits.
    pub fn io_in(&self) -> u64 {
        self.io_in
    }

    /// `out` exits.
    pub fn io_out(&self) -> u64 {
        self.io_out
    }

    /// Per-reason counts (only reasons seen).
    pub fn reasons(&self) -> Vec<ReasonCount> {
        ExitReason::ALL
            .iter()
            .filter(|&&r| self.count(r) > 0)
            .map(|&r| ReasonCount {
                reason: r,
                name: r.name(),
                kvm_code: r.kvm_code(),
                count: self.count(r),
                handling_ns: self.reason_ns[r as usize],
            })
            .collect()
    }

    /// I/O counts sorted by direction then port.
    pub fn ports(&self) -> Vec<PortCount> {
        let mut v = self.io.clone();
        v.sort_by_key(|p| (p.dir, p.port));
        v
    }

    /// MMIO counts sorted by direction then address.
    pub fn mmio(&self) -> Vec<AddrCount> {
        let mut v = self.mmio.clone();
        v.sort_by_key(|a| (a.dir, a.addr));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_table() {
        let mut s = ExitStats::default();
        for _ in 0..3 {
            s.record_io(Dir::Out, 0xe9);
        }
        assert_eq!(s.record_io(Dir::In, 0x502), Seen::First(1));
        assert_eq!(s.record_mmio(Dir::Out, 0xd000_0000), Seen::First(0));
        assert_eq!(s.record_mmio(Dir::Out, 0xd000_0000), Seen::Again);
        s.record(ExitReason::Hlt);
        assert_eq!(s.total(), 7);
        assert_eq!((s.io_in(), s.io_out()), (1, 3));
        assert_eq!(s.count(ExitReason::Io), 4);
        assert_eq!(
            s.table(),
            "exits: 7 total\n\
             \x20 KVM_EXIT_IO                      (2)          4\n\
             \x20   in  port 0x0502 num_exits                   1\n\
             \x20   out port 0x00e9 print8bit                   3\n\
             \x20 KVM_EXIT_MMIO                    (6)          2\n\
             \x20   write 0xd0000000 sv.magic                   2\n\
             \x20 KVM_EXIT_HLT                     (5)          1\n"
        );
    }
}
