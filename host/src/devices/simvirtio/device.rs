//! The SIMVIRTIO device model (hypercall_abi::simvirtio): configuration
//! space over MMIO exits, TX/RX queues in guest memory, the protocol state
//! machine and the device table.
//!
//! The guest owns its memory, so every queue index the device reads is
//! checked; a protocol or queue error prints one "host: simvirtio: device
//! error: ..." line, sets DEVICE_ERROR (and CTL_ERROR on a corrupt queue) for
//! the guest to see, and the device then ignores TX until DRIVER_RESET.

use super::memory::{queue, set_queue};
use crate::diag::{HostError, host_line};
use hypercall_abi::simvirtio::{self as sv, QueueControl, reg};
use std::io::Write;
use vm_memory::GuestMemoryMmap;

/// Where the protocol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for 'R'.
    Start,
    /// Reset done: waiting for DRIVER_ACK and 'C'.
    Reset,
    /// Configured: waiting for DRIVER_OK.
    Config,
    /// Ready: TX bytes are data.
    Ready,
}

/// Counters for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceStats {
    /// Data bytes taken from TX (commands not counted).
    pub tx_bytes: u64,
    /// Bytes put on RX.
    pub rx_bytes: u64,
    /// Times the device drained TX because the driver notified.
    pub notifies: u64,
    /// Times the device drained TX by polling (timer or another exit).
    pub polls: u64,
    /// Device errors reported.
    pub errors: u64,
    /// Interrupts raised (a driver that took them: DRIVER_IRQ).
    pub interrupts: u64,
}

impl DeviceStats {
    /// Whether the guest used the device at all.
    pub fn used(&self) -> bool {
        self.tx_bytes + self.rx_bytes + self.notifies + self.errors > 0
    }
}

/// One SIMVIRTIO device.
#[derive(Debug)]
pub struct SimVirtio {
    pub(super) polling: bool,
    /// A device thread serves TX (`--ioeventfd`): Q0 control reads
    /// `CTL_BATCH`, the driver notifies once per batch.
    pub(super) batch: bool,
    pub(super) phase: Phase,
    pub(super) device_status: u8,
    pub(super) driver_status: u8,
    pub(super) queue_selector: u8,
    pub(super) q_ctl: [u8; 2],
    /// Length of the current TX line (data phase), for its `ack N`.
    pub(super) line_len: u64,
    pub(super) stats: DeviceStats,
    /// TX bytes taken (commands too): what `INT_USED` follows.
    pub(super) consumed: u64,
    /// `INT_*` raised and not acknowledged.
    pub(super) int_status: u8,
    /// The driver asked for interrupts (DRIVER_IRQ) since the last reset.
    pub(super) irq_on: bool,
    /// The eventfd bound to `sv::IRQ_LINE` (KVM_IRQFD), with the in-kernel
    /// controller.
    pub(super) irq: Option<vmm_sys_util::eventfd::EventFd>,
    /// The queues over time, when asked for (`keep_history`).
    pub(super) history: Option<super::history::History>,
}

/// How the host learns that TX has data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// Each notify is an MMIO exit (the assignment's exit mode).
    Exits,
    /// The host drains TX at every exit and on a timer (`--polling`); Q0
    /// control reads `CTL_POLLING` and the driver does not notify.
    Polling,
    /// A device thread woken by KVM_IOEVENTFD (`--ioeventfd`); Q0 control
    /// reads `CTL_BATCH` and the driver notifies once per batch.
    Thread,
}

impl SimVirtio {
    /// A device in its power-on state; `serving`: how the host learns
    /// that TX has data; `irq`: the eventfd that raises its IRQ line, if
    /// the VM has the in-kernel controller.
    pub fn new(serving: Serving, irq: Option<vmm_sys_util::eventfd::EventFd>) -> SimVirtio {
        SimVirtio {
            polling: serving == Serving::Polling,
            batch: serving == Serving::Thread,
            consumed: 0,
            int_status: 0,
            irq_on: false,
            irq,
            phase: Phase::Start,
            device_status: sv::DEVICE_RESET,
            driver_status: 0,
            queue_selector: 0,
            q_ctl: [0; 2],
            line_len: 0,
            stats: DeviceStats::default(),
            history: None,
        }
    }

    /// From now on, keep the queues at each drain (times from `epoch`).
    pub fn keep_history(&mut self, epoch: std::time::Instant) {
        self.history = Some(super::history::History::new(epoch));
    }

