//! gdb's connection: a TCP address or a Unix socket path, listened on
//! before the guest runs and accepted once. While the guest runs, bytes
//! from gdb kick the vCPU out of KVM_RUN (the socket is O_ASYNC, its
//! signal is the vCPU thread's kick), so gdb's Ctrl-C stops a guest that
//! never exits. While the guest is stopped, the stub waits in ppoll with
//! the kick unblocked, so a host Ctrl-C or another vCPU's end wakes it.

use super::error::GdbError;
use std::io::{Error, ErrorKind};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// Where gdb connects.
pub enum Listener {
    /// `host run --gdb 127.0.0.1:1234`.
    Tcp(TcpListener),
    /// `host run --gdb /tmp/guest.sock`: removed again when dropped.
    Unix(UnixListener, PathBuf),
}

// fcntl(2) values the libc crate does not name (asm-generic/fcntl.h).
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;

/// `struct f_owner_ex`.
#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// Longest wait for gdb's side to take bytes we send, so a gdb that stops
/// reading cannot hang the host forever.
const SEND_TIMEOUT_MS: libc::c_int = 10_000;

impl Listener {
    /// Listens on `addr`: a path (it contains a '/') is a Unix socket;
    /// `:PORT` is 127.0.0.1:PORT; else HOST:PORT.
    pub fn bind(addr: &str) -> Result<Listener, GdbError> {
        let bind_err = |source| GdbError::Bind {
            addr: addr.to_string(),
            source,
        };
        if addr.contains('/') {
            let path = PathBuf::from(addr);
            let l = UnixListener::bind(&path).map_err(bind_err)?;
            return Ok(Listener::Unix(l, path));
        }
        let full = match addr.strip_prefix(':') {
            Some(port) => format!("127.0.0.1:{port}"),
            None => addr.to_string(),
        };
        Ok(Listener::Tcp(TcpListener::bind(&full).map_err(bind_err)?))
    }

    /// What to give gdb's `target remote`.
    pub fn target(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string()),
            Listener::Unix(_, p) => p.display().to_string(),
        }
    }

    /// Waits for gdb (a SIGINT meanwhile ends the process: no guest runs).
    pub fn accept(&self) -> Result<Conn, GdbError> {
        let fd: OwnedFd = match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().map_err(GdbError::Accept)?;
                // gdb's packets are small and each waits for an answer
                s.set_nodelay(true).map_err(GdbError::Accept)?;
                s.into()
            }
            Listener::Unix(l, _) => l.accept().map_err(GdbError::Accept)?.0.into(),
        };
        Ok(Conn::new(fd))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Why a read from gdb gave no byte.
#[derive(Debug)]
pub enum NoByte {
    /// Nothing has arrived (a read that does not wait).
    Empty,
    /// A kick woke the wait: the caller looks at its stop requests.
    Kicked,
    /// gdb closed the connection or it failed.
    Gone(Error),
}

/// The accepted connection.
pub struct Conn {
    fd: OwnedFd,
    inbuf: [u8; 4096],
    start: usize,
    end: usize,
    out: Vec<u8>,
    /// The thread's signal mask with the kick unblocked, for ppoll.
    during_wait: Option<libc::sigset_t>,
    /// The run has ended: what is left to send (the last stop reply) goes
    /// only if gdb's side takes it now (`Conn::run_ended`).
    ended: bool,
}

impl Conn {
    fn new(fd: OwnedFd) -> Conn {
        Conn {
            fd,
            inbuf: [0; 4096],
            start: 0,
            end: 0,
            out: Vec::with_capacity(4096),
            during_wait: None,
            ended: false,
        }
    }

