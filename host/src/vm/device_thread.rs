//! `--ioeventfd`: the SIMVIRTIO device on a thread of its own, as virtio
//! devices run in Firecracker or cloud-hypervisor. KVM catches the
//! driver's notify write (KVM_IOEVENTFD on the Q0 control register) and
//! signals an eventfd instead of exiting to user space; this thread waits
//! on it, drains TX and fills RX under the device's lock, and raises the
//! device's interrupt through its irqfd. It runs under a filter of its own
//! (`seccomp::device_rules`: no ioctl, no open) and ends when every vCPU
//! has: a last drain, then out.

use crate::devices::Bus;
use crate::diag::HostError;
use std::io::Write;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Serves notifications on `notify` until `stop` is signalled.
pub(super) fn serve(
    notify: &EventFd,
    stop: &EventFd,
    bus: &Bus,
    mem: &GuestMemoryMmap,
    seccomp: bool,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<(), HostError> {
    use std::os::fd::AsRawFd;
    if seccomp {
        crate::seccomp::apply_device().map_err(|e| HostError::Device(e.to_string()))?;
    }
    let mut fds = [
        libc::pollfd {
            fd: notify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is an array of two pollfds that lives across the
        // call; the fds are open eventfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(HostError::Device(format!("poll: {e}")));
        }
        // the eventfd's count is the number of notify writes since the
        // last read (EAGAIN: none)
        if let Ok(n) = notify.read() {
            bus.notified(mem, n, out, diag)?;
        }
        if fds[1].revents != 0 {
            if let Ok(n) = notify.read() {
                bus.notified(mem, n, out, diag)?;
            }
            out.flush()?;
            return Ok(());
        }
    }
}
