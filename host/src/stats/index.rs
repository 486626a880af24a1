//! A fixed-size open-addressing index from (direction, port or address) to
//! a row: O(1) per lookup, allocated at the first row (the first sight of
//! a port allocates anyway), so counting an exit never searches what came
//! before. Its 16 KiB come zeroed from the allocator: a VM that sees two
//! ports touches one page of it, not four (`host bench`'s
//! `matrix_rss_kib_per_vm`: each VM has two of these per `ExitStats`).

/// Most distinct ports (and, separately, MMIO addresses) with a row of
/// their own; the rest share an "others" row.
pub const MAX_ROWS: usize = 256;

/// Slots: a power of two, four times the rows, so probes stay short.
const SLOTS: usize = MAX_ROWS * 4;

/// The index: slot -> row + 1 (0: empty), with the key kept beside it;
/// None until the first row.
#[derive(Debug, Clone, Default)]
pub struct Index {
    slots: Option<Box<[(u64, u32); SLOTS]>>,
}

/// All slots empty, in pages the allocator hands out zeroed (untouched
/// ones take no memory).
fn empty_slots() -> Box<[(u64, u32); SLOTS]> {
    let zeroed = Box::<[(u64, u32); SLOTS]>::new_zeroed();
    // SAFETY: all-zero bytes are a valid (u64, u32) for every slot.
    unsafe { zeroed.assume_init() }
}

fn hash(key: u64) -> usize {
    // Fibonacci hashing: spreads ports and 8-byte-apart addresses alike
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize & (SLOTS - 1)
}

impl Index {
    /// The row of `key`, if it has one.
    #[inline]
    pub fn get(&self, key: u64) -> Option<usize> {
        let slots = self.slots.as_ref()?;
        let mut i = hash(key);
        loop {
            match slots[i] {
                (_, 0) => return None,
                (k, row) if k == key => return Some(row as usize - 1),
                _ => i = (i + 1) & (SLOTS - 1),
            }
        }
    }

    /// Gives `key` row `row` (the caller keeps rows below [`MAX_ROWS`], so
    /// a free slot always exists).
    pub fn insert(&mut self, key: u64, row: usize) {
        let slots = self.slots.get_or_insert_with(empty_slots);
        let mut i = hash(key);
        while slots[i].1 != 0 {
            i = (i + 1) & (SLOTS - 1);
        }
        slots[i] = (key, row as u32 + 1);
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
