//! Exit counts in a snapshot: what a restored run starts counting from, so
//! its table and `--json` count the whole run. Handling times are not
//! kept (they are the host's, not the guest's: a restored run times its
//! own exits).

use super::exits::{ExitStats, RECENT};
use super::kinds::{AddrCount, Dir, ExitReason, Others, PortCount};
use super::rows::{Counted, Rows};
use crate::wire::{Dec, Enc, WireError};
use hypercall_abi::Hypercall;
use hypercall_abi::simvirtio as sv;

fn save_rows<T: Counted>(e: &mut Enc, r: &Rows<T>) {
    e.u64(r.rows.len() as u64);
    for row in &r.rows {
        e.u8(u8::from(row.dir() == Dir::Out));
        e.u64(row.at());
        e.u64(row.totals().0);
    }
    e.u64(r.others.reads);
    e.u64(r.others.writes);
}

fn load_rows<T: Counted>(
    d: &mut Dec,
    what: &'static str,
    new: impl Fn(Dir, u64) -> Result<T, WireError>,
) -> Result<Rows<T>, WireError> {
    let mut r = Rows::default();
    for _ in 0..d.count(what, 17)? {
        let dir = match d.bool(what)? {
            true => Dir::Out,
            false => Dir::In,
        };
        let at = d.u64(what)?;
        let count = d.u64(what)?;
        let row = new(dir, at)?;
        let (_, i) = r.record(dir, at, || row);
        r.add_at(i, count.saturating_sub(1));
    }
    r.others = Others {
        reads: d.u64(what)?,
        writes: d.u64(what)?,
        handling_ns: 0,
    };
    Ok(r)
}

impl ExitStats {
    /// Appends the counts (not the handling times) to a snapshot's bytes.
    pub fn save(&self, e: &mut Enc) {
        e.u64(self.total);
        e.u64(self.by_reason.len() as u64);
        for &n in &self.by_reason {
            e.u64(n);
        }
        e.u64(self.io_in);
        e.u64(self.io_out);
        save_rows(e, &self.io);
        save_rows(e, &self.mmio);
        for r in self.recent_raw() {
            e.u8(r.0);
            e.u8(r.1);
            e.u8(u8::from(r.2));
            e.u64(r.3);
        }
        self.irqs.save(e);
    }

    /// The counts `save` wrote.
    pub fn load(d: &mut Dec) -> Result<ExitStats, WireError> {
        let mut s = ExitStats::default();
        s.total = d.u64("exit total")?;
        let n = d.u64("exit reasons")?;
        if n != s.by_reason.len() as u64 {
            return Err(WireError::Bad {
                what: "number of exit reasons",
                value: n,
            });
        }
        for c in &mut s.by_reason {
            *c = d.u64("exits of a reason")?;
        }
        s.io_in = d.u64("in exits")?;
        s.io_out = d.u64("out exits")?;
        s.io = load_rows(d, "port rows", |dir, at| {
            let port = u16::try_from(at).map_err(|_| WireError::Bad {
                what: "port",
                value: at,
            })?;
            Ok(PortCount {
                dir,
                port,
                hypercall: Hypercall::from_port(port).map(Hypercall::name),
                count: 1,
                handling_ns: 0,
            })
        })?;
        s.mmio = load_rows(d, "MMIO rows", |dir, addr| {
            Ok(AddrCount {
                dir,
                addr,
                device: sv::in_window(addr).then(|| sv::reg::ident(addr - sv::MMIO_BASE)),
                count: 1,
                handling_ns: 0,
            })
        })?;
        let mut recent = [(0u8, 0u8, false, 0u64); RECENT];
        for r in &mut recent {
            let reason = d.u8("recent exit")?;
            if usize::from(reason) >= ExitReason::ALL.len() {
                return Err(WireError::Bad {
                    what: "recent exit's reason",
                    value: u64::from(reason),
                });
            }
            let dir = d.u8("recent exit")?;
            if dir > 2 {
                return Err(WireError::Bad {
                    what: "recent exit's direction",
                    value: u64::from(dir),
                });
            }
            *r = (reason, dir, d.bool("recent exit")?, d.u64("recent exit")?);
        }
        s.set_recent_raw(recent);
        s.irqs = super::irqs::IrqCounts::load(d)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_a_save_and_load() {
        let mut s = ExitStats::default();
        s.record_io(Dir::Out, 0x503);
        s.record_io(Dir::Out, 0x503);
        s.record_io(Dir::In, 0x502);
        s.record_mmio(Dir::Out, sv::MMIO_BASE + 9);
        s.record(ExitReason::Hlt);
        s.record_interrupt(crate::stats::IrqVia::Irqfd, 11);
        let mut e = Enc::default();
        s.save(&mut e);
        let mut d = Dec::new(&e.buf);
        let l = ExitStats::load(&mut d).unwrap();
        d.end().unwrap();
        assert_eq!(l.total(), 5);
        assert_eq!(l.ports(), s.ports());
        assert_eq!(l.mmio(), s.mmio());
        assert_eq!(l.reasons(), s.reasons());
        assert_eq!(l.recent(), s.recent());
        assert_eq!(l.interrupts(), s.interrupts());
        assert_eq!((l.io_in(), l.io_out()), (1, 2));
        // every truncation is an error, never a panic
        for n in 0..e.buf.len() {
            assert!(ExitStats::load(&mut Dec::new(&e.buf[..n])).is_err(), "{n}");
        }
    }
}
