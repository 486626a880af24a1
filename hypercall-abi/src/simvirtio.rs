//! SIMVIRTIO: a small virtio-like paravirtual device (long mode).
//!
//! - Configuration space: [`Config`], 14 bytes memory-mapped at
//!   [`MMIO_BASE`]. The host emulates it: every access is an MMIO exit.
//! - Interrupts, opt-in: a driver that writes [`DRIVER_IRQ`] with its
//!   driver status gets an interrupt on the IRQ line the `interrupt line`
//!   register names when TX bytes were consumed or RX data arrived
//!   ([`INT_USED`]) and when the device status changed ([`INT_CONFIG`]);
//!   it reads `interrupt status` and clears bits by writing them to
//!   `interrupt ack` (virtio-mmio's InterruptStatus and InterruptACK). A
//!   driver that does not opt in sees the device as before.
//! - Two queues in guest memory at fixed addresses: TX (queue 0, guest to
//!   host) and RX (queue 1, host to guest). Each is a circular buffer of
//!   [`QUEUE_LEN`] bytes with a [`QueueControl`] {head, tail}: the producer
//!   writes `head`, the consumer writes `tail`. Empty: head == tail; full:
//!   the next head would equal tail (so a queue holds `QUEUE_LEN - 1` bytes).
//! - The device table [`DeviceTable`] at [`DEVICE_TABLE`] lists configured
//!   devices by their MMIO address.
//!
//! docs/abi.md describes the protocol and every register's read and write
//! results.

use core::mem::{offset_of, size_of};

/// Guest-physical base of the configuration space (above the largest RAM,
/// below KVM's TSS pages: always an MMIO exit).
pub const MMIO_BASE: u64 = 0xd000_0000;
/// The device's MMIO window; offsets past [`Config`] read 0, writes ignored.
pub const MMIO_SIZE: u64 = 0x1000;

/// Whether guest-physical address `gpa` is in the device's MMIO window.
pub const fn in_window(gpa: u64) -> bool {
    gpa >= MMIO_BASE && gpa < MMIO_BASE + MMIO_SIZE
}
/// `magic` register value ("virt").
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// Bytes in each queue's buffer (`max queue len`).
pub const QUEUE_LEN: u16 = 256;

/// Device status: reset (after 'R' or DRIVER_RESET).
pub const DEVICE_RESET: u8 = 0x0;
/// Device status: configured (after DRIVER_ACK and 'C'); listed in the table.
pub const DEVICE_CONFIG: u8 = 0x2;
/// Device status: ready for data (after DRIVER_OK).
pub const DEVICE_READY: u8 = 0x4;
/// Device status bit: the device saw a protocol error and ignores the TX
/// queue until the driver writes DRIVER_RESET.
pub const DEVICE_ERROR: u8 = 0x80;

/// Driver status values (the assignment's 16-bit values).
pub const DRIVER_ACK: u16 = 0x0;
/// Driver status: driver loaded (optional step).
pub const DRIVER: u16 = 0x2;
/// Driver status: driver ready.
pub const DRIVER_OK: u16 = 0x4;
/// Driver status: reset the device. Wider than the 8-bit register: it is
/// carried as [`DRIVER_RESET_REG`], its high byte (see [`driver_reg`]).
pub const DRIVER_RESET: u16 = 0x8000;
/// What the driver writes to the 8-bit `driver status` register for
/// [`DRIVER_RESET`].
pub const DRIVER_RESET_REG: u8 = (DRIVER_RESET >> 8) as u8;

/// Driver status bit: the driver takes interrupts (with DRIVER_ACK, DRIVER
/// or DRIVER_OK; kept until DRIVER_RESET). Without it the device raises
/// none.
pub const DRIVER_IRQ: u16 = 0x10;

/// Interrupt status bit: the device consumed TX bytes or put data on RX.
pub const INT_USED: u8 = 0x1;
/// Interrupt status bit: the device status changed.
pub const INT_CONFIG: u8 = 0x2;
/// `interrupt line` when the VM has no in-kernel interrupt controller:
/// the device can raise no interrupt.
pub const NO_LINE: u8 = 0xff;
/// The IRQ line (GSI) the device raises with the in-kernel controller: an
/// IOAPIC pin the guest routes (and the slave PIC's IRQ 11).
pub const IRQ_LINE: u8 = 11;

