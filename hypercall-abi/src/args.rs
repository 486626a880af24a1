//! A guest's arguments (`host run GUEST -- ARG...`): the host writes them
//! into guest memory at [`AREA`] before the first instruction, in every CPU
//! mode (the area lies below 64 KiB, so real-mode code reads it with
//! DS = 0 too). Layout, all little-endian:
//!
//! ```text
//! 0   u32    argc
//! 4   u32    bytes of the area in use (header, entries and strings)
//! 8   argc x { u64 gpa, u64 len }    each argument: its first byte, its length
//!     the arguments' UTF-8 bytes, each followed by a NUL (for C guests)
//! ```
//!
//! With no arguments the area is zero (argc 0). `guest_rt::args()` turns
//! the entries into a `&'static [&'static str]` in place (an entry and a
//! `&str` are both 16 bytes, 8-aligned).

/// Guest-physical address of the area.
pub const AREA: u64 = 0x9400;
/// End of the area (exclusive): 3 KiB in all.
pub const AREA_END: u64 = 0xA000;
/// Bytes of the header (argc, bytes in use).
pub const HEADER: usize = 8;
/// Bytes of one entry (gpa, len).
pub const ENTRY: usize = 16;
/// Bytes the area holds.
pub const CAPACITY: usize = (AREA_END - AREA) as usize;

/// The arguments do not fit the area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong {
    /// Bytes they would take.
    pub needed: usize,
}

/// Bytes `args` take in the area.
pub fn size<'a>(args: impl IntoIterator<Item = &'a str>) -> usize {
    args.into_iter()
        .fold(HEADER, |n, a| n.saturating_add(ENTRY + a.len() + 1))
}

/// Writes the area for `args` into `out` (which is [`CAPACITY`] bytes or
/// more); returns the bytes in use.
pub fn encode(args: &[&str], out: &mut [u8]) -> Result<usize, TooLong> {
    let needed = size(args.iter().copied());
    if needed > CAPACITY || needed > out.len() {
        return Err(TooLong { needed });
    }
    out[..needed].fill(0);
    out[0..4].copy_from_slice(&(args.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&(needed as u32).to_le_bytes());
    let mut text = HEADER + ENTRY * args.len();
    for (i, a) in args.iter().enumerate() {
        let e = HEADER + ENTRY * i;
        out[e..e + 8].copy_from_slice(&(AREA + text as u64).to_le_bytes());
        out[e + 8..e + 16].copy_from_slice(&(a.len() as u64).to_le_bytes());
        out[text..text + a.len()].copy_from_slice(a.as_bytes());
        text += a.len() + 1;
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_area_holds_entries_then_nul_terminated_text() {
        let mut b = [0xffu8; CAPACITY];
        let n = encode(&["100", "7"], &mut b).unwrap();
        assert_eq!(n, 8 + 32 + 4 + 2);
        assert_eq!(&b[0..8], &[2, 0, 0, 0, 46, 0, 0, 0]);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), AREA + 40);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), AREA + 44);
        assert_eq!(&b[40..46], b"100\x007\x00");
        assert_eq!(encode(&[], &mut b), Ok(8));
        assert_eq!(&b[0..8], &[0, 0, 0, 0, 8, 0, 0, 0]);
        let big = [core::str::from_utf8(&[b'x'; 3000]).unwrap(); 1];
        assert_eq!(encode(&big, &mut b), Ok(8 + 16 + 3001));
        // exactly full, then one byte over
        let fill = core::str::from_utf8(&[b'y'; 30]).unwrap();
        assert_eq!(encode(&[big[0], fill], &mut b), Ok(CAPACITY));
        let over = core::str::from_utf8(&[b'y'; 31]).unwrap();
        assert_eq!(
            encode(&[big[0], over], &mut b),
            Err(TooLong {
                needed: CAPACITY + 1
            })
        );
    }
}
