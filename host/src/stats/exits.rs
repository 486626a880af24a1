//! The counts of one VM (or vCPU): by exit reason, by port and direction,
//! by MMIO address and direction, each bounded and indexed (`super::rows`).

use super::kinds::*;
use super::rows::{Row, Rows};
use hypercall_abi::Hypercall;
use hypercall_abi::simvirtio as sv;

/// All the counts of one VM.
#[derive(Debug, Clone, Default)]
pub struct ExitStats {
    pub(super) total: u64,
    pub(super) by_reason: [u64; ExitReason::ALL.len()],
    pub(super) io_in: u64,
    pub(super) io_out: u64,
    /// By port and direction, bounded.
    pub(super) io: Rows<PortCount>,
    /// By MMIO address and direction, bounded.
    pub(super) mmio: Rows<AddrCount>,
    /// Handling time by reason, ns.
    pub(super) reason_ns: [u64; ExitReason::ALL.len()],
    /// What the last exit was counted under, for `charge`.
    last: Last,
    /// Whether any time was charged (`--stats`).
    pub(super) timed: bool,
    /// The last [`RECENT`] exits, oldest first from `total % RECENT`
    /// (a crash report shows them).
    recent: [Recent; RECENT],
    /// Interrupts the host delivered (not exits: counted beside them).
    pub(super) irqs: super::irqs::IrqCounts,
}

/// An exit as text: `KVM_EXIT_IO out port 0x503 (print_str)`, from
/// (reason, direction: 0 none, 1 in/read, 2 out/write, MMIO, port or
/// address).
pub fn exit_text((reason, dir, mmio, at): (u8, u8, bool, u64)) -> String {
    let reason = ExitReason::ALL
        .get(usize::from(reason))
        .map_or("?", |r| r.name());
    match (dir, mmio) {
        (0, _) => reason.to_string(),
        (d, false) => {
            let hc = Hypercall::from_port(at as u16)
                .map(|h| format!(" ({})", h.name()))
                .unwrap_or_default();
            let dir = if d == 1 { "in" } else { "out" };
            format!("{reason} {dir} port {at:#x}{hc}")
        }
        (d, true) => {
            let dir = if d == 1 { "read" } else { "write" };
            format!("{reason} {dir} {at:#x}")
        }
    }
}

/// How many of the last exits a crash report shows.
pub const RECENT: usize = 16;

/// One of the last exits: its reason, and its port or address.
#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    reason: u8,
    /// 0: none; 1: in / read; 2: out / write.
    dir: u8,
    mmio: bool,
    at: u64,
}

