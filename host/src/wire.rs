//! A small binary encoding for what a snapshot holds (`crate::snapshot`):
//! little-endian integers and length-prefixed byte strings, written into a
//! `Vec` and read back from untrusted bytes with every length checked
//! against what is left, so a hostile file ends in one [`WireError`],
//! never a panic or an allocation larger than the file. And the checksum
//! the snapshot format uses.

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the next field needs.
    #[error("{what} ends early: {want} bytes needed, {left} left")]
    Short {
        /// The field.
        what: &'static str,
        /// Bytes it needs.
        want: u64,
        /// Bytes left.
        left: u64,
    },
    /// A value out of its range.
    #[error("{what} is {value:#x}, which is not valid here")]
    Bad {
        /// The field.
        what: &'static str,
        /// What it held.
        value: u64,
    },
    /// Bytes after the last field.
    #[error("{0} trailing bytes after the last field")]
    Trailing(usize),
}

/// Appends fields to a byte vector.
#[derive(Debug, Default)]
pub struct Enc {
    /// What was written.
    pub buf: Vec<u8>,
}

impl Enc {
    /// A `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// A `u16`, little-endian.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A `u32`, little-endian.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A `u64`, little-endian.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A byte string: its length as a `u64`, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
}

/// Reads fields from untrusted bytes.
#[derive(Debug, Clone)]
pub struct Dec<'a> {
    rest: &'a [u8],
}

impl<'a> Dec<'a> {
    /// A reader of `b`.
    pub fn new(b: &'a [u8]) -> Dec<'a> {
        Dec { rest: b }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, what: &'static str, n: u64) -> Result<&'a [u8], WireError> {
        let left = self.rest.len() as u64;
        if n > left {
            return Err(WireError::Short {
                what,
                want: n,
                left,
            });
        }
        let (head, rest) = self.rest.split_at(n as usize);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(what, N as u64)?);
        Ok(a)
    }

    /// A `u8`.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }
    /// A `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    /// A `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    /// A `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// A byte string written by [`Enc::bytes`].
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let n = self.u64(what)?;
        self.take(what, n)
    }
    /// A `bool` (0 or 1).
    pub fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(WireError::Bad {
                what,
                value: u64::from(v),
            }),
        }
    }
    /// A count of items that each take at least `min_size` bytes: checked
    /// against the bytes left, so that no hostile count makes a reader
    /// allocate or loop beyond the input.
    pub fn count(&mut self, what: &'static str, min_size: u64) -> Result<u64, WireError> {
        let n = self.u64(what)?;
        let left = self.rest.len() as u64;
        if n.saturating_mul(min_size.max(1)) > left {
            return Err(WireError::Short {
                what,
                want: n.saturating_mul(min_size.max(1)),
                left,
            });
        }
        Ok(n)
    }
    /// Nothing may be left.
    pub fn end(&self) -> Result<(), WireError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

/// FNV-1a's 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a's offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// One FNV-1a step over a 64-bit value.
pub fn fold(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(FNV_PRIME)
}

/// The snapshot's checksum of corruption (not of tampering: a file is
/// checked field by field besides): FNV-1a over `b`'s little-endian
/// 64-bit words in four interleaved lanes (four multiplications in
/// flight: ~4x bytewise FNV-1a's speed, which matters for the page data
/// and the guest's identity), its last (len % 32) bytes one at a time into
/// the first lane, then the lanes and the length folded together.
pub fn hash(b: &[u8]) -> u64 {
    let mut lanes = [FNV_START, FNV_START ^ 1, FNV_START ^ 2, FNV_START ^ 3];
    let mut blocks = b.chunks_exact(32);
    for blk in &mut blocks {
        for (l, w) in lanes.iter_mut().zip(blk.chunks_exact(8)) {
            *l = fold(*l, u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        }
    }
    for &x in blocks.remainder() {
        lanes[0] = fold(lanes[0], u64::from(x));
    }
    let h = lanes.iter().fold(FNV_START, |h, &l| fold(h, l));
    fold(h, b.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_input_is_an_error() {
        let mut e = Enc::default();
        e.u8(7);
        e.u16(0x1234);
        e.u32(0xdead_beef);
        e.u64(u64::MAX);
        e.bytes(b"abc");
        let mut d = Dec::new(&e.buf);
        assert_eq!(d.u8("a"), Ok(7));
        assert_eq!(d.u16("b"), Ok(0x1234));
        assert_eq!(d.u32("c"), Ok(0xdead_beef));
        assert_eq!(d.u64("d"), Ok(u64::MAX));
        assert_eq!(d.bytes("e"), Ok(&b"abc"[..]));
        assert_eq!(d.end(), Ok(()));
        let mut d = Dec::new(&e.buf[..5]);
        d.u8("a").unwrap();
        assert!(matches!(d.u64("d"), Err(WireError::Short { .. })));
        // a length far beyond the input
        let mut e = Enc::default();
        e.u64(u64::MAX);
        assert!(Dec::new(&e.buf).bytes("x").is_err());
        assert!(Dec::new(&e.buf).count("x", 8).is_err());
    }

    #[test]
    fn the_hash_sees_every_byte_and_the_length() {
        // FNV-1a's step is the published function's: "a" from the basis
        assert_eq!(fold(FNV_START, u64::from(b'a')), 0xaf63_dc4c_8601_ec8c);
        let b: Vec<u8> = (0..100u8).collect();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert_ne!(hash(&c), hash(&b), "byte {i}");
        }
        assert_ne!(hash(&b[..99]), hash(&b));
        assert_ne!(hash(&[0; 64]), hash(&[0; 32]));
    }
}
