//! Exit statistics: counts by exit reason, I/O exits by direction and port,
//! MMIO exits by direction and address. Counting allocates only the first
//! time a port or address is seen.

use hypercall_abi::Hypercall;
use hypercall_abi::simvirtio as sv;
use serde::Serialize;
use std::fmt::Write as _;

/// Why `KVM_RUN` returned, as the host counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// KVM_EXIT_IO.
    Io,
    /// KVM_EXIT_MMIO.
    Mmio,
    /// KVM_EXIT_HLT.
    Hlt,
    /// KVM_EXIT_SHUTDOWN (triple fault).
    Shutdown,
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry,
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError,
    /// KVM_RUN returned EINTR (the assignment's KVM_EXIT_INTR).
    Intr,
    /// Anything else.
    Other,
}

impl ExitReason {
    /// All reasons, in table order.
    pub const ALL: [ExitReason; 8] = [
        ExitReason::Io,
        ExitReason::Mmio,
        ExitReason::Hlt,
        ExitReason::Shutdown,
        ExitReason::FailEntry,
        ExitReason::InternalError,
        ExitReason::Intr,
        ExitReason::Other,
    ];

    /// The KVM_EXIT_* number (`kvm_run.exit_reason`).
    pub fn kvm_code(self) -> Option<u32> {
        use kvm_bindings as k;
        Some(match self {
            ExitReason::Io => k::KVM_EXIT_IO,
            ExitReason::Mmio => k::KVM_EXIT_MMIO,
            ExitReason::Hlt => k::KVM_EXIT_HLT,
            ExitReason::Shutdown => k::KVM_EXIT_SHUTDOWN,
            ExitReason::FailEntry => k::KVM_EXIT_FAIL_ENTRY,
            ExitReason::InternalError => k::KVM_EXIT_INTERNAL_ERROR,
            ExitReason::Intr => k::KVM_EXIT_INTR,
            ExitReason::Other => return None,
        })
    }

    /// KVM's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Io => "KVM_EXIT_IO",
            ExitReason::Mmio => "KVM_EXIT_MMIO",
            ExitReason::Hlt => "KVM_EXIT_HLT",
            ExitReason::Shutdown => "KVM_EXIT_SHUTDOWN",
            ExitReason::FailEntry => "KVM_EXIT_FAIL_ENTRY",
            ExitReason::InternalError => "KVM_EXIT_INTERNAL_ERROR",
            ExitReason::Intr => "KVM_EXIT_INTR",
            ExitReason::Other => "other",
        }
    }
}

/// Direction of an I/O or MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// Guest reads (`in`, MMIO read).
    In,
    /// Guest writes (`out`, MMIO write).
    Out,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
        }
    }
}

/// Exits on one port in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortCount {
    /// in or out.
    pub dir: Dir,
    /// Port number.
    pub port: u16,
    /// The hypercall on that port, if any.
    pub hypercall: Option<&'static str>,
    /// Exits.
    pub count: u64,
    /// Host time handling them (`--stats`), ns.
    pub handling_ns: u64,
}

/// Exits on one MMIO address in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrCount {
    /// Read (in) or write (out).
    pub dir: Dir,
    /// Guest-physical address.
    #[serde(serialize_with = "crate::size::hex")]
    pub addr: u64,
    /// The SIMVIRTIO register there (`sv.<register>`), if any.
    pub device: Option<&'static str>,
    /// Exits.
    pub count: u64,
    /// Host time handling them (`--stats`), ns.
    pub handling_ns: u64,
}

/// Counts of one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    /// Reason.
    pub reason: ExitReason,
    /// KVM_EXIT_* name.
    pub name: &'static str,
    /// KVM_EXIT_* number.
    pub kvm_code: Option<u32>,
    /// Exits.
    pub count: u64,
    /// Host time handling them (`--stats`), ns.
    pub handling_ns: u64,
}

/// All the counts of one VM.
#[derive(Debug, Clone, Default)]
pub struct ExitStats {
    total: u64,
    by_reason: [u64; ExitReason::ALL.len()],
    io_in: u64,
    io_out: u64,
    io: Vec<PortCount>,
    mmio: Vec<AddrCount>,
    /// Handling time by reason, ns.
    reason_ns: [u64; ExitReason::ALL.len()],
    /// What the last exit was counted under, for `charge`.
    last: Last,
    /// Whether any time was charged (`--stats`).
    timed: bool,
}

