//! The device's queues and table in guest memory, read and written field
//! by field through vm-memory's checked accessors.

use hypercall_abi::simvirtio::{self as sv, QueueControl};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub(super) fn rd<T: vm_memory::ByteValued>(mem: &GuestMemoryMmap, at: u64) -> Option<T> {
    mem.read_obj(GuestAddress(at)).ok()
}

/// A queue's indices from guest memory (field by field: the guest may
/// change them at any time, each read is checked before use).
pub(super) fn queue(mem: &GuestMemoryMmap, at: u64) -> Option<QueueControl> {
    Some(QueueControl {
        head: rd(mem, at)?,
        tail: rd(mem, at + 4)?,
    })
}

pub(super) fn set_queue(mem: &GuestMemoryMmap, at: u64, c: QueueControl) {
    let _ = mem.write_obj(c.head, GuestAddress(at));
    let _ = mem.write_obj(c.tail, GuestAddress(at + 4));
}

pub(super) const TABLE_ADDRS: u64 = core::mem::offset_of!(sv::DeviceTable, device_addresses) as u64;

/// The device table's count and entries (the count as the guest left it).
pub(super) fn table(mem: &GuestMemoryMmap) -> Option<(u16, [u64; 10])> {
    let count: u16 = rd(mem, sv::DEVICE_TABLE)?;
    let mut a = [0u64; 10];
    for (i, e) in a.iter_mut().enumerate() {
        *e = rd(mem, sv::DEVICE_TABLE + TABLE_ADDRS + 8 * i as u64)?;
    }
    Some((count, a))
}

pub(super) fn set_table(mem: &GuestMemoryMmap, count: u16, a: &[u64; 10]) -> Result<(), String> {
    mem.write_obj(count, GuestAddress(sv::DEVICE_TABLE))
        .map_err(|e| e.to_string())?;
    for (i, e) in a.iter().enumerate() {
        mem.write_obj(
            *e,
            GuestAddress(sv::DEVICE_TABLE + TABLE_ADDRS + 8 * i as u64),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
