//! The host's one-line diagnostics and the error type of everything that
//! runs while the guest does (the exit loop, devices, hypercalls).
//!
//! A diagnostic is one `host: ...` line on the diagnostic stream, written
//! after the guest's output so far is flushed, so the two streams stay in
//! order on a terminal.

use std::borrow::Cow;
use std::io::Write;

/// Text a guest or a file controls (a symbol name, a file name, a test
/// name, an ABI note's hypercall name), made safe for one of the host's
/// own lines: control characters (C0, DEL, C1) become `\x1b`-style escapes
/// and `\u{85}`, and so do the bidirectional overrides, so such text can
/// neither move the cursor, clear the screen, set the terminal's title, nor
/// start a line of its own. The guest's own output is never escaped.
pub fn escape(s: &str) -> Cow<'_, str> {
    fn bad(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        let n = c as u32;
        match c {
            c if !bad(c) => o.push(c),
            _ if n < 0x80 => o.push_str(&format!("\\x{n:02x}")),
            _ => o.push_str(&format!("\\u{{{n:x}}}")),
        }
    }
    Cow::Owned(o)
}

/// [`escape`] for bytes that may not be UTF-8 (file names): invalid
/// sequences become U+FFFD first.
pub fn escape_bytes(b: &[u8]) -> String {
    escape(&String::from_utf8_lossy(b)).into_owned()
}

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
    /// The SIMVIRTIO device thread (`--ioeventfd`) could not go on.
    #[error("the SIMVIRTIO device thread: {0}")]
    Device(String),
    /// KVM's statistics (`--kvm-stats`) could not be read.
    #[error("KVM's statistics (KVM_GET_STATS_FD) could not be read: {0}")]
    KvmStats(String),
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

/// Writes one line, formatted into a stack buffer (what does not fit is
/// cut), on standard error and ends the process with
/// [`INTERNAL_ERROR_EXIT`]: no allocation, no unwinding, and no system
/// call but `write` and `exit_group`, which the seccomp filter allows, so
/// it works on any thread, a jailed vCPU thread included.
fn die_with_line(line: impl FnOnce(&mut dyn std::fmt::Write)) -> ! {
    let mut buf = [0u8; 1024];
    let mut w = Fixed {
        buf: &mut buf,
        len: 0,
    };
    line(&mut w);
    let n = w.len.min(buf.len() - 1);
    buf[n] = b'\n';
    // SAFETY: write(2) reads `n + 1` initialised bytes of `buf`; _exit ends
    // the process without running anything else.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n + 1);
        libc::_exit(INTERNAL_ERROR_EXIT)
    }
}

/// What the process does when an allocation fails (installed by the CLI
/// with `set_alloc_error_hook`): one line
/// `host: internal error: out of memory: an allocation of N bytes failed`
/// and exit [`INTERNAL_ERROR_EXIT`]. The default handler's abort path made
/// a system call outside the seccomp filter on a vCPU thread (exit 31
/// instead of a report).
pub fn on_alloc_error(layout: std::alloc::Layout) {
    die_with_line(|w| {
        let _ = write!(
            w,
            "host: internal error: out of memory: an allocation of {} bytes failed",
            layout.size()
        );
    })
}

/// Makes every panic, on any thread, print one line
/// `host: internal error: <message> at <file:line>` on standard error and
/// end the process with [`INTERNAL_ERROR_EXIT`] (`die_with_line`), so a
/// panic on a vCPU thread is reported as what it is. Install it before any
/// thread is put under seccomp.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        die_with_line(|w| {
            let _ = write!(
                w,
                "host: internal error: {}",
                info.payload_as_str().unwrap_or("a panic")
            );
            if let Some(l) = info.location() {
                let _ = write!(w, " at {}:{}", l.file(), l.line());
            }
        })
    }));
}

#[cfg(test)]
mod tests {
    use super::{escape, escape_bytes};

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("hello::main"), "hello::main");
        assert_eq!(escape("caf\u{e9} \\ ok"), "caf\u{e9} \\ ok");
        assert_eq!(
            escape("a\x1b]0;title\x07b\x1b[2J\r\nhost: forged"),
            "a\\x1b]0;title\\x07b\\x1b[2J\\x0d\\x0ahost: forged"
        );
        assert_eq!(escape("\u{85}\u{9b}\u{202e}x"), "\\u{85}\\u{9b}\\u{202e}x");
        assert_eq!(escape("\x7f"), "\\x7f");
        assert_eq!(escape_bytes(b"a\xff\x1bb"), "a\u{fffd}\\x1bb");
    }
}
