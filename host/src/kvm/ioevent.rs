//! KVM_IOEVENTFD: a guest write to an address KVM catches in the kernel
//! and turns into an eventfd signal, with no exit to user space (the
//! SIMVIRTIO notify register in `--ioeventfd` mode, the benchmark's port).

use super::error::KvmError;
use super::vm::VmObject;
use crate::trace::{Call, Tracer, record};
use kvm_ioctls::{IoEventAddress, NoDatamatch};
use std::os::fd::AsRawFd;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

impl VmObject {
    /// An eventfd that every guest write to MMIO `addr` signals (any
    /// length and value), instead of an MMIO exit.
    pub fn ioeventfd(&self, addr: u64, trace: &mut Option<Tracer>) -> Result<EventFd, KvmError> {
        self.ioeventfd_at(IoEventAddress::Mmio(addr), trace)
    }

    /// The same for an `out` to I/O port `port` (the benchmark's loop, as
    /// irq_floor's `ioeventfd_pio_ns`).
    pub fn ioeventfd_pio(
        &self,
        port: u16,
        trace: &mut Option<Tracer>,
    ) -> Result<EventFd, KvmError> {
        self.ioeventfd_at(IoEventAddress::Pio(u64::from(port)), trace)
    }

    fn ioeventfd_at(
        &self,
        at: IoEventAddress,
        trace: &mut Option<Tracer>,
    ) -> Result<EventFd, KvmError> {
        let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| KvmError::Write(e.to_string()))?;
        self.fd()
            .register_ioevent(&fd, &at, NoDatamatch)
            .map_err(KvmError::ioctl("KVM_IOEVENTFD"))?;
        record(trace, || {
            let what = match at {
                IoEventAddress::Mmio(a) => format!("mmio {a:#x}"),
                IoEventAddress::Pio(p) => format!("port {p:#x}"),
            };
            Call::ioctl(
                format!("vm {}", self.fd().as_raw_fd()),
                "KVM_IOEVENTFD",
                format!("{what}, any length and value, eventfd {}", fd.as_raw_fd()),
                "0".into(),
                "a guest write there signals the eventfd in the kernel: no exit",
            )
        });
        Ok(fd)
    }
}