    /// The queues over time, if kept.
    pub fn history(&self) -> Option<&super::history::History> {
        self.history.as_ref()
    }

    /// Whether the host polls TX.
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// Counters so far.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// Whether `gpa` is in the device's MMIO window.
    pub fn claims(gpa: u64) -> bool {
        sv::in_window(gpa)
    }

    pub(super) fn config(&self) -> [u8; reg::END as usize] {
        let mut c = [0u8; reg::END as usize];
        c[0..4].copy_from_slice(&sv::MAGIC_VALUE.to_le_bytes());
        c[4..6].copy_from_slice(&sv::QUEUE_LEN.to_le_bytes());
        c[reg::DEVICE_STATUS as usize] = self.device_status;
        c[reg::DRIVER_STATUS as usize] =
            self.driver_status | if self.irq_on { sv::DRIVER_IRQ as u8 } else { 0 };
        c[reg::QUEUE_SELECTOR as usize] = self.queue_selector;
        let mut q0 = self.q_ctl[0];
        if self.polling {
            q0 |= sv::CTL_POLLING;
        }
        if self.batch {
            q0 |= sv::CTL_BATCH;
        }
        c[reg::Q0_CTL as usize] = q0;
        c[reg::Q1_CTL as usize] = self.q_ctl[1];
        c[reg::INTERRUPT_STATUS as usize] = self.int_status;
        c[reg::INTERRUPT_LINE as usize] = match self.irq {
            Some(_) => sv::IRQ_LINE,
            None => sv::NO_LINE,
        };
        c
    }

    /// What the interrupt bits follow, before a write or a poll.
    pub(super) fn mark(&self) -> (u8, u64, u64) {
        (self.device_status, self.consumed, self.stats.rx_bytes)
    }

    /// After a write or a poll: raises `INT_USED` if TX bytes were taken or
    /// RX bytes put, `INT_CONFIG` if the device status changed since
    /// `before` ([`SimVirtio::mark`]), when the driver takes interrupts.
    pub(super) fn signal(&mut self, before: (u8, u64, u64)) -> Result<(), HostError> {
        let mut bits = 0;
        if self.device_status != before.0 {
            bits |= sv::INT_CONFIG;
        }
        if self.consumed != before.1 || self.stats.rx_bytes != before.2 {
            bits |= sv::INT_USED;
        }
        let Some(fd) = self.irq.as_ref().filter(|_| self.irq_on && bits != 0) else {
            return Ok(());
        };
        self.int_status |= bits;
        self.stats.interrupts += 1;
        fd.write(1).map_err(HostError::from)
    }

    pub(super) fn error(
        &mut self,
        out: &mut dyn Write,
        diag: &mut dyn Write,
        msg: std::fmt::Arguments,
    ) -> Result<(), HostError> {
        self.stats.errors += 1;
        self.device_status |= sv::DEVICE_ERROR;
        host_line(out, diag, format_args!("simvirtio: device error: {msg}"))
    }

    /// An MMIO read at `gpa` (in the window): the configuration bytes
    /// there, 0 past them. The RX control's data bit is refreshed from the
    /// queue first.
    pub fn read(&mut self, mem: &GuestMemoryMmap, gpa: u64, data: &mut [u8]) {
        if let Some(rx) = queue(mem, sv::RX_CONTROL) {
            let pending = sv::check(rx).is_ok() && rx.head != rx.tail;
            self.q_ctl[1] = (self.q_ctl[1] & !sv::CTL_NOTIFY) | u8::from(pending);
        }
        let c = self.config();
        let off = gpa - sv::MMIO_BASE;
        for (i, d) in data.iter_mut().enumerate() {
            *d = c.get(off as usize + i).copied().unwrap_or(0);
        }
    }

    /// An MMIO write at `gpa` (in the window), byte by byte: read-only
    /// bytes and bytes past the registers are ignored (reported once per
    /// access), writable registers act as documented.
    pub fn write(
        &mut self,
        mem: &GuestMemoryMmap,
        gpa: u64,
        data: &[u8],
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        let before = self.mark();
        self.write_regs(mem, gpa, data, out, diag)?;
        self.signal(before)
    }

