//! The SIMVIRTIO driver (hypercall_abi::simvirtio): probe, the protocol's
//! handshake, sending on TX and receiving on RX.
//!
//! Register accesses are MMIO exits. Queue accesses are plain guest memory
//! (no exit). In exit mode every pushed byte is followed by a notify (one
//! exit per byte); when the device reports CTL_POLLING the driver never
//! notifies and the host drains TX on its own; when it reports CTL_BATCH
//! (a device thread serves it: `--ioeventfd`), [`Device::send`] notifies
//! once after its last byte and once each time TX fills up.

use core::ptr::{read_volatile, write_volatile};
use hypercall_abi::simvirtio::{self as sv, QueueControl, QueueError, reg};

/// Why a driver operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No device: the magic register read this value.
    NoDevice(u32),
    /// The device reports an error (device status with DEVICE_ERROR).
    Device(u8),
    /// The device did not reach this status (it reports the second).
    State {
        /// Expected device status.
        want: u8,
        /// What it reports.
        got: u8,
    },
    /// A queue's indices are corrupt.
    Queue(QueueError),
}

/// Polls of an empty RX or a full TX between two status reads.
const SPINS: u32 = 1000;
/// Status reads while waiting for the device to act on a command.
const STATUS_READS: u32 = 100_000;

/// The device at `simvirtio::MMIO_BASE`.
pub struct Device {
    polling: bool,
    batch: bool,
    irq: bool,
}

/// The device's `INT_*` bits raised and not acknowledged (one MMIO exit).
pub fn interrupt_status() -> u8 {
    read8(reg::INTERRUPT_STATUS)
}

/// Clears `bits` of the interrupt status (one MMIO exit).
pub fn ack(bits: u8) {
    write8(reg::INTERRUPT_ACK, bits);
}

fn reg_ptr(off: u64) -> *mut u8 {
    (sv::MMIO_BASE + off) as *mut u8
}

/// Reads a configuration byte (one MMIO exit).
pub fn read8(off: u64) -> u8 {
    // SAFETY: the host maps the device window; the access is an MMIO exit
    // that the host answers.
    unsafe { read_volatile(reg_ptr(off)) }
}

/// Writes a configuration byte (one MMIO exit).
pub fn write8(off: u64, v: u8) {
    // SAFETY: as in `read8`.
    unsafe { write_volatile(reg_ptr(off), v) }
}

fn read32(off: u64) -> u32 {
    // SAFETY: as in `read8`; the offset is 4-byte aligned.
    unsafe { read_volatile(reg_ptr(off).cast::<u32>()) }
}

fn control(at: u64) -> QueueControl {
    // SAFETY: the queue control words are in identity-mapped RAM reserved
    // by the ABI for the device.
    unsafe { read_volatile(at as *const QueueControl) }
}

fn set_index(at: u64, v: u32) {
    // SAFETY: as in `control`.
    unsafe { write_volatile(at as *mut u32, v) }
}

/// Writes raw queue indices, for programs that test the device's checks.
pub fn set_tx_control(c: QueueControl) {
    set_index(sv::TX_CONTROL, c.head);
    set_index(sv::TX_CONTROL + 4, c.tail);
}

impl Device {
    /// Finds the device: checks the magic and reads the notification mode.
    pub fn probe() -> Result<Device, Error> {
        let magic = read32(reg::MAGIC);
        if magic != sv::MAGIC_VALUE {
            return Err(Error::NoDevice(magic));
        }
        let q0 = read8(reg::Q0_CTL);
        Ok(Device {
            polling: q0 & sv::CTL_POLLING != 0,
            batch: q0 & sv::CTL_BATCH != 0,
            irq: false,
        })
    }

    /// The same device with interrupts: the driver writes DRIVER_IRQ with
    /// every status from now on. None when the device has no line (the VM
    /// has no in-kernel controller: `--irqchip kernel`).
    pub fn with_interrupts(self) -> Option<Device> {
        (self.line() != sv::NO_LINE).then_some(Device { irq: true, ..self })
    }

    /// The IRQ line (GSI) the device raises, or `sv::NO_LINE`.
    pub fn line(&self) -> u8 {
        read8(reg::INTERRUPT_LINE)
    }

    /// Whether the host polls (the driver does not notify).
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The device status register.
    pub fn status(&self) -> u8 {
        read8(reg::DEVICE_STATUS)
    }

