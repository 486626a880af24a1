//! What the guest's I/O and MMIO exits reach: the [`bus`] that the exit
//! loop calls, the [`hypercall`] handlers behind its ports and the
//! [`simvirtio`] device behind its MMIO window.

pub mod bus;
pub mod hypercall;
pub mod simvirtio;

pub use bus::{Bus, Ctx};
pub use simvirtio::Serving;