/// The entries the last recorded exit was counted under.
#[derive(Debug, Clone, Copy, Default)]
struct Last {
    reason: usize,
    io: Option<usize>,
    mmio: Option<usize>,
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
        if let Some(p) = self.last.io.and_then(|i| self.io.get_mut(i)) {
            p.handling_ns += ns;
        }
        if let Some(a) = self.last.mmio.and_then(|i| self.mmio.get_mut(i)) {
            a.handling_ns += ns;
        }
    }

    /// Whether handling times were measured.
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// Counts one I/O exit; returns how often (dir, port) has now been seen.
    #[inline]
    pub fn record_io(&mut self, dir: Dir, port: u16) -> u64 {
        self.record(ExitReason::Io);
        match dir {
            Dir::In => self.io_in += 1,
            Dir::Out => self.io_out += 1,
        }
        if let Some(i) = self.io.iter().position(|p| p.port == port && p.dir == dir) {
            self.last.io = Some(i);
            self.io[i].count += 1;
            return self.io[i].count;
        }
        self.last.io = Some(self.io.len());
        self.io.push(PortCount {
            dir,
            port,
            hypercall: Hypercall::from_port(port).map(Hypercall::name),
            count: 1,
            handling_ns: 0,
        });
        1
    }

    /// Counts one MMIO exit; returns how often (dir, addr) has now been seen.
    pub fn record_mmio(&mut self, dir: Dir, addr: u64) -> u64 {
        self.record(ExitReason::Mmio);
        if let Some(i) = self
            .mmio
            .iter()
            .position(|a| a.addr == addr && a.dir == dir)
        {
            self.last.mmio = Some(i);
            self.mmio[i].count += 1;
            return self.mmio[i].count;
        }
        self.last.mmio = Some(self.mmio.len());
        let device = sv::in_window(addr).then(|| sv::reg::ident(addr - sv::MMIO_BASE));
        self.mmio.push(AddrCount {
            dir,
            addr,
            device,
            count: 1,
            handling_ns: 0,
        });
        1
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
            match self
                .io
                .iter_mut()
                .find(|q| q.port == p.port && q.dir == p.dir)
            {
                Some(q) => {
                    q.count += p.count;
                    q.handling_ns += p.handling_ns;
                }
                None => self.io.push(p.clone()),
            }
        }
        for m in &other.mmio {
            match self
                .mmio
                .iter_mut()
                .find(|a| a.addr == m.addr && a.dir == m.dir)
            {
                Some(a) => {
                    a.count += m.count;
                    a.handling_ns += m.handling_ns;
                }
                None => self.mmio.push(m.clone()),
            }
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

    /// The human-readable exit table; with measured handling times
    /// (`--stats`), two more columns: total and mean host time per row.
    pub fn table(&self) -> String {
        let timed = self.timed;
        let time = |count: u64, ns: u64| -> String {
            if !timed {
                return String::new();
            }
            format!(
                " {:>12.1} {:>10}",
                ns as f64 / 1e3,
                ns.checked_div(count).unwrap_or(0)
            )
        };
        let mut s = format!("exits: {} total\n", self.total);
        if timed {
            let all: u64 = self.reason_ns.iter().sum();
            s = format!(
                "exits: {} total, host handling {:.1} us\n  {:<36} {:>10} {:>12} {:>10}\n",
                self.total,
                all as f64 / 1e3,
                "reason / port / address",
                "count",
                "total us",
                "mean ns"
            );
        }
        for r in self.reasons() {
            let code = r.kvm_code.map(|c| format!("({c})")).unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<31} {:>4} {:>10}{}",
                r.name,
                code,
                r.count,
                time(r.count, r.handling_ns)
            );
            if r.reason == ExitReason::Io {
                for p in self.ports() {
                    let hc = p.hypercall.map(|h| format!(" {h}")).unwrap_or_default();
                    let what = format!("{:<3} port {:#06x}{hc}", p.dir.name(), p.port);
                    let _ = writeln!(
                        s,
                        "    {what:<34} {:>10}{}",
                        p.count,
                        time(p.count, p.handling_ns)
                    );
                }
            }
            if r.reason == ExitReason::Mmio {
                for a in self.mmio() {
                    let dev = a.device.map(|d| format!(" {d}")).unwrap_or_default();
                    let what = format!(
                        "{:<5} {:#x}{dev}",
                        if a.dir == Dir::In { "read" } else { "write" },
                        a.addr
                    );
                    let _ = writeln!(
                        s,
                        "    {what:<34} {:>10}{}",
                        a.count,
                        time(a.count, a.handling_ns)
                    );
                }
            }
        }
        s
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
        assert_eq!(s.record_io(Dir::In, 0x502), 1);
        assert_eq!(s.record_mmio(Dir::Out, 0xd000_0000), 1);
        assert_eq!(s.record_mmio(Dir::Out, 0xd000_0000), 2);
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