/// The 8-bit register value for a 16-bit driver status: the low byte, or
/// the high byte for DRIVER_RESET (the only value with one).
pub const fn driver_reg(status: u16) -> u8 {
    if status > 0xff {
        (status >> 8) as u8
    } else {
        status as u8
    }
}

/// TX command byte (before the device is ready): reset the device.
pub const CMD_RESET: u8 = b'R';
/// TX command byte: configure the device (after DRIVER_ACK).
pub const CMD_CONFIG: u8 = b'C';

/// Queue control register bit, write: notify the device (exit mode);
/// read: the queue holds data.
pub const CTL_NOTIFY: u8 = 0x01;
/// Queue control bit, read only: the host polls TX (`--polling`), the
/// driver should not notify.
pub const CTL_POLLING: u8 = 0x40;
/// Queue control bit, read only: a device thread serves the queue
/// (`--ioeventfd`), so the driver notifies once per batch (after the last
/// byte it sends, and when TX is full) instead of once per byte, as virtio
/// drivers kick once after adding several buffers.
pub const CTL_BATCH: u8 = 0x20;
/// Queue control bit, read only: the queue's indices were corrupt.
pub const CTL_ERROR: u8 = 0x80;

/// The configuration space, as the table in the assignment.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, packed)]
pub struct Config {
    /// R: [`MAGIC_VALUE`].
    pub magic: u32,
    /// R: length of the queue the selector picks ([`QUEUE_LEN`]).
    pub max_queue_len: u16,
    /// R: `DEVICE_*`, plus [`DEVICE_ERROR`].
    pub device_status: u8,
    /// R/W: `DRIVER_*` ([`driver_reg`]).
    pub driver_status: u8,
    /// R/W: 0 (TX) or 1 (RX); other values are a device error.
    pub queue_selector: u8,
    /// R/W: TX control (`CTL_*`).
    pub q0_ctl: u8,
    /// R/W: RX control (`CTL_*`).
    pub q1_ctl: u8,
    /// R: `INT_*` bits raised and not acknowledged.
    pub interrupt_status: u8,
    /// W: the `INT_*` bits to clear (reads 0).
    pub interrupt_ack: u8,
    /// R: the IRQ line the device raises ([`IRQ_LINE`]), or [`NO_LINE`].
    pub interrupt_line: u8,
}

/// Register offsets in [`Config`].
pub mod reg {
    /// magic (4 bytes).
    pub const MAGIC: u64 = 0;
    /// max queue len (2 bytes).
    pub const MAX_QUEUE_LEN: u64 = 4;
    /// device status.
    pub const DEVICE_STATUS: u64 = 6;
    /// driver status.
    pub const DRIVER_STATUS: u64 = 7;
    /// queue selector.
    pub const QUEUE_SELECTOR: u64 = 8;
    /// Q0 (TX) control.
    pub const Q0_CTL: u64 = 9;
    /// Q1 (RX) control.
    pub const Q1_CTL: u64 = 10;
    /// Interrupt status.
    pub const INTERRUPT_STATUS: u64 = 11;
    /// Interrupt acknowledge.
    pub const INTERRUPT_ACK: u64 = 12;
    /// Interrupt line.
    pub const INTERRUPT_LINE: u64 = 13;
    /// Size of the configuration space.
    pub const END: u64 = 14;

    /// Each register's first offset, its name for messages and its short
    /// name for tables (`sv.<register>`).
    const NAMES: [(u64, &str, &str); 10] = [
        (MAGIC, "magic", "sv.magic"),
        (MAX_QUEUE_LEN, "max queue len", "sv.max_queue_len"),
        (DEVICE_STATUS, "device status", "sv.device_status"),
        (DRIVER_STATUS, "driver status", "sv.driver_status"),
        (QUEUE_SELECTOR, "queue selector", "sv.queue_selector"),
        (Q0_CTL, "Q0/TX control", "sv.q0_ctl"),
        (Q1_CTL, "Q1/RX control", "sv.q1_ctl"),
        (INTERRUPT_STATUS, "interrupt status", "sv.int_status"),
        (INTERRUPT_ACK, "interrupt ack", "sv.int_ack"),
        (INTERRUPT_LINE, "interrupt line", "sv.int_line"),
    ];