    fn write_regs(
        &mut self,
        mem: &GuestMemoryMmap,
        gpa: u64,
        data: &[u8],
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        let off = gpa - sv::MMIO_BASE;
        if let Some(bad) = (0..data.len() as u64)
            .map(|i| off + i)
            .find(|&o| !reg::writable(o))
        {
            host_line(
                out,
                diag,
                format_args!(
                    "simvirtio: write to read-only {} (offset {bad:#x}) ignored",
                    reg::name(bad)
                ),
            )?;
        }
        for (i, &v) in data.iter().enumerate() {
            match off + i as u64 {
                reg::DRIVER_STATUS => self.driver_write(mem, v, out, diag)?,
                reg::QUEUE_SELECTOR => {
                    if v <= 1 {
                        self.queue_selector = v;
                    } else {
                        self.error(
                            out,
                            diag,
                            format_args!("queue selector {v} does not exist (0 = TX, 1 = RX)"),
                        )?;
                    }
                }
                reg::Q0_CTL => {
                    if v & sv::CTL_NOTIFY != 0 {
                        self.stats.notifies += 1;
                        self.drain(mem, out, diag)?;
                    }
                }
                reg::Q1_CTL => {
                    // the driver acknowledges RX data: nothing to do, the
                    // data bit follows the queue
                }
                reg::INTERRUPT_ACK => self.int_status &= !v,
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn driver_write(
        &mut self,
        mem: &GuestMemoryMmap,
        v: u8,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        if v == sv::DRIVER_RESET_REG {
            self.reset(mem, true);
            self.phase = Phase::Start;
            return Ok(());
        }
        if self.device_status & sv::DEVICE_ERROR != 0 {
            return Ok(());
        }
        // DRIVER_IRQ rides along with any status: interrupts from now on
        let (raw, irq) = (v, u16::from(v) & sv::DRIVER_IRQ != 0);
        let v = v & !(sv::DRIVER_IRQ as u8);
        if irq && matches!(u16::from(v), sv::DRIVER_ACK | sv::DRIVER | sv::DRIVER_OK) {
            self.irq_on = true;
        }
        match u16::from(v) {
            sv::DRIVER_ACK | sv::DRIVER => self.driver_status = v,
            sv::DRIVER_OK if self.phase == Phase::Config => {
                self.driver_status = v;
                self.phase = Phase::Ready;
                self.device_status = sv::DEVICE_READY;
            }
            sv::DRIVER_OK => {
                self.driver_status = v;
                self.error(
                    out,
                    diag,
                    format_args!("DRIVER_OK before the device was configured (send 'R', DRIVER_ACK, 'C' first)"),
                )?;
            }
            _ => self.error(
                out,
                diag,
                format_args!("driver status {raw:#x} is not DRIVER_ACK, DRIVER, DRIVER_OK or DRIVER_RESET (0x80)"),
            )?,
        }
        Ok(())
    }

    /// Back to DEVICE_RESET: queues emptied, error cleared, the device off
    /// the table. `driver`: the driver asked (DRIVER_RESET), so TX is
    /// emptied too.
    pub(super) fn reset(&mut self, mem: &GuestMemoryMmap, driver: bool) {
        self.int_status = 0;
        self.irq_on = false;
        self.device_status = sv::DEVICE_RESET;
        self.driver_status = 0;
        self.queue_selector = 0;
        self.q_ctl = [0; 2];
        self.line_len = 0;
        let zero = QueueControl::default();
        set_queue(mem, sv::RX_CONTROL, zero);
        if driver {
            set_queue(mem, sv::TX_CONTROL, zero);
        }
        self.table_remove(mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::simvirtio::memory::{rd, table};
    use vm_memory::{Bytes, GuestAddress};

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    fn push(mem: &GuestMemoryMmap, bytes: &[u8]) {
        let mut c = queue(mem, sv::TX_CONTROL).unwrap();
        for &b in bytes {
            let (slot, head) = sv::push_slot(c).unwrap();
            mem.write_obj(b, GuestAddress(sv::TX_BUFFER + u64::from(slot)))
                .unwrap();
            c.head = head;
        }
        mem.write_obj(c.head, GuestAddress(sv::TX_CONTROL)).unwrap();
    }

    /// A driver write of `bytes` at config offset `off`.
    fn wr(
        d: &mut SimVirtio,
        m: &GuestMemoryMmap,
        off: u64,
        bytes: &[u8],
        out: &mut Vec<u8>,
        diag: &mut Vec<u8>,
    ) {
        d.write(m, sv::MMIO_BASE + off, bytes, out, diag).unwrap();
    }

    fn notify(d: &mut SimVirtio, m: &GuestMemoryMmap, out: &mut Vec<u8>, diag: &mut Vec<u8>) {
        wr(d, m, reg::Q0_CTL, &[sv::CTL_NOTIFY], out, diag);
    }

    fn status(d: &mut SimVirtio, m: &GuestMemoryMmap) -> u8 {
        let mut b = [0u8];
        d.read(m, sv::MMIO_BASE + reg::DEVICE_STATUS, &mut b);
        b[0]
    }

    #[test]
    fn the_protocol_end_to_end() {
        let m = mem();
        let mut d = SimVirtio::new(Serving::Exits, None);
        let (mut out, mut diag) = (Vec::new(), Vec::new());
        let mut magic = [0u8; 4];
        d.read(&m, sv::MMIO_BASE, &mut magic);
        assert_eq!(u32::from_le_bytes(magic), sv::MAGIC_VALUE);
        push(&m, b"R");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(status(&mut d, &m), sv::DEVICE_RESET);
        wr(&mut d, &m, reg::DRIVER_STATUS, &[0], &mut out, &mut diag);
        push(&m, b"C");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(status(&mut d, &m), sv::DEVICE_CONFIG);
        let (count, a) = table(&m).unwrap();
        assert_eq!((count, a[0]), (1, sv::MMIO_BASE));
        wr(&mut d, &m, reg::DRIVER_STATUS, &[4], &mut out, &mut diag);
        assert_eq!(status(&mut d, &m), sv::DEVICE_READY);
        push(&m, b"Ana are mere\n");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(out, b"Ana are mere\n");
        assert_eq!(diag, b"");
        let rx = queue(&m, sv::RX_CONTROL).unwrap();
        assert_eq!(sv::used(rx), 7);
        let mut got = Vec::new();
        for i in 0..7 {
            got.push(rd::<u8>(&m, sv::RX_BUFFER + i).unwrap());
        }
        assert_eq!(got, b"ack 12\n");
        let mut ctl = [0u8];
        d.read(&m, sv::MMIO_BASE + reg::Q1_CTL, &mut ctl);
        assert_eq!(ctl[0] & sv::CTL_NOTIFY, sv::CTL_NOTIFY);
        // DRIVER_RESET takes the device off the table
        wr(&mut d, &m, reg::DRIVER_STATUS, &[0x80], &mut out, &mut diag);
        assert_eq!(table(&m).unwrap().0, 0);
        assert_eq!(d.stats().errors, 0);
    }

    /// A driver that opts in (DRIVER_IRQ) gets INT_CONFIG when the device
    /// status changes and INT_USED when TX is taken or RX filled, each an
    /// eventfd write; ACK clears bits; a reset forgets the opt-in; a
    /// driver that does not opt in gets none.
    #[test]
    fn q0_control_tells_the_driver_how_to_notify() {
        let q0 = |s| SimVirtio::new(s, None).config()[reg::Q0_CTL as usize];
        assert_eq!(q0(Serving::Exits), 0);
        assert_eq!(q0(Serving::Polling), sv::CTL_POLLING);
        assert_eq!(q0(Serving::Thread), sv::CTL_BATCH);
    }

    #[test]
    fn interrupts_follow_the_queues_and_the_status_for_a_driver_that_asked() {
        use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
        let m = mem();
        let fd = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut d = SimVirtio::new(Serving::Exits, Some(fd.try_clone().unwrap()));
        let (mut out, mut diag) = (Vec::new(), Vec::new());
        let byte = |d: &mut SimVirtio, off| {
            let mut b = [0u8];
            d.read(&m, sv::MMIO_BASE + off, &mut b);
            b[0]
        };
        assert_eq!(byte(&mut d, reg::INTERRUPT_LINE), sv::IRQ_LINE);
        assert_eq!(
            SimVirtio::new(Serving::Exits, None).config()[reg::INTERRUPT_LINE as usize],
            sv::NO_LINE
        );
        push(&m, b"R");
        notify(&mut d, &m, &mut out, &mut diag);
        assert!(fd.read().is_err(), "no opt-in yet: no interrupt");
        let ack_irq = (sv::DRIVER_ACK | sv::DRIVER_IRQ) as u8;
        wr(
            &mut d,
            &m,
            reg::DRIVER_STATUS,
            &[ack_irq],
            &mut out,
            &mut diag,
        );
        assert_eq!(byte(&mut d, reg::DRIVER_STATUS), ack_irq);
        push(&m, b"C");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(fd.read().unwrap(), 1);
        assert_eq!(
            byte(&mut d, reg::INTERRUPT_STATUS),
            sv::INT_CONFIG | sv::INT_USED
        );
        wr(
            &mut d,
            &m,
            reg::INTERRUPT_ACK,
            &[sv::INT_CONFIG],
            &mut out,
            &mut diag,
        );
        assert_eq!(byte(&mut d, reg::INTERRUPT_STATUS), sv::INT_USED);
        wr(&mut d, &m, reg::INTERRUPT_ACK, &[0xff], &mut out, &mut diag);
        assert_eq!(byte(&mut d, reg::INTERRUPT_STATUS), 0);
        wr(
            &mut d,
            &m,
            reg::DRIVER_STATUS,
            &[(sv::DRIVER_OK | sv::DRIVER_IRQ) as u8],
            &mut out,
            &mut diag,
        );
        assert_eq!(status(&mut d, &m), sv::DEVICE_READY);
        assert_eq!(fd.read().unwrap(), 1, "ready: a config change");
        push(&m, b"hi\n");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(
            fd.read().unwrap(),
            1,
            "TX taken and RX filled: one interrupt"
        );
        assert_eq!(
            byte(&mut d, reg::INTERRUPT_STATUS) & sv::INT_USED,
            sv::INT_USED
        );
        assert_eq!(d.stats().interrupts, 3);
        // DRIVER_RESET forgets the opt-in
        wr(&mut d, &m, reg::DRIVER_STATUS, &[0x80], &mut out, &mut diag);
        assert_eq!(byte(&mut d, reg::INTERRUPT_STATUS), 0);
        push(&m, b"R");
        notify(&mut d, &m, &mut out, &mut diag);
        assert!(fd.read().is_err());
        assert_eq!(diag, b"");
    }

    #[test]
    fn out_of_order_steps_are_device_errors() {
        let m = mem();
        let mut d = SimVirtio::new(Serving::Exits, None);
        let (mut out, mut diag) = (Vec::new(), Vec::new());
        push(&m, b"C");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(status(&mut d, &m), sv::DEVICE_ERROR);
        let diag_s = String::from_utf8(diag.clone()).unwrap();
        assert_eq!(
            diag_s,
            "host: simvirtio: device error: 'C' before 'R': the device must be reset first\n"
        );
        // ignored until DRIVER_RESET, then usable again
        push(&m, b"R");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(status(&mut d, &m), sv::DEVICE_ERROR);
        wr(&mut d, &m, reg::DRIVER_STATUS, &[0x80], &mut out, &mut diag);
        push(&m, b"R");
        notify(&mut d, &m, &mut out, &mut diag);
        assert_eq!(status(&mut d, &m), sv::DEVICE_RESET);
    }

    #[test]
    fn corrupt_indices_and_bad_selectors_are_reported() {
        let m = mem();
        let mut d = SimVirtio::new(Serving::Exits, None);
        let (mut out, mut diag) = (Vec::new(), Vec::new());
        wr(&mut d, &m, reg::QUEUE_SELECTOR, &[7], &mut out, &mut diag);
        assert!(String::from_utf8_lossy(&diag).contains("queue selector 7 does not exist"));
        wr(&mut d, &m, reg::DRIVER_STATUS, &[0x80], &mut out, &mut diag);
        set_queue(
            &m,
            sv::TX_CONTROL,
            QueueControl {
                head: 9999,
                tail: 0,
            },
        );
        notify(&mut d, &m, &mut out, &mut diag);
        assert!(
            String::from_utf8_lossy(&diag)
                .contains("TX queue indices are corrupt: head 9999 tail 0")
        );
        let mut ctl = [0u8];
        d.read(&m, sv::MMIO_BASE + reg::Q0_CTL, &mut ctl);
        assert_eq!(ctl[0] & sv::CTL_ERROR, sv::CTL_ERROR);
        // writes to read-only registers are ignored and said so
        wr(&mut d, &m, 0, &[1, 2, 3, 4], &mut out, &mut diag);
        let mut magic = [0u8; 4];
        d.read(&m, sv::MMIO_BASE, &mut magic);
        assert_eq!(u32::from_le_bytes(magic), sv::MAGIC_VALUE);
        assert!(
            String::from_utf8_lossy(&diag)
                .contains("write to read-only magic (offset 0x0) ignored")
        );
    }
}