    /// Writes a driver status (`DRIVER_*`, DRIVER_RESET as its 8-bit form).
    pub fn set_driver_status(&self, v: u16) {
        let v = match self.irq && v != sv::DRIVER_RESET {
            true => v | sv::DRIVER_IRQ,
            false => v,
        };
        write8(reg::DRIVER_STATUS, sv::driver_reg(v));
    }

    /// Tells the device TX has data (exit mode only).
    pub fn notify(&self) {
        if !self.polling {
            write8(reg::Q0_CTL, sv::CTL_NOTIFY);
        }
    }

    /// Waits for device status `want`. In exit mode the notify exit has
    /// served the command before the first read; with `--ioeventfd` a
    /// device thread serves it while the driver reads on, so the status
    /// is read again (each read an exit) up to [`STATUS_READS`] times.
    fn expect(&self, want: u8) -> Result<(), Error> {
        let mut got = self.status();
        for _ in 1..STATUS_READS {
            if got == want || got & sv::DEVICE_ERROR != 0 {
                break;
            }
            core::hint::spin_loop();
            got = self.status();
        }
        match got {
            s if s & sv::DEVICE_ERROR != 0 => Err(Error::Device(s)),
            s if s == want => Ok(()),
            got => Err(Error::State { want, got }),
        }
    }

    /// Whether the driver notifies once per batch (the device reads
    /// CTL_BATCH: a device thread serves TX).
    pub fn batch(&self) -> bool {
        self.batch
    }

    /// Pushes one byte on TX, waiting while the queue is full (in polling
    /// mode the host drains it on its timer; a status read every `SPINS`
    /// polls is an exit at which the host drains too). Notifies, unless
    /// the host polls.
    pub fn push(&self, b: u8) -> Result<(), Error> {
        self.put(b, true)
    }

    /// `push`, with the notify after the byte only if `notify`; a full
    /// queue is notified before the driver waits for room.
    fn put(&self, b: u8, notify: bool) -> Result<(), Error> {
        let mut spins = 0;
        let mut told = notify;
        loop {
            match sv::push_slot(control(sv::TX_CONTROL)) {
                Ok((slot, head)) => {
                    // SAFETY: slot < QUEUE_LEN: inside the TX buffer.
                    unsafe { write_volatile((sv::TX_BUFFER + u64::from(slot)) as *mut u8, b) };
                    set_index(sv::TX_CONTROL, head);
                    if notify {
                        self.notify();
                    }
                    return Ok(());
                }
                Err(QueueError::Full) => {
                    if !told {
                        self.notify();
                        told = true;
                    }
                    if self.wait(&mut spins)? {
                        self.notify();
                    }
                }
                Err(e) => return Err(Error::Queue(e)),
            }
        }
    }

    /// One turn of waiting for the host (room in TX, data in RX): every
    /// `SPINS` turns, a device status read, which is an exit at which the
    /// host also polls. Returns whether it read the status.
    fn wait(&self, spins: &mut u32) -> Result<bool, Error> {
        *spins += 1;
        core::hint::spin_loop();
        if *spins < SPINS {
            return Ok(false);
        }
        *spins = 0;
        match self.status() {
            s if s & sv::DEVICE_ERROR != 0 => Err(Error::Device(s)),
            _ => Ok(true),
        }
    }

    /// Sends `bytes` on TX: a notify per byte in exit mode; with CTL_BATCH
    /// one after the last byte (and one whenever TX fills up), as a virtio
    /// driver kicks once after adding several buffers.
    pub fn send(&self, bytes: &[u8]) -> Result<(), Error> {
        for &b in bytes {
            self.put(b, !self.batch)?;
        }
        if self.batch && !bytes.is_empty() {
            self.notify();
        }
        Ok(())
    }

    /// The handshake: 'R' (device resets), DRIVER_ACK, 'C' (device
    /// configures and lists itself), DRIVER_OK (device ready).
    pub fn init(&self) -> Result<(), Error> {
        self.push(sv::CMD_RESET)?;
        self.expect(sv::DEVICE_RESET)?;
        self.set_driver_status(sv::DRIVER_ACK);
        self.push(sv::CMD_CONFIG)?;
        self.expect(sv::DEVICE_CONFIG)?;
        self.set_driver_status(sv::DRIVER_OK);
        self.expect(sv::DEVICE_READY)
    }

    /// Resets the device (DRIVER_RESET): clears an error and the queues.
    pub fn reset(&self) {
        self.set_driver_status(sv::DRIVER_RESET);
    }

