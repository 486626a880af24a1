//! The SIMVIRTIO device model (hypercall_abi::simvirtio): configuration
//! space over MMIO exits, TX/RX queues in guest memory, the protocol state
//! machine and the device table.
//!
//! The guest owns its memory, so every queue index the device reads is
//! checked; a protocol or queue error prints one "host: simvirtio: device
//! error: ..." line, sets DEVICE_ERROR (and CTL_ERROR on a corrupt queue) for
//! the guest to see, and the device then ignores TX until DRIVER_RESET.

mod device;
pub mod history;
mod memory;
mod saved;
mod transfer;

pub use device::{DeviceStats, Serving, SimVirtio};
