//! `print!`/`println!` for guests: text is collected in a small buffer and
//! sent with one `print_str` hypercall per line (or per full buffer), so a
//! line costs one VM exit instead of one per byte.

use crate::hc;
use core::ffi::CStr;

const CAP: usize = 128;

/// A buffered writer to the host's stdout.
pub struct Console {
    buf: [u8; CAP + 1],
    len: usize,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    /// An empty console buffer.
    pub const fn new() -> Console {
        Console {
            buf: [0; CAP + 1],
            len: 0,
        }
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        self.buf[self.len] = 0;
        // A NUL inside the text would cut it short: print those bytes one by one.
        match CStr::from_bytes_with_nul(&self.buf[..=self.len]) {
            Ok(s) => {
                let _ = hc::print_str(s);
            }
            Err(_) => self.buf[..self.len].iter().for_each(|&b| hc::print8bit(b)),
        }
        self.len = 0;
    }
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == CAP {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(args: core::fmt::Arguments) {
    use core::fmt::Write;
    let mut c = Console::new();
    let _ = c.write_fmt(args);
}

/// Formats to the host's stdout (one `print_str` exit per line).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

/// `print!` with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