    /// The names of the register that holds the byte at `offset`.
    const fn names(offset: u64) -> (&'static str, &'static str) {
        if offset >= END {
            return ("(no register)", "sv.(none)");
        }
        let mut i = NAMES.len() - 1;
        while NAMES[i].0 > offset {
            i -= 1;
        }
        (NAMES[i].1, NAMES[i].2)
    }

    /// The name of the register at `offset`, for messages.
    pub const fn name(offset: u64) -> &'static str {
        names(offset).0
    }

    /// A short name for tables: `sv.<register>`.
    pub const fn ident(offset: u64) -> &'static str {
        names(offset).1
    }

    /// Whether the driver may write the byte at `offset`.
    pub const fn writable(offset: u64) -> bool {
        matches!(offset, 7..=10 | 12)
    }
}

/// Producer and consumer indices of a queue, in guest memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct QueueControl {
    /// Next slot the producer writes.
    pub head: u32,
    /// Next slot the consumer reads.
    pub tail: u32,
}

/// The device table: configured devices by MMIO address.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct DeviceTable {
    /// Entries used.
    pub count: u16,
    /// MMIO base of each device.
    pub device_addresses: [u64; 10],
}

/// Guest-physical address of the device table.
pub const DEVICE_TABLE: u64 = 0x9000;
/// TX queue control.
pub const TX_CONTROL: u64 = 0x9100;
/// RX queue control.
pub const RX_CONTROL: u64 = 0x9108;
/// TX queue buffer ([`QUEUE_LEN`] bytes).
pub const TX_BUFFER: u64 = 0x9200;
/// RX queue buffer.
pub const RX_BUFFER: u64 = TX_BUFFER + QUEUE_LEN as u64;

/// Why a queue operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// Push on a full queue: nothing was written.
    Full,
    /// Pop on an empty queue.
    Empty,
    /// head or tail is not below the queue length.
    Corrupt,
}

/// The slot after `i`.
pub const fn next(i: u32) -> u32 {
    (i + 1) % QUEUE_LEN as u32
}

/// Checks a queue's indices.
pub const fn check(c: QueueControl) -> Result<(), QueueError> {
    if c.head >= QUEUE_LEN as u32 || c.tail >= QUEUE_LEN as u32 {
        Err(QueueError::Corrupt)
    } else {
        Ok(())
    }
}

/// Bytes in the queue.
pub const fn used(c: QueueControl) -> u32 {
    (c.head + QUEUE_LEN as u32 - c.tail) % QUEUE_LEN as u32
}

/// Push: where to write the byte and the new head, or why not.
pub const fn push_slot(c: QueueControl) -> Result<(u32, u32), QueueError> {
    if let Err(e) = check(c) {
        return Err(e);
    }
    if next(c.head) == c.tail {
        return Err(QueueError::Full);
    }
    Ok((c.head, next(c.head)))
}

/// Pop: where to read the byte and the new tail, or why not.
pub const fn pop_slot(c: QueueControl) -> Result<(u32, u32), QueueError> {
    if let Err(e) = check(c) {
        return Err(e);
    }
    if c.head == c.tail {
        return Err(QueueError::Empty);
    }
    Ok((c.tail, next(c.tail)))
}