/// The entries the last recorded exit was counted under.
#[derive(Debug, Clone, Copy, Default)]
struct Last {
    reason: usize,
    io: Option<Row>,
    mmio: Option<Row>,
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
        self.recent[(self.total % RECENT as u64) as usize] = Recent {
            reason: r as u8,
            ..Recent::default()
        };
        self.total
    }

    fn note_recent(&mut self, dir: Dir, mmio: bool, at: u64) {
        let e = &mut self.recent[(self.total % RECENT as u64) as usize];
        e.dir = if dir == Dir::In { 1 } else { 2 };
        e.mmio = mmio;
        e.at = at;
    }

    /// The ring of the last exits as (reason, direction, MMIO, port or
    /// address), for a snapshot (`super::saved`).
    pub(super) fn recent_raw(&self) -> [(u8, u8, bool, u64); RECENT] {
        self.recent.map(|r| (r.reason, r.dir, r.mmio, r.at))
    }

    /// The ring `recent_raw` gave.
    pub(super) fn set_recent_raw(&mut self, r: [(u8, u8, bool, u64); RECENT]) {
        self.recent = r.map(|(reason, dir, mmio, at)| Recent {
            reason,
            dir,
            mmio,
            at,
        });
    }

    /// The last exits (at most [`RECENT`]), oldest first, as text:
    /// `KVM_EXIT_IO out port 0x503 (print_str)`.
    pub fn recent(&self) -> Vec<String> {
        let n = self.total.min(RECENT as u64);
        (self.total - n + 1..=self.total)
            .map(|i| {
                let e = self.recent[(i % RECENT as u64) as usize];
                exit_text((e.reason, e.dir, e.mmio, e.at))
            })
            .collect()
    }

    /// The last exit recorded, as (reason, direction, MMIO, port or
    /// address) for [`exit_text`] (`--trace-out` keeps one per exit).
    pub fn last_raw(&self) -> Option<(u8, u8, bool, u64)> {
        (self.total > 0).then(|| {
            let e = self.recent[(self.total % RECENT as u64) as usize];
            (e.reason, e.dir, e.mmio, e.at)
        })
    }

    /// Adds the host's handling time of the last recorded exit to its
    /// reason and its port or address.
    pub fn charge(&mut self, d: std::time::Duration) {
        let ns = d.as_nanos() as u64;
        self.timed = true;
        self.reason_ns[self.last.reason] += ns;
        if let Some(row) = self.last.io {
            self.io.charge(row, ns);
        }
        if let Some(row) = self.last.mmio {
            self.mmio.charge(row, ns);
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
        let (seen, row) = self.io.record(dir, u64::from(port), || PortCount {
            dir,
            port,
            hypercall: Hypercall::from_port(port).map(Hypercall::name),
            count: 1,
            handling_ns: 0,
        });
        self.last.io = Some(row);
        self.note_recent(dir, false, u64::from(port));
        seen
    }

    /// Counts one MMIO exit at `addr`.
    #[inline]
    pub fn record_mmio(&mut self, dir: Dir, addr: u64) -> Seen {
        self.record(ExitReason::Mmio);
        let (seen, row) = self.mmio.record(dir, addr, || AddrCount {
            dir,
            addr,
            device: sv::in_window(addr).then(|| sv::reg::ident(addr - sv::MMIO_BASE)),
            count: 1,
            handling_ns: 0,
        });
        self.last.mmio = Some(row);
        self.note_recent(dir, true, addr);
        seen
    }

    /// Exits on ports beyond the rows.
    pub fn io_others(&self) -> Others {
        self.io.others
    }

    /// Exits on MMIO addresses beyond the rows.
    pub fn mmio_others(&self) -> Others {
        self.mmio.others
    }
    /// A copy without the ports' and addresses' 16 KiB indexes (a
    /// `--record` checkpoint keeps one every 64 exits); [`Self::reindexed`]
    /// makes it count again.
    pub fn compact(&self) -> ExitStats {
        ExitStats {
            io: self.io.unindexed(),
            mmio: self.mmio.unindexed(),
            ..self.clone_without_rows()
        }
    }

    /// A compact copy made whole again.
    pub fn reindexed(&self) -> ExitStats {
        ExitStats {
            io: self.io.reindexed(),
            mmio: self.mmio.reindexed(),
            ..self.clone_without_rows()
        }
    }

    fn clone_without_rows(&self) -> ExitStats {
        ExitStats {
            total: self.total,
            by_reason: self.by_reason,
            io_in: self.io_in,
            io_out: self.io_out,
            io: Rows::default(),
            mmio: Rows::default(),
            reason_ns: self.reason_ns,
            last: self.last,
            timed: self.timed,
            recent: self.recent,
            irqs: self.irqs.clone(),
        }
    }

    /// Bytes a compact copy takes.
    pub fn compact_bytes(&self) -> usize {
        std::mem::size_of::<ExitStats>()
            + self.io.heap_bytes()
            + self.mmio.heap_bytes()
            + self.irqs.heap_bytes()
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
        self.io.merge(&other.io);
        self.mmio.merge(&other.mmio);
        self.irqs.merge(&other.irqs);
    }

    /// Counts one interrupt the host delivered: vector or IRQ line `n`.
    pub fn record_interrupt(&mut self, via: super::IrqVia, n: u8) {
        self.irqs.record(via, n);
    }

    /// The interrupts the host delivered, if any.
    pub fn interrupts(&self) -> Option<super::IrqSummary> {
        self.irqs.summary()
    }

    /// All exits.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Exits the guest itself caused: all but the host's kicks
    /// (KVM_EXIT_INTR) and a debugger's stops (KVM_EXIT_DEBUG), which
    /// differ from run to run of the same guest (time travel counts these).
    pub fn guest_exits(&self) -> u64 {
        self.total() - self.count(ExitReason::Intr) - self.count(ExitReason::Debug)
    }

    /// Exits of reason `r`.
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
        let mut v = self.io.rows.clone();
        v.sort_by_key(|p| (p.dir, p.port));
        v
    }

    /// MMIO counts sorted by direction then address.
    pub fn mmio(&self) -> Vec<AddrCount> {
        let mut v = self.mmio.rows.clone();
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

#[cfg(test)]
mod recent_tests {
    use super::*;

    #[test]
    fn the_last_sixteen_exits_oldest_first() {
        let mut s = ExitStats::default();
        assert!(s.recent().is_empty());
        for i in 0..20u16 {
            s.record_io(Dir::Out, 0x500 + i);
        }
        s.record_mmio(Dir::In, 0xd000_0000);
        s.record(ExitReason::Shutdown);
        let r = s.recent();
        assert_eq!(r.len(), RECENT);
        assert_eq!(r[0], "KVM_EXIT_IO out port 0x506 (host_cpuid)");
        assert_eq!(r[13], "KVM_EXIT_IO out port 0x513");
        assert_eq!(r[14], "KVM_EXIT_MMIO read 0xd0000000");
        assert_eq!(r[15], "KVM_EXIT_SHUTDOWN");
    }
}
