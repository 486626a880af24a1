//! A fixed-size open-addressing index from (direction, port or address) to
//! a row: O(1) per lookup, allocated once when the statistics are made, so
//! counting an exit never allocates and never searches what came before.

/// Most distinct ports (and, separately, MMIO addresses) with a row of
/// their own; the rest share an "others" row.
pub const MAX_ROWS: usize = 256;

/// Slots: a power of two, four times the rows, so probes stay short.
const SLOTS: usize = MAX_ROWS * 4;

/// The index: slot -> row + 1 (0: empty), with the key kept beside it.
#[derive(Debug, Clone)]
pub struct Index {
    slots: Box<[(u64, u32); SLOTS]>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            slots: Box::new([(0, 0); SLOTS]),
        }
    }
}

fn hash(key: u64) -> usize {
    // Fibonacci hashing: spreads ports and 8-byte-apart addresses alike
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize & (SLOTS - 1)
}

impl Index {
    /// The row of `key`, if it has one.
    #[inline]
    pub fn get(&self, key: u64) -> Option<usize> {
        let mut i = hash(key);
        loop {
            match self.slots[i] {
                (_, 0) => return None,
                (k, row) if k == key => return Some(row as usize - 1),
                _ => i = (i + 1) & (SLOTS - 1),
            }
        }
    }

    /// Gives `key` row `row` (the caller keeps rows below [`MAX_ROWS`], so
    /// a free slot always exists).
    pub fn insert(&mut self, key: u64, row: usize) {
        let mut i = hash(key);
        while self.slots[i].1 != 0 {
            i = (i + 1) & (SLOTS - 1);
        }
        self.slots[i] = (key, row as u32 + 1);
    }
}

/// The key of a direction and a port or address.
#[inline]
pub fn key(out: bool, v: u64) -> u64 {
    // addresses are below 2^63; the top bit carries the direction
    v | (u64::from(out) << 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inserted_key_is_found_and_others_are_not() {
        let mut ix = Index::default();
        for r in 0..MAX_ROWS {
            ix.insert(key(r % 2 == 0, 0xd000_1000 + 8 * r as u64), r);
        }
        for r in 0..MAX_ROWS {
            assert_eq!(ix.get(key(r % 2 == 0, 0xd000_1000 + 8 * r as u64)), Some(r));
        }
        assert_eq!(ix.get(key(true, 1)), None);
        assert_eq!(
            ix.get(key(false, 0xd000_1000)),
            None,
            "the direction is part of the key"
        );
    }
}
