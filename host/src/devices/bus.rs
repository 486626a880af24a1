//! The device bus: every I/O and MMIO exit goes through here. Ports of the
//! hypercall ABI go to [`hypercall::dispatch`], the SIMVIRTIO window to the
//! device, and anything else is reported once per port or address ("no
//! device here") and answered with all ones. Each exit is counted before it
//! is served, so a hypercall sees itself in the counts.
//!
//! The bus takes plain values (a port, the data bytes), never KVM objects:
//! its tests below serve hand-made exits with no KVM.

use super::hypercall::{self, Env, GuestErrors, Io};
use super::simvirtio::{DeviceStats, Serving, SimVirtio};
use crate::diag::{HostError, host_line};
use crate::stats::{Dir, ExitStats, Seen};
use crate::x86::Paging;
use hypercall_abi::Hypercall;
use hypercall_abi::simvirtio as sv;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use vm_memory::GuestMemoryMmap;

/// Ports (and, separately, addresses) with no device that are reported by
/// name, per vCPU.
pub const REPORTED: usize = 16;

/// The devices of one VM, shared by its vCPUs.
pub struct Bus {
    simvirtio: Mutex<SimVirtio>,
    polling: bool,
}

/// What serving one vCPU's exit works with besides the bus.
pub struct Ctx<'a> {
    /// Guest memory.
    pub mem: &'a GuestMemoryMmap,
    /// This vCPU's exit counts.
    pub stats: &'a mut ExitStats,
    /// The guest's output.
    pub out: &'a mut dyn Write,
    /// The host's diagnostics.
    pub diag: &'a mut dyn Write,
    /// Bad hypercall arguments reported so far.
    pub guest_errors: &'a mut GuestErrors,
}

impl Ctx<'_> {
    fn env(&mut self) -> Env<'_> {
        Env {
            mem: self.mem,
            stats: &*self.stats,
            out: &mut *self.out,
            diag: &mut *self.diag,
            guest_errors: &mut *self.guest_errors,
        }
    }

    fn report(&mut self, msg: std::fmt::Arguments) -> Result<(), HostError> {
        host_line(self.out, self.diag, msg)
    }

    /// Reports a port or address with no device once, at its first exit,
    /// for the first [`REPORTED`] of them (per vCPU); then one line says the
    /// rest go unreported. The exit table counts them all.
    fn report_once(
        &mut self,
        seen: Seen,
        what: &str,
        msg: std::fmt::Arguments,
    ) -> Result<(), HostError> {
        match seen {
            Seen::First(row) if row < REPORTED => self.report(msg),
            Seen::First(REPORTED) => self.report(format_args!(
                "guest used more than {REPORTED} {what} with nothing behind them: the rest are not reported one by one (the exit table counts them)"
            )),
            _ => Ok(()),
        }
    }
}

impl Bus {
    /// The bus with its devices in their power-on state; `serving`: how
    /// the SIMVIRTIO device learns of TX data (notify exits, `--polling`,
    /// `--ioeventfd`); `irq`: the eventfd that raises the device's IRQ line
    /// (in-kernel controller).
    pub fn new(serving: Serving, irq: Option<vmm_sys_util::eventfd::EventFd>) -> Bus {
        Bus {
            simvirtio: Mutex::new(SimVirtio::new(serving, irq)),
            polling: serving == Serving::Polling,
        }
    }

    fn device(&self) -> MutexGuard<'_, SimVirtio> {
        // a vCPU thread that panicked while holding it left a usable device
        self.simvirtio.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Polling mode: drains the device's TX queue (at every exit and on
    /// the polling timer). Nothing to do in exit mode.
    #[inline]
    pub fn poll(
        &self,
        mem: &GuestMemoryMmap,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        if self.polling {
            self.device().poll(mem, out, diag)?;
        }
        Ok(())
    }

    /// `--ioeventfd`: the driver notified `count` times (KVM counted the
    /// writes in an eventfd); the device thread drains TX.
    pub fn notified(
        &self,
        mem: &GuestMemoryMmap,
        count: u64,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        self.device().notified(mem, count, out, diag)
    }

