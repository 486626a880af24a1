//! A heap for guests as ordinary Rust: `guest_rt::heap!(SIZE)` gives the
//! program a global allocator over SIZE bytes of its own memory (a zeroed
//! `.bss` array, `__guest_rt_heap_area`, which `host layout` names), so
//! `alloc::vec::Vec`, `String` and `Box` work:
//!
//! ```ignore
//! extern crate alloc;
//! guest_rt::heap!(256 * 1024);
//! ```
//!
//! First fit over a free list kept in address order, blocks of 16-byte
//! multiples (so a split never leaves a piece too small to list), freed
//! blocks merged with their neighbours; a spin lock for several vCPUs.
//! An allocation that does not fit prints one line that says so (asked,
//! in use, the heap's size and how to make it larger) and fails, and
//! Rust's allocation failure then panics: a crash with a backtrace.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

const UNIT: usize = 16;

/// A free block: its size, then the next free block's address (0: none).
#[repr(C)]
struct Free {
    size: usize,
    next: usize,
}

/// The heap's memory: `N` bytes, 16-byte aligned.
#[repr(C, align(16))]
pub struct Area<const N: usize>(pub [u8; N]);

impl<const N: usize> Area<N> {
    /// A zeroed area (it lands in `.bss`).
    pub const fn new() -> Self {
        Area([0; N])
    }
}

impl<const N: usize> Default for Area<N> {
    fn default() -> Self {
        Self::new()
    }
}

struct Inner {
    area: *mut u8,
    start: usize,
    size: usize,
    /// First free block (0: none); the list is in address order.
    free: usize,
    used: usize,
    ready: bool,
}

/// The allocator `heap!` installs.
pub struct Heap {
    lock: AtomicBool,
    inner: UnsafeCell<Inner>,
}

// SAFETY: every access to `inner` holds `lock`.
unsafe impl Sync for Heap {}

fn round(n: usize) -> usize {
    n.max(1).div_ceil(UNIT) * UNIT
}

