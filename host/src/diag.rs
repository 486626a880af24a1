//! The host's one-line diagnostics and the error type of everything that
//! runs while the guest does (the exit loop, devices, hypercalls).
//!
//! A diagnostic is one `host: ...` line on the diagnostic stream, written
//! after the guest's output so far is flushed, so the two streams stay in
//! order on a terminal.

use std::io::Write;

/// The host could not carry on (the guest is not at fault).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Writing the guest's output failed (e.g. a closed pipe).
    #[error("cannot write guest output: {0}")]
    Output(#[from] std::io::Error),
    /// A vCPU ioctl needed while serving an exit failed.
    #[error("{what} failed: {source}")]
    Kvm {
        /// The ioctl.
        what: &'static str,
        /// errno.
        source: kvm_ioctls::Error,
    },
    /// A host bug caught without a panic.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// A vCPU thread could not be started (e.g. under `ulimit -v`).
    #[error("cannot start a vCPU thread: {0}")]
    Spawn(std::io::Error),
    /// The gdb connection failed while the guest ran (`--gdb`).
    #[error("{0}")]
    Debugger(String),
    /// The `--trace-kvm` output could not be written.
    #[error("cannot write the KVM trace to {name}: {source}")]
    Trace {
        /// Where the trace goes (a file, or standard error).
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes one "host: ..." line on `diag`, after flushing the guest's output
/// so far.
pub fn host_line(
    out: &mut dyn Write,
    diag: &mut dyn Write,
    msg: std::fmt::Arguments,
) -> Result<(), HostError> {
    out.flush()?;
    writeln!(diag, "host: {msg}")?;
    Ok(())
}

/// Process exit code after a panic anywhere in the host (EX_SOFTWARE).
pub const INTERNAL_ERROR_EXIT: i32 = 70;

/// A `fmt::Write` into a fixed buffer: formatting never allocates, and
/// what does not fit is cut.
struct Fixed<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for Fixed<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Makes every panic, on any thread, print one line
/// `host: internal error: <message> at <file:line>` on standard error and
/// end the process with [`INTERNAL_ERROR_EXIT`]. The hook formats into a
/// stack buffer and makes only `write` and `exit_group`, which the seccomp
/// filter allows, so a panic on a vCPU thread is reported as what it is.
/// Install it before any thread is put under seccomp.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        use std::fmt::Write as _;
        let mut buf = [0u8; 1024];
        let mut w = Fixed {
            buf: &mut buf,
            len: 0,
        };
        let _ = write!(
            w,
            "host: internal error: {}",
            info.payload_as_str().unwrap_or("a panic")
        );
        if let Some(l) = info.location() {
            let _ = write!(w, " at {}:{}", l.file(), l.line());
        }
        let n = w.len.min(buf.len() - 1);
        buf[n] = b'\n';
        // SAFETY: write(2) reads `n + 1` initialised bytes of `buf`; _exit
        // ends the process without running anything else (no unwinding,
        // no allocation, no other system call).
        unsafe {
            libc::write(2, buf.as_ptr().cast(), n + 1);
            libc::_exit(INTERNAL_ERROR_EXIT);
        }
    }));
}