const _: () = {
    assert!(size_of::<Config>() == reg::END as usize);
    assert!(offset_of!(Config, magic) == reg::MAGIC as usize);
    assert!(offset_of!(Config, max_queue_len) == reg::MAX_QUEUE_LEN as usize);
    assert!(offset_of!(Config, device_status) == reg::DEVICE_STATUS as usize);
    assert!(offset_of!(Config, driver_status) == reg::DRIVER_STATUS as usize);
    assert!(offset_of!(Config, queue_selector) == reg::QUEUE_SELECTOR as usize);
    assert!(offset_of!(Config, q0_ctl) == reg::Q0_CTL as usize);
    assert!(offset_of!(Config, q1_ctl) == reg::Q1_CTL as usize);
    assert!(offset_of!(Config, interrupt_status) == reg::INTERRUPT_STATUS as usize);
    assert!(offset_of!(Config, interrupt_ack) == reg::INTERRUPT_ACK as usize);
    assert!(offset_of!(Config, interrupt_line) == reg::INTERRUPT_LINE as usize);
    // DRIVER_IRQ fits the 8-bit register beside every other status
    assert!(driver_reg(DRIVER_OK | DRIVER_IRQ) == 0x14);
    assert!(size_of::<QueueControl>() == 8);
    assert!(offset_of!(QueueControl, tail) == 4);
    assert!(size_of::<DeviceTable>() == 88);
    assert!(offset_of!(DeviceTable, device_addresses) == 8);
    // the queue area sits in the free page range below the stack, after
    // the page tables, and the buffers do not overlap
    assert!(DEVICE_TABLE >= crate::layout::PAGE_TABLES_END);
    assert!(DEVICE_TABLE + size_of::<DeviceTable>() as u64 <= TX_CONTROL);
    assert!(RX_CONTROL + 8 <= TX_BUFFER);
    assert!(RX_BUFFER + QUEUE_LEN as u64 <= crate::layout::STACK_BOTTOM);
    assert!(MMIO_BASE >= crate::layout::MAX_MEM);
    assert!(driver_reg(DRIVER_RESET) == 0x80);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_until_full_then_pop_until_empty_with_wrap_around() {
        // start near the end so the indices wrap
        let mut c = QueueControl {
            head: QUEUE_LEN as u32 - 3,
            tail: QUEUE_LEN as u32 - 3,
        };
        let mut pushed = 0;
        while let Ok((slot, head)) = push_slot(c) {
            assert_eq!(slot, c.head);
            c.head = head;
            pushed += 1;
        }
        assert_eq!(pushed, QUEUE_LEN as u32 - 1);
        assert_eq!(push_slot(c), Err(QueueError::Full));
        assert_eq!(used(c), QUEUE_LEN as u32 - 1);
        assert!(c.head < c.tail, "head wrapped: {c:?}");
        let mut popped = 0;
        while let Ok((_, tail)) = pop_slot(c) {
            c.tail = tail;
            popped += 1;
        }
        assert_eq!(popped, pushed);
        assert_eq!(pop_slot(c), Err(QueueError::Empty));
    }

    #[test]
    fn corrupt_indices_are_refused() {
        let c = QueueControl {
            head: QUEUE_LEN as u32,
            tail: 0,
        };
        assert_eq!(push_slot(c), Err(QueueError::Corrupt));
        assert_eq!(pop_slot(c), Err(QueueError::Corrupt));
        let c = QueueControl {
            head: 0,
            tail: u32::MAX,
        };
        assert_eq!(pop_slot(c), Err(QueueError::Corrupt));
    }

    #[test]
    fn every_config_byte_has_its_register_name() {
        let names: [&str; 15] = core::array::from_fn(|o| reg::ident(o as u64));
        assert_eq!(
            names,
            [
                "sv.magic",
                "sv.magic",
                "sv.magic",
                "sv.magic",
                "sv.max_queue_len",
                "sv.max_queue_len",
                "sv.device_status",
                "sv.driver_status",
                "sv.queue_selector",
                "sv.q0_ctl",
                "sv.q1_ctl",
                "sv.int_status",
                "sv.int_ack",
                "sv.int_line",
                "sv.(none)",
            ]
        );
        assert_eq!(reg::name(reg::Q0_CTL), "Q0/TX control");
        assert_eq!(reg::name(reg::END), "(no register)");
    }

    #[test]
    fn driver_reset_is_carried_in_the_high_byte() {
        assert_eq!(driver_reg(DRIVER_RESET), DRIVER_RESET_REG);
        assert_eq!(driver_reg(DRIVER_OK), 4);
        assert_eq!(driver_reg(DRIVER_ACK), 0);
    }
}