    /// The socket's fd (the seccomp filter allows reading it).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// On the vCPU thread, before its seccomp filter: bytes from gdb send
    /// this thread the kick signal; reads do not block (waits are ppoll).
    pub fn route_to_this_thread(&mut self) -> Result<(), Error> {
        let fd = self.fd();
        let owner = FOwnerEx {
            kind: F_OWNER_TID,
            pid: crate::signals::gettid(),
        };
        // SAFETY: fcntl on our own open socket; `owner` is a struct
        // f_owner_ex that lives across the call.
        let rc = unsafe { libc::fcntl(fd, F_SETOWN_EX, &owner as *const FOwnerEx) };
        if rc < 0 {
            return Err(Error::last_os_error());
        }
        // SAFETY: as above; F_SETSIG takes a signal number.
        if unsafe { libc::fcntl(fd, F_SETSIG, crate::signals::kick_signal()) } < 0 {
            return Err(Error::last_os_error());
        }
        // SAFETY: as above; F_GETFL reads the status flags.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if fl < 0 {
            return Err(Error::last_os_error());
        }
        // SAFETY: as above; F_SETFL sets them.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_ASYNC | libc::O_NONBLOCK) };
        if rc < 0 {
            return Err(Error::last_os_error());
        }
        // SAFETY: a zeroed sigset_t is valid; pthread_sigmask with a null
        // new set only reads this thread's mask into `cur`.
        let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
            libc::sigdelset(&mut cur, crate::signals::kick_signal());
        }
        self.during_wait = Some(cur);
        Ok(())
    }

    /// The next byte from gdb; with `wait`, waits for one (a kick ends the
    /// wait with `NoByte::Kicked`).
    pub fn next_byte(&mut self, wait: bool) -> Result<u8, NoByte> {
        loop {
            if self.start < self.end {
                self.start += 1;
                return Ok(self.inbuf[self.start - 1]);
            }
            // SAFETY: reads into our own buffer, at most its length.
            let n =
                unsafe { libc::read(self.fd(), self.inbuf.as_mut_ptr().cast(), self.inbuf.len()) };
            if n > 0 {
                (self.start, self.end) = (0, n as usize);
                continue;
            }
            if n == 0 {
                return Err(NoByte::Gone(ErrorKind::UnexpectedEof.into()));
            }
            let e = Error::last_os_error();
            match e.kind() {
                ErrorKind::Interrupted => continue,
                ErrorKind::WouldBlock if !wait => return Err(NoByte::Empty),
                ErrorKind::WouldBlock => self.wait(libc::POLLIN, -1)?,
                _ => return Err(NoByte::Gone(e)),
            }
        }
    }

    /// Waits until the socket is ready for `events`, or a kick, or
    /// `timeout_ms` (-1: none) passes.
    fn wait(&self, events: libc::c_short, timeout_ms: libc::c_int) -> Result<(), NoByte> {
        let mut p = libc::pollfd {
            fd: self.fd(),
            events,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: (timeout_ms / 1000) as libc::time_t,
            tv_nsec: (timeout_ms % 1000) as libc::c_long * 1_000_000,
        };
        let tsp = if timeout_ms < 0 {
            std::ptr::null()
        } else {
            &ts as *const libc::timespec
        };
        let mask = self
            .during_wait
            .as_ref()
            .map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
        // SAFETY: one valid pollfd; `tsp` and `mask` are null or point to
        // locals/fields that live across the call.
        let rc = unsafe { libc::ppoll(&mut p, 1, tsp, mask) };
        if rc < 0 {
            let e = Error::last_os_error();
            return Err(if e.kind() == ErrorKind::Interrupted {
                crate::signals::consume_kicks();
                NoByte::Kicked
            } else {
                NoByte::Gone(e)
            });
        }
        if rc == 0 {
            return Err(NoByte::Gone(ErrorKind::TimedOut.into()));
        }
        Ok(())
    }

    /// The run has ended (a halt, a timeout, Ctrl-C, a crash): from now on
    /// a send never waits for gdb's side, so a client that stopped reading
    /// cannot hold the host past the end (the reply is dropped instead).
    pub fn run_ended(&mut self) {
        self.ended = true;
    }

    /// Sends what is buffered. Waits for gdb's side to take it, at most
    /// [`SEND_TIMEOUT_MS`] at a time, but never past a SIGINT/SIGTERM (a
    /// slow or stalled client must not hold the host: Ctrl-C ends the run
    /// at once) or the end of the run.
    fn send_all(&mut self) -> Result<(), Error> {
        let stopped = || {
            Error::new(
                ErrorKind::Interrupted,
                "stopped by SIGINT/SIGTERM while gdb was not reading",
            )
        };
        let mut done = 0;
        while done < self.out.len() {
            let rest = &self.out[done..];
            // SAFETY: writes from our own buffer, at most its length (Rust
            // ignores SIGPIPE: a closed connection is EPIPE).
            let n = unsafe { libc::write(self.fd(), rest.as_ptr().cast(), rest.len()) };
            if n >= 0 {
                done += n as usize;
                continue;
            }
            let e = Error::last_os_error();
            match e.kind() {
                ErrorKind::Interrupted | ErrorKind::WouldBlock if crate::signals::interrupted() => {
                    return Err(stopped());
                }
                ErrorKind::Interrupted => {}
                ErrorKind::WouldBlock if self.ended => {
                    self.out.clear();
                    return Err(Error::new(
                        ErrorKind::WouldBlock,
                        "gdb is not reading, and the run has ended",
                    ));
                }
                ErrorKind::WouldBlock => match self.wait(libc::POLLOUT, SEND_TIMEOUT_MS) {
                    Ok(()) | Err(NoByte::Empty) => {}
                    Err(NoByte::Kicked) if crate::signals::interrupted() => return Err(stopped()),
                    Err(NoByte::Kicked) => {}
                    Err(NoByte::Gone(e)) => return Err(e),
                },
                _ => return Err(e),
            }
        }
        self.out.clear();
        Ok(())
    }
}

impl gdbstub::conn::Connection for Conn {
    type Error = Error;

    fn write(&mut self, byte: u8) -> Result<(), Error> {
        self.out.push(byte);
        if self.out.len() >= 4096 {
            self.send_all()?;
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        self.out.extend_from_slice(buf);
        if self.out.len() >= 4096 {
            self.send_all()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.send_all()
    }
}

#[cfg(test)]
mod tests {
    use super::Conn;
    use gdbstub::conn::Connection;

    /// Once the run has ended, a send to a peer that does not read gives
    /// up at once instead of waiting for it (SEND_TIMEOUT_MS).
    #[test]
    fn after_the_end_a_full_socket_is_not_waited_for() {
        let (ours, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut c = Conn::new(ours.into());
        c.run_ended();
        let t0 = std::time::Instant::now();
        let chunk = [b'x'; 4096];
        let mut refused = false;
        // the socket's buffer holds a few hundred KiB: 64 MiB cannot fit
        for _ in 0..(64 << 20) / chunk.len() {
            if c.write_all(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "a full socket refuses the bytes");
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    }
}