    /// `out` of `io` (decoded with [`Io::out`]) to `port`. `paging` is
    /// asked for the guest's translation registers only by a hypercall that
    /// walks page tables.
    pub fn io_out(
        &self,
        cx: &mut Ctx,
        port: u16,
        io: Io,
        paging: impl FnOnce() -> Result<Paging, HostError>,
    ) -> Result<(), HostError> {
        let seen = cx.stats.record_io(Dir::Out, port);
        match Hypercall::from_port(port) {
            Some(hc) => {
                hypercall::dispatch(hc, io, &mut cx.env(), paging)?;
            }
            None => cx.report_once(
                seen,
                "ports",
                format_args!(
                    "guest wrote {:#x} to port {port:#x}, which has no device: ignored",
                    io.value
                ),
            )?,
        }
        Ok(())
    }

    /// `in` from `port`: fills `data` with the answer.
    pub fn io_in(&self, cx: &mut Ctx, port: u16, data: &mut [u8]) -> Result<(), HostError> {
        let seen = cx.stats.record_io(Dir::In, port);
        let v = match Hypercall::from_port(port) {
            // `in` hypercalls never walk page tables (the transport check
            // stops an `in` on a block port).
            Some(hc) => hypercall::dispatch(hc, Io::input(data.len()), &mut cx.env(), || {
                Err(HostError::Internal("page-table walk during an `in` exit"))
            })?,
            None => {
                cx.report_once(
                    seen,
                    "ports",
                    format_args!(
                        "guest read port {port:#x}, which has no device: it reads as all ones"
                    ),
                )?;
                u32::MAX
            }
        };
        let bytes = v.to_le_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = bytes.get(i % 4).copied().unwrap_or(0xff);
        }
        Ok(())
    }

    /// An MMIO read of `data.len()` bytes at `addr`.
    pub fn mmio_read(&self, cx: &mut Ctx, addr: u64, data: &mut [u8]) -> Result<(), HostError> {
        let seen = cx.stats.record_mmio(Dir::In, addr);
        if sv::in_window(addr) {
            self.device().read(cx.mem, addr, data);
            return Ok(());
        }
        cx.report_once(
            seen,
            "addresses",
            format_args!(
                "guest read GPA {addr:#x}, which has no memory or device: it reads as all ones"
            ),
        )?;
        data.fill(0xff);
        Ok(())
    }

    /// An MMIO write of `data` at `addr`.
    pub fn mmio_write(&self, cx: &mut Ctx, addr: u64, data: &[u8]) -> Result<(), HostError> {
        let seen = cx.stats.record_mmio(Dir::Out, addr);
        if sv::in_window(addr) {
            return self.device().write(cx.mem, addr, data, cx.out, cx.diag);
        }
        cx.report_once(
            seen,
            "addresses",
            format_args!("guest wrote GPA {addr:#x}, which has no memory or device: ignored"),
        )?;
        Ok(())
    }

    /// After the run: the device takes what is left in TX (polling mode)
    /// and ends an unfinished line.
    pub fn finish(
        &mut self,
        mem: &GuestMemoryMmap,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        let d = self.simvirtio.get_mut().unwrap_or_else(|p| p.into_inner());
        d.finish(mem, out, diag)?;
        out.flush()?;
        Ok(())
    }

    /// Appends the devices' state to a snapshot's bytes.
    pub fn save(&self, e: &mut crate::wire::Enc) {
        self.device().save(e);
    }

    /// Takes the devices' state from a snapshot's bytes.
    pub fn load(&self, d: &mut crate::wire::Dec) -> Result<(), crate::wire::WireError> {
        self.device().load(d)
    }

    /// From now on, the device keeps its queues over time (`--html`).
    pub fn keep_history(&self, epoch: std::time::Instant) {
        self.device().keep_history(epoch);
    }

    /// The device's queues over time, if kept.
    pub fn device_history(&mut self) -> Option<super::simvirtio::history::History> {
        self.simvirtio
            .get_mut()
            .ok()
            .and_then(|d| d.history().cloned())
    }

    /// What the SIMVIRTIO device did.
    pub fn device_stats(&mut self) -> DeviceStats {
        self.simvirtio
            .get_mut()
            .map(|d| d.stats())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::PORT_PRINT8BIT;
    use vm_memory::GuestAddress;

    struct Rig {
        mem: GuestMemoryMmap,
        stats: ExitStats,
        out: Vec<u8>,
        diag: Vec<u8>,
        errors: GuestErrors,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                mem: GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap(),
                stats: ExitStats::default(),
                out: Vec::new(),
                diag: Vec::new(),
                errors: GuestErrors::default(),
            }
        }

        fn cx(&mut self) -> Ctx<'_> {
            Ctx {
                mem: &self.mem,
                stats: &mut self.stats,
                out: &mut self.out,
                diag: &mut self.diag,
                guest_errors: &mut self.errors,
            }
        }
    }

    fn no_walk() -> Result<Paging, HostError> {
        Err(HostError::Internal("no walk expected"))
    }

    #[test]
    fn a_print8bit_out_exit_prints_its_byte_and_is_counted() {
        let bus = Bus::new(Serving::Exits, None);
        let mut r = Rig::new();
        for b in *b"Hi" {
            bus.io_out(&mut r.cx(), PORT_PRINT8BIT, Io::out(&[b]), no_walk)
                .unwrap();
        }
        assert_eq!(r.out, b"Hi");
        assert_eq!(r.stats.io_out(), 2);
        assert!(r.diag.is_empty());
    }

    #[test]
    fn a_port_with_no_device_is_reported_once_and_reads_as_all_ones() {
        let bus = Bus::new(Serving::Exits, None);
        let mut r = Rig::new();
        let mut data = [0u8; 2];
        bus.io_in(&mut r.cx(), 0x70, &mut data).unwrap();
        bus.io_in(&mut r.cx(), 0x70, &mut data).unwrap();
        assert_eq!(data, [0xff, 0xff]);
        bus.io_out(&mut r.cx(), 0x71, Io::out(&[7]), no_walk)
            .unwrap();
        bus.io_out(&mut r.cx(), 0x71, Io::out(&[7]), no_walk)
            .unwrap();
        assert_eq!(
            String::from_utf8(r.diag).unwrap(),
            "host: guest read port 0x70, which has no device: it reads as all ones\n\
             host: guest wrote 0x7 to port 0x71, which has no device: ignored\n"
        );
        assert_eq!(r.stats.total(), 4);
    }

    #[test]
    fn mmio_outside_memory_and_devices_is_reported_once_per_address() {
        let bus = Bus::new(Serving::Exits, None);
        let mut r = Rig::new();
        let mut data = [0u8; 4];
        let gpa = 0x4000_0000;
        bus.mmio_read(&mut r.cx(), gpa, &mut data).unwrap();
        bus.mmio_read(&mut r.cx(), gpa, &mut data).unwrap();
        bus.mmio_write(&mut r.cx(), gpa, &[1]).unwrap();
        assert_eq!(data, [0xff; 4]);
        assert_eq!(
            String::from_utf8(r.diag).unwrap(),
            "host: guest read GPA 0x40000000, which has no memory or device: it reads as all ones\n\
             host: guest wrote GPA 0x40000000, which has no memory or device: ignored\n"
        );
    }

    #[test]
    fn the_simvirtio_window_answers_with_its_magic() {
        let mut bus = Bus::new(Serving::Exits, None);
        let mut r = Rig::new();
        let mut data = [0u8; 4];
        bus.mmio_read(&mut r.cx(), sv::MMIO_BASE, &mut data)
            .unwrap();
        assert_eq!(u32::from_le_bytes(data), sv::MAGIC_VALUE);
        assert!(r.diag.is_empty());
        assert_eq!(r.stats.mmio()[0].device, Some("sv.magic"));
        assert!(!bus.device_stats().used());
    }

    #[test]
    fn a_repeated_misuse_is_reported_once_and_counted_each_time() {
        let bus = Bus::new(Serving::Exits, None);
        let mut r = Rig::new();
        let port = Hypercall::NumExits.port();
        for _ in 0..1000 {
            // `out` on an `in` port: a misuse
            bus.io_out(&mut r.cx(), port, Io::out(&[1]), no_walk)
                .unwrap();
        }
        assert_eq!(String::from_utf8(r.diag).unwrap().lines().count(), 1);
        assert_eq!(r.errors.count, 1000);
    }

    #[test]
    fn num_exits_counts_the_exit_that_asks() {
        let bus = Bus::new(Serving::Exits, None);
        let mut r = Rig::new();
        bus.io_out(&mut r.cx(), PORT_PRINT8BIT, Io::out(b"x"), no_walk)
            .unwrap();
        let mut data = [0u8; 4];
        bus.io_in(&mut r.cx(), Hypercall::NumExits.port(), &mut data)
            .unwrap();
        assert_eq!(u32::from_le_bytes(data), 2);
    }
}
