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

    /// Appends one byte, sending the buffer when it is full or at a newline.
    pub fn push(&mut self, b: u8) {
        if self.len == CAP {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
        if b == b'\n' {
            self.flush();
        }
    }

    /// Sends what is buffered: a `print_str` hypercall at ring 0, the
    /// `write` system call in a user program (CPL3 may not do port I/O).
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        if crate::cpu::cpl() == 3 {
            let _ = crate::user::write(1, &self.buf[..self.len]);
            self.len = 0;
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
        s.bytes().for_each(|b| self.push(b));
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

#[cfg(test)]
mod tests {
    use super::{CAP, Console};
    use crate::test;
    use core::fmt::Write;

    /// A fixed buffer to see what core::fmt produces in a guest.
    struct Buf {
        b: [u8; 64],
        n: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.n + s.len();
            self.b
                .get_mut(self.n..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }

    #[test]
    fn a_line_goes_out_at_its_newline() {
        let mut c = Console::new();
        c.write_str("held").unwrap();
        assert_eq!(c.len, 4, "no exit before the newline");
        c.write_str(" back\n").unwrap();
        assert_eq!(c.len, 0, "sent with one print_str");
    }

    #[test]
    fn a_full_buffer_is_sent_before_the_next_byte() {
        let mut c = Console::new();
        for _ in 0..CAP {
            c.push(b'x');
        }
        assert_eq!(c.len, CAP);
        c.push(b'\n');
        assert_eq!(c.len, 0, "the full buffer went, then the newline");
        c.push(b'y');
        assert_eq!(c.len, 1);
        c.len = 0;
    }

    #[test]
    fn formatting_works_without_sse() {
        // the guest target is soft-float: integer and float formatting
        // must not touch SSE (an internal error at ring 0 on kvm-pvm)
        let mut b = Buf { b: [0; 64], n: 0 };
        write!(b, "{:>5}|{:#06x}|{:.2}|{}", 42, 255, 2.5f64, -7i8).unwrap();
        assert_eq!(&b.b[..b.n], b"   42|0x00ff|2.50|-7");
    }

    #[test]
    fn a_nul_in_the_text_does_not_cut_it() {
        let mut c = Console::new();
        c.write_str("a\0b\n").unwrap();
        assert_eq!(c.len, 0);
    }
}
