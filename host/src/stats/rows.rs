//! One bounded table of exits (ports or MMIO addresses): at most
//! [`MAX_ROWS`] rows found through an O(1) [`Index`], the rest counted in
//! one [`Others`] row. [`super::exits`] keeps one for ports, one for MMIO.

use super::index::{Index, MAX_ROWS, key};
use super::kinds::{AddrCount, Dir, Others, PortCount, Seen};

/// A row of a [`Rows`] table: what it is keyed by and what it counts.
pub trait Counted: Clone {
    /// The direction of its exits.
    fn dir(&self) -> Dir;
    /// The port or address.
    fn at(&self) -> u64;
    /// Its exit count and handling time, ns.
    fn totals(&self) -> (u64, u64);
    /// Adds exits and handling time, ns.
    fn add(&mut self, count: u64, ns: u64);
}

impl Counted for PortCount {
    fn dir(&self) -> Dir {
        self.dir
    }
    fn at(&self) -> u64 {
        u64::from(self.port)
    }
    fn totals(&self) -> (u64, u64) {
        (self.count, self.handling_ns)
    }
    fn add(&mut self, count: u64, ns: u64) {
        self.count += count;
        self.handling_ns += ns;
    }
}

impl Counted for AddrCount {
    fn dir(&self) -> Dir {
        self.dir
    }
    fn at(&self) -> u64 {
        self.addr
    }
    fn totals(&self) -> (u64, u64) {
        (self.count, self.handling_ns)
    }
    fn add(&mut self, count: u64, ns: u64) {
        self.count += count;
        self.handling_ns += ns;
    }
}

/// A row, or the others.
#[derive(Debug, Clone, Copy)]
pub enum Row {
    At(usize),
    Others,
}

/// The bounded table.
#[derive(Debug, Clone)]
pub struct Rows<T> {
    /// At most [`MAX_ROWS`] rows, in the order first seen.
    pub rows: Vec<T>,
    index: Index,
    /// Exits beyond the rows.
    pub others: Others,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            rows: Vec::new(),
            index: Index::default(),
            others: Others::default(),
        }
    }
}

impl<T: Counted> Rows<T> {
    /// Counts one exit at `at` in direction `dir`; `new` makes its row the
    /// first time. Returns what was seen and where it was counted.
    #[inline]
    pub fn record(&mut self, dir: Dir, at: u64, new: impl FnOnce() -> T) -> (Seen, Row) {
        let k = key(dir == Dir::Out, at);
        if let Some(i) = self.index.get(k) {
            self.rows[i].add(1, 0);
            return (Seen::Again, Row::At(i));
        }
        if self.rows.len() == MAX_ROWS {
            let first = self.others.total() == 0;
            add_other(&mut self.others, dir, 1, 0);
            return (Seen::Others { first }, Row::Others);
        }
        let row = self.rows.len();
        self.index.insert(k, row);
        self.rows.push(new());
        (Seen::First(row), Row::At(row))
    }

    /// Adds `count` exits to `row` (a snapshot's counts, `super::saved`).
    pub fn add_at(&mut self, row: Row, count: u64) {
        if let Row::At(i) = row {
            self.rows[i].add(count, 0);
        }
    }

    /// Adds `ns` of handling time to `row`.
    pub fn charge(&mut self, row: Row, ns: u64) {
        match row {
            Row::At(i) => self.rows[i].add(0, ns),
            Row::Others => self.others.handling_ns += ns,
        }
    }

    /// The same rows without their index (16 KiB): a copy to keep, such
    /// as a `--record` checkpoint; [`Rows::reindexed`] gives it back.
    pub fn unindexed(&self) -> Rows<T> {
        Rows {
            rows: self.rows.clone(),
            index: Index::default(),
            others: self.others,
        }
    }

    /// The same rows, indexed again.
    pub fn reindexed(&self) -> Rows<T> {
        let mut index = Index::default();
        for (i, r) in self.rows.iter().enumerate() {
            index.insert(key(r.dir() == Dir::Out, r.at()), i);
        }
        Rows {
            rows: self.rows.clone(),
            index,
            others: self.others,
        }
    }

    /// Heap bytes of the rows (the index not counted).
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<T>()
    }

    /// Adds `other`'s rows and others to these, within the bound.
    pub fn merge(&mut self, other: &Rows<T>) {
        for r in &other.rows {
            let (count, ns) = r.totals();
            let k = key(r.dir() == Dir::Out, r.at());
            match self.index.get(k) {
                Some(i) => self.rows[i].add(count, ns),
                None if self.rows.len() < MAX_ROWS => {
                    self.index.insert(k, self.rows.len());
                    self.rows.push(r.clone());
                }
                None => add_other(&mut self.others, r.dir(), count, ns),
            }
        }
        self.others.reads += other.others.reads;
        self.others.writes += other.others.writes;
        self.others.handling_ns += other.others.handling_ns;
    }
}

fn add_other(o: &mut Others, dir: Dir, count: u64, ns: u64) {
    match dir {
        Dir::In => o.reads += count,
        Dir::Out => o.writes += count,
    }
    o.handling_ns += ns;
}