impl Heap {
    /// A heap over `size` bytes at `start` (16-byte aligned).
    pub const fn new(start: *mut u8, size: usize) -> Heap {
        Heap {
            lock: AtomicBool::new(false),
            inner: UnsafeCell::new(Inner {
                area: start,
                start: 0,
                size: size / UNIT * UNIT,
                free: 0,
                used: 0,
                ready: false,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference.
        let r = f(unsafe { &mut *self.inner.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

impl Inner {
    fn init(&mut self) {
        if !self.ready {
            self.ready = true;
            // (a pointer has no address during const evaluation: taken here)
            self.start = self.area as usize;
            if self.size >= UNIT {
                self.free = self.start;
                // SAFETY: the area is ours, 16-byte aligned, `size` bytes.
                unsafe { write(self.start, self.size, 0) };
            }
        }
    }
}

/// Writes a free block's header at `at`.
///
/// # Safety
/// `at` is a 16-byte aligned address inside the heap's area.
unsafe fn write(at: usize, size: usize, next: usize) {
    // SAFETY: as the caller promises.
    unsafe { (at as *mut Free).write(Free { size, next }) };
}

/// Reads the free block's header at `at`.
///
/// # Safety
/// `at` is a free block of the heap.
unsafe fn read(at: usize) -> Free {
    // SAFETY: as the caller promises.
    unsafe { (at as *const Free).read() }
}

// SAFETY: blocks never overlap: each address range is either in the free
// list or handed out, never both; sizes and alignments are kept as asked.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = round(layout.size());
        let align = layout.align().max(UNIT);
        let got = self.with(|h| {
            h.init();
            let (mut prev, mut at) = (0usize, h.free);
            while at != 0 {
                // SAFETY: `at` is on the free list.
                let b = unsafe { read(at) };
                let start = at.next_multiple_of(align);
                let gap = start - at;
                if gap + size <= b.size {
                    let rest = b.size - gap - size;
                    // the piece after the allocation, if any, stays free
                    let after = if rest > 0 {
                        // SAFETY: inside the block, 16-byte aligned.
                        unsafe { write(start + size, rest, b.next) };
                        start + size
                    } else {
                        b.next
                    };
                    // the piece before it (an alignment gap) too
                    let first = if gap > 0 {
                        // SAFETY: the block's own header.
                        unsafe { write(at, gap, after) };
                        at
                    } else {
                        after
                    };
                    if prev == 0 {
                        h.free = first;
                    } else {
                        // SAFETY: `prev` is on the free list.
                        let p = unsafe { read(prev) };
                        // SAFETY: its header, now pointing past the block.
                        unsafe { write(prev, p.size, first) };
                    }
                    h.used += size;
                    return Ok(start as *mut u8);
                }
                prev = at;
                at = b.next;
            }
            Err((h.used, h.size))
        });
        match got {
            Ok(p) => p,
            Err((used, total)) => {
                crate::println!(
                    "guest heap: out of memory: {} bytes asked (alignment {}), {used} of {total} bytes in use; guest_rt::heap!(SIZE) sets its size",
                    layout.size(),
                    layout.align()
                );
                core::ptr::null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = round(layout.size());
        let at = ptr as usize;
        self.with(|h| {
            h.used -= size;
            // find the free blocks around `at`
            let (mut prev, mut next) = (0usize, h.free);
            while next != 0 && next < at {
                prev = next;
                // SAFETY: on the free list.
                next = unsafe { read(next) }.next;
            }
            let (mut start, mut len, mut after) = (at, size, next);
            if next != 0 && at + size == next {
                // SAFETY: on the free list.
                let n = unsafe { read(next) };
                len += n.size;
                after = n.next;
            }
            if prev != 0 {
                // SAFETY: on the free list.
                let p = unsafe { read(prev) };
                if prev + p.size == at {
                    start = prev;
                    len += p.size;
                    // SAFETY: merged into `prev`'s block.
                    unsafe { write(start, len, after) };
                    return;
                }
                // SAFETY: `prev` stays, pointing at the freed block.
                unsafe { write(prev, p.size, start) };
            } else {
                h.free = start;
            }
            // SAFETY: the freed block, inside the area.
            unsafe { write(start, len, after) };
        });
    }
}

/// Gives the program a heap of `$size` bytes (a multiple of 16; zeroed
/// memory in `.bss`, so the ELF's memory size grows by it, not its file):
/// `guest_rt::heap!(256 * 1024);` and `extern crate alloc;`.
#[macro_export]
macro_rules! heap {
    ($size:expr) => {
        #[unsafe(no_mangle)]
        static mut __guest_rt_heap_area: $crate::heap::Area<{ $size }> = $crate::heap::Area::new();
        #[global_allocator]
        static __GUEST_RT_HEAP: $crate::heap::Heap =
            $crate::heap::Heap::new((&raw mut __guest_rt_heap_area).cast(), $size);
    };
}

#[cfg(test)]
mod tests {
    use super::{Area, Heap};
    use crate::test;
    use core::alloc::{GlobalAlloc, Layout};

    static mut AREA: Area<4096> = Area::new();

    #[test]
    fn blocks_are_reused_merged_aligned_and_bounded() {
        let h = Heap::new((&raw mut AREA).cast(), 4096);
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        // SAFETY: the heap's area is this test's only; every block is freed
        // with the layout it was allocated with.
        unsafe {
            let a = h.alloc(l(100, 8));
            let b = h.alloc(l(100, 8));
            assert!(!a.is_null() && !b.is_null() && a != b);
            assert_eq!(b as usize - a as usize, 112, "sizes round up to 16");
            h.dealloc(a, l(100, 8));
            // the freed block is reused first
            let c = h.alloc(l(50, 8));
            assert_eq!(c, a);
            let d = h.alloc(l(64, 256));
            assert_eq!(d as usize % 256, 0, "alignment");
            // too much fails instead of overlapping
            assert!(h.alloc(l(8192, 8)).is_null());
            h.dealloc(b, l(100, 8));
            h.dealloc(c, l(50, 8));
            h.dealloc(d, l(64, 256));
            // everything freed merges back: the whole area fits again
            let all = h.alloc(l(4096, 16));
            assert_eq!(all, (&raw mut AREA).cast::<u8>());
            h.dealloc(all, l(4096, 16));
        }
    }
}
