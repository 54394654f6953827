//! The arena's bookkeeping: which extents are free (by size class), which freed ones keep their
//! pages for reuse (the cache), and the counts [`HeapStats`](super::HeapStats) reports. Fixed
//! arrays behind a spin lock held for a few loads and stores: nothing here allocates, calls the
//! system (but `sched_yield` under contention) or can panic, as an allocator requires.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The smallest extent, 64 KiB; extents are powers of two from here.
pub(super) const MIN_SHIFT: u32 = 16;
const CLASSES: usize = 64 - MIN_SHIFT as usize;
/// Free extents kept per size; more are dropped from reuse (their memory is already freed;
/// only address space is lost).
const FREE_SLOTS: usize = 256;
/// Freed memory kept mapped for reuse, at most: the page faults of fresh shared memory
/// cost far more than reusing pages (see `allocation` in `benches/processes.rs`).
const CACHE_BUDGET: usize = 64 << 20;
/// Freed extents kept with their pages, at most.
pub(super) const CACHE_SLOTS: usize = 16;

/// The size class of an extent of `size` bytes (a power of two, at least `1 << MIN_SHIFT`).
pub(super) fn class_of(size: usize) -> usize {
    (size.trailing_zeros() - MIN_SHIFT) as usize
}

/// The bytes of an extent of size class `class`.
pub(super) fn size_of_class(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

pub(super) struct Books {
    /// Offset of the first byte no extent has used yet.
    bump: usize,
    /// Free extents by size class, as offsets in units of the smallest extent.
    free: [[u32; FREE_SLOTS]; CLASSES],
    free_len: [usize; CLASSES],
    /// Freed extents kept with their pages for reuse, oldest first: `(offset in units of
    /// the smallest extent, size class, bytes charged)`.
    cache: [(u32, u8, usize); CACHE_SLOTS],
    cache_len: usize,
    pub(super) cache_bytes: usize,
    pub(super) allocations: usize,
    pub(super) bytes: usize,
    pub(super) copied: u64,
}

impl Books {
    /// An extent of `class` for a block of `bytes`, in an arena of `len` bytes: a cached one
    /// (whose pages hold old data: `dirty`), else a free one, else one never used; `(offset,
    /// dirty)`, or `None` when the arena is full.
    pub(super) fn take(&mut self, class: usize, len: usize, bytes: usize) -> Option<(usize, bool)> {
        let taken = if let Some(at) = self.take_cached(class) {
            (at, true)
        } else if self.free_len[class] > 0 {
            self.free_len[class] -= 1;
            (
                (self.free[class][self.free_len[class]] as usize) << MIN_SHIFT,
                false,
            )
        } else {
            let size = size_of_class(class);
            let end = self.bump.checked_add(size).filter(|&end| end <= len)?;
            self.bump = end;
            (end - size, false)
        };
        self.allocations += 1;
        self.bytes += bytes;
        Some(taken)
    }

    /// Books the free of a block of `bytes` in the extent at `offset` of `class`, which takes
    /// `charge` bytes of memory: whether the cache keeps it, and the older extents it gave up
    /// to make room (`(offset, class)` each, into `evicted`; how many).
    pub(super) fn give_back(
        &mut self,
        offset: usize,
        class: usize,
        bytes: usize,
        charge: usize,
        evicted: &mut [(usize, usize); CACHE_SLOTS],
    ) -> (bool, usize) {
        self.allocations -= 1;
        self.bytes -= bytes;
        if charge > CACHE_BUDGET / 4 {
            return (false, 0);
        }
        let mut n = 0;
        while self.cache_len == CACHE_SLOTS || self.cache_bytes + charge > CACHE_BUDGET {
            let Some(old) = self.evict() else { break };
            evicted[n] = old;
            n += 1;
        }
        self.cache[self.cache_len] = ((offset >> MIN_SHIFT) as u32, class as u8, charge);
        self.cache_len += 1;
        self.cache_bytes += charge;
        (true, n)
    }

    /// Takes the newest cached extent of `class`.
    fn take_cached(&mut self, class: usize) -> Option<usize> {
        let i = (0..self.cache_len)
            .rev()
            .find(|&i| self.cache[i].1 as usize == class)?;
        let (at, _, charge) = self.cache[i];
        self.cache.copy_within(i + 1..self.cache_len, i);
        self.cache_len -= 1;
        self.cache_bytes -= charge;
        Some((at as usize) << MIN_SHIFT)
    }

    /// Takes the oldest cached extent: `(offset, class)`.
    pub(super) fn evict(&mut self) -> Option<(usize, usize)> {
        if self.cache_len == 0 {
            return None;
        }
        let (at, class, charge) = self.cache[0];
        self.cache.copy_within(1..self.cache_len, 0);
        self.cache_len -= 1;
        self.cache_bytes -= charge;
        Some(((at as usize) << MIN_SHIFT, class as usize))
    }

    /// Puts an extent whose pages were returned on the free list of its class.
    pub(super) fn push_free(&mut self, offset: usize, class: usize) {
        if self.free_len[class] < FREE_SLOTS {
            self.free[class][self.free_len[class]] = (offset >> MIN_SHIFT) as u32;
            self.free_len[class] += 1;
        }
    }
}

struct Locked(UnsafeCell<Books>);
// SAFETY: the books are only touched with `LOCK` held (see `with_books`).
unsafe impl Sync for Locked {}

static BOOKS: Locked = Locked(UnsafeCell::new(Books {
    bump: 0,
    free: [[0; FREE_SLOTS]; CLASSES],
    free_len: [0; CLASSES],
    cache: [(0, 0, 0); CACHE_SLOTS],
    cache_len: 0,
    cache_bytes: 0,
    allocations: 0,
    bytes: 0,
    copied: 0,
}));

static LOCK: AtomicBool = AtomicBool::new(false);

/// Takes the books' lock: spins briefly, then yields (a system call that allocates nothing).
pub(super) fn lock() {
    let mut spins = 0u32;
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

pub(super) fn unlock() {
    LOCK.store(false, Ordering::Release);
}

/// Runs `f` on the books, with the lock held.
pub(super) fn with_books<R>(f: impl FnOnce(&mut Books) -> R) -> R {
    lock();
    // SAFETY: `LOCK` is held, so this is the only reference to the books.
    let r = f(unsafe { &mut *BOOKS.0.get() });
    unlock();
    r
}

/// The bytes of the arena extents have used so far, read by a caller that holds the lock (the
/// fork handler, between `lock` and `unlock`).
pub(super) fn used_while_locked() -> usize {
    // SAFETY: the caller holds `LOCK`, so no one writes the books meanwhile.
    unsafe { (*BOOKS.0.get()).bump }
}