    /// Devices listed in the device table.
    pub fn table_count(&self) -> u16 {
        // SAFETY: the device table is in identity-mapped RAM (ABI).
        unsafe { read_volatile(sv::DEVICE_TABLE as *const u16) }
    }

    /// Receives one line from RX into `buf` (without the newline); waits
    /// for data as `push` waits for room. Returns the length (bytes past
    /// `buf` are dropped).
    pub fn recv_line(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut n = 0;
        let mut spins = 0;
        loop {
            let c = control(sv::RX_CONTROL);
            match sv::pop_slot(c) {
                Ok((slot, tail)) => {
                    // SAFETY: slot < QUEUE_LEN: inside the RX buffer.
                    let b =
                        unsafe { read_volatile((sv::RX_BUFFER + u64::from(slot)) as *const u8) };
                    set_index(sv::RX_CONTROL + 4, tail);
                    if b == b'\n' {
                        return Ok(n.min(buf.len()));
                    }
                    if let Some(d) = buf.get_mut(n) {
                        *d = b;
                    }
                    n += 1;
                }
                Err(QueueError::Empty) if self.irq => {
                    // interrupts off while looking, so that the device's
                    // interrupt cannot come between the look and the hlt
                    crate::interrupts::disable();
                    match sv::pop_slot(control(sv::RX_CONTROL)) {
                        Err(QueueError::Empty) => crate::interrupts::wait(),
                        _ => crate::interrupts::enable(),
                    }
                    if self.status() & sv::DEVICE_ERROR != 0 {
                        return Err(Error::Device(self.status()));
                    }
                }
                Err(QueueError::Empty) => {
                    self.wait(&mut spins)?;
                }
                Err(e) => return Err(Error::Queue(e)),
            }
        }
    }
}

// Run in VMs: `cargo test -p guest-rt` (guest_rt::testing).
#[cfg(test)]
mod tests {
    use crate::abi::simvirtio::{self as sv, QueueControl, QueueError};
    use crate::test;

    const QUEUE_LEN: usize = sv::QUEUE_LEN as usize;

    /// The driver's view of a queue in plain memory: push/pop as
    /// `Device::push` and `recv_line` do, with the ABI's slot math.
    struct Ring {
        c: QueueControl,
        buf: [u8; QUEUE_LEN],
    }

    impl Ring {
        fn push(&mut self, b: u8) -> Result<(), QueueError> {
            let (slot, head) = sv::push_slot(self.c)?;
            self.buf[slot as usize] = b;
            self.c.head = head;
            Ok(())
        }

        fn pop(&mut self) -> Result<u8, QueueError> {
            let (slot, tail) = sv::pop_slot(self.c)?;
            self.c.tail = tail;
            Ok(self.buf[slot as usize])
        }
    }

    #[test]
    fn a_queue_holds_one_less_than_its_length() {
        let mut r = Ring {
            c: QueueControl::default(),
            buf: [0; QUEUE_LEN],
        };
        for i in 0..QUEUE_LEN - 1 {
            r.push(i as u8).unwrap();
        }
        assert_eq!(sv::used(r.c), QUEUE_LEN as u32 - 1);
        assert_eq!(r.push(0xff), Err(QueueError::Full));
        assert_eq!(r.pop(), Ok(0));
        r.push(0xff).unwrap();
        assert_eq!(r.push(0xfe), Err(QueueError::Full));
    }

    #[test]
    fn indices_wrap_around_in_order() {
        let mut r = Ring {
            c: QueueControl {
                head: QUEUE_LEN as u32 - 2,
                tail: QUEUE_LEN as u32 - 2,
            },
            buf: [0; QUEUE_LEN],
        };
        for b in b"wrap" {
            r.push(*b).unwrap();
        }
        assert_eq!(r.c.head, 2, "head wrapped past the end");
        let mut got = [0u8; 4];
        for g in &mut got {
            *g = r.pop().unwrap();
        }
        assert_eq!(&got, b"wrap");
        assert_eq!(r.pop(), Err(QueueError::Empty));
        assert_eq!(sv::used(r.c), 0);
    }

    #[test]
    fn indices_past_the_end_are_corrupt_not_slots() {
        let bad = QueueControl {
            head: QUEUE_LEN as u32,
            tail: 0,
        };
        assert_eq!(sv::push_slot(bad), Err(QueueError::Corrupt));
        let bad = QueueControl {
            head: 0,
            tail: u32::MAX,
        };
        assert_eq!(sv::pop_slot(bad), Err(QueueError::Corrupt));
    }
}
