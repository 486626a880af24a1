//! Guest output into a pipe nobody reads must not hold the run past its
//! `--timeout` (or a Ctrl-C): a write blocked on a full pipe would keep the
//! vCPU thread out of KVM_RUN, where the watchdog's kick is taken. So when
//! standard output is a pipe or a socket, it is made non-blocking for the
//! run and this writer waits for room with poll(2), 50 ms at a time, until
//! the deadline or an interrupt; from then on it drops what the guest
//! prints (and counts it), and the run ends as the watchdog says.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// Standard output, patient until `deadline`.
pub struct Patient<W: Write + AsRawFd> {
    inner: W,
    deadline: Option<Instant>,
    /// The fd's flags before the run (restored on drop), when changed.
    restore: Option<libc::c_int>,
    /// Bytes dropped after the deadline or an interrupt.
    pub dropped: u64,
}

impl<W: Write + AsRawFd> Patient<W> {
    /// Wraps `inner`; makes it non-blocking if it is a pipe or a socket.
    pub fn new(inner: W, deadline: Option<Instant>) -> Self {
        let fd = inner.as_raw_fd();
        // SAFETY: a zeroed stat is valid plain data for fstat to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes `st` for an fd we hold.
        let piped = unsafe { libc::fstat(fd, &mut st) } == 0
            && matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK);
        let mut restore = None;
        if piped {
            // SAFETY: F_GETFL/F_SETFL only read and set this fd's flags.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                if flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0 {
                    restore = Some(flags);
                }
            }
        }
        Patient {
            inner,
            deadline,
            restore,
            dropped: 0,
        }
    }

    fn give_up(&self) -> bool {
        host::signals::interrupted() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl<W: Write + AsRawFd> Write for Patient<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.dropped > 0 {
            self.dropped += b.len() as u64;
            return Ok(b.len());
        }
        loop {
            match self.inner.write(b) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.give_up() {
                        self.dropped += b.len() as u64;
                        return Ok(b.len());
                    }
                    let mut p = libc::pollfd {
                        fd: self.inner.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: poll reads and writes one pollfd of ours.
                    unsafe { libc::poll(&mut p, 1, 50) };
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.dropped > 0 {
            return Ok(());
        }
        self.inner.flush()
    }
}

impl<W: Write + AsRawFd> Drop for Patient<W> {
    fn drop(&mut self) {
        if let Some(flags) = self.restore {
            // SAFETY: restores this fd's flags as they were.
            unsafe { libc::fcntl(self.inner.as_raw_fd(), libc::F_SETFL, flags) };
        }
    }
}
