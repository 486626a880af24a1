//! KVM_IOEVENTFD: a guest write to an address KVM catches in the kernel
//! and turns into an eventfd signal, with no exit to user space (the
//! SIMVIRTIO notify register in `--ioeventfd` mode).

use super::error::KvmError;
use super::vm::VmObject;
use crate::trace::{Call, record};
use kvm_ioctls::{IoEventAddress, NoDatamatch};
use std::os::fd::AsRawFd;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

impl VmObject {
    /// An eventfd that every write of `len` bytes to MMIO `addr` signals
    /// (any value), instead of an MMIO exit.
    pub fn ioeventfd(
        &self,
        addr: u64,
        trace: &mut Option<crate::trace::Tracer>,
    ) -> Result<EventFd, KvmError> {
        let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| KvmError::Write(e.to_string()))?;
        self.fd()
            .register_ioevent(&fd, &IoEventAddress::Mmio(addr), NoDatamatch)
            .map_err(KvmError::ioctl("KVM_IOEVENTFD"))?;
        record(trace, || {
            Call::ioctl(
                format!("vm {}", self.fd().as_raw_fd()),
                "KVM_IOEVENTFD",
                format!(
                    "mmio {addr:#x}, any length and value, eventfd {}",
                    fd.as_raw_fd()
                ),
                "0".into(),
                "a guest write there signals the eventfd in the kernel: no exit",
            )
        });
        Ok(fd)
    }
}
