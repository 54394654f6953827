//! [`SharedHeap`]: a global allocator that puts large allocations in memory the worker processes
//! map, so that a plain `Vec<T>` reaches them without a copy.
//!
//! **One arena, one descriptor.** Every large allocation lives in a single anonymous memory file
//! (`memfd`), sized at 1 TiB but sparse: only pages written use memory. The parent maps all of it
//! once, so an address in the arena *is* an offset in the file: a worker that mapped the file
//! (once, read-only, received over its channel with `SCM_RIGHTS`) resolves any slice of any
//! large allocation with no further message. However many large allocations a program makes,
//! it holds one descriptor and one mapping for them.
//!
//! **Extents.** An allocation takes an extent of a power-of-two size, its first page a header
//! that names the size. A freed extent keeps its pages in a small cache (64 MiB at most, 16
//! extents, each at most 16 MiB) for the next allocation of its size: fresh shared pages fault in
//! far more slowly than reused ones. Beyond that, and on [`SharedHeap::trim`], an extent has its
//! pages punched out of the file (`MADV_REMOVE`): the memory goes back to the system at once, in
//! the workers' mappings too, and the extent waits on a free list of its size. Punched pages
//! read as zero, so only a cached extent needs zeroing for `alloc_zeroed`. An extent is larger
//! than its allocation only in address space, never in memory: `realloc` grows in place while the
//! extent has room, and when it must move it takes an extent four times the new size, so a
//! growing `Vec` is copied at every other doubling or less, never quadratically. (`mremap` cannot help here: it
//! would move pages to other addresses of the mapping but not to other offsets of the file,
//! breaking the address = offset rule the workers rely on.)
//!
//! **Inside an allocator.** Nothing here allocates or can panic. The free lists are fixed arrays
//! behind a spin lock held for a few loads and stores; system calls (`madvise`, the one-time
//! `memfd_create`/`mmap`) happen outside it, except at the first large allocation.
//!
//! **Fork.** After `fork()` without `exec`, the child must not write the parent's memory. A
//! `pthread_atfork` handler remaps the used part of the arena in the child as a private,
//! copy-on-write mapping of the same file and turns the arena off there: the child's writes stay
//! its own, its new large allocations go to the wrapped allocator, and its slices are copied to
//! its workers as any plain `Vec`'s. Pages the child has not written still show the parent's file
//! (as with any private file mapping): a child that reads a large allocation the parent later
//! frees or changes sees the change. `fork` + `exec` (what `std::process::Command` does) is
//! unaffected.
//!
//! **Lifetime.** The file has no name anywhere (`/dev/shm` included): the kernel frees it when
//! the last process that holds its descriptor or a mapping ends, SIGKILL included. Workers end
//! with the parent.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};

/// The region id the heap goes by in the protocol; ids of other regions start at 1.
pub(crate) const HEAP_REGION_ID: u64 = 0;

/// Default threshold: allocations of at least this many bytes go to shared memory.
pub const DEFAULT_THRESHOLD: usize = 1 << 20;

/// A global allocator that places every allocation of at least a threshold (default 1 MiB) in
/// memory shared with the worker processes of `#[parallel_chunks(backend = "processes")]`, and
/// everything smaller in the allocator it wraps ([`System`] unless given another).
///
/// With it installed, a plain `Vec<T>` or `&[T]` of plain data passed to a processes function
/// reaches the workers as a reference into that memory, with no copy, as a
/// [`SharedVec`](crate::shm::SharedVec) does:
///
/// ```
/// #[global_allocator]
/// static HEAP: decor::shm::SharedHeap = decor::shm::SharedHeap::new();
///
/// #[decor::parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "sum")]
/// fn total(xs: &[u64]) -> u64 {
///     xs.iter().sum()
/// }
///
/// fn main() {
///     let xs = vec![1u64; 1 << 20]; // 8 MiB: in shared memory
///     assert!(HEAP.holds(xs.as_ptr()));
///     let copied = decor::shm::copied_bytes();
///     assert_eq!(total(&xs), 1 << 20);
///     assert_eq!(decor::shm::copied_bytes(), copied, "no copy was made");
/// }
/// ```
///
/// What it costs: one comparison on each allocation and a range check on each free; a large
/// allocation takes a header page of memory. Freed large allocations are kept for reuse up to
/// 64 MiB in all, beyond that returned to the system at once; [`trim`](Self::trim) returns
/// them all. The design (one sparse file, extents, fork) is described in the `heap` module's
/// source.
///
/// Workers map the memory read-only: a chunk body cannot write the caller's data. Large
/// allocations need an alignment of at most a page; larger alignments go to the wrapped
/// allocator, as does everything when shared memory cannot be had (then slices are copied to
/// the workers as without the heap). Linux only.
pub struct SharedHeap<A = System> {
    inner: A,
    threshold: AtomicUsize,
}

impl SharedHeap<System> {
    /// Wraps [`System`], with the default threshold of 1 MiB.
    pub const fn new() -> Self {
        Self::wrapping(System)
    }

    /// Wraps [`System`]; allocations of at least `bytes` go to shared memory.
    pub const fn with_threshold(bytes: usize) -> Self {
        Self::wrapping_with_threshold(System, bytes)
    }
}

impl Default for SharedHeap<System> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A> SharedHeap<A> {
    /// Wraps another allocator (e.g. a `mimalloc` or `jemalloc` global), which gets every
    /// allocation under the default threshold of 1 MiB.
    pub const fn wrapping(inner: A) -> Self {
        Self::wrapping_with_threshold(inner, DEFAULT_THRESHOLD)
    }

    /// Wraps another allocator; allocations of at least `bytes` go to shared memory.
    pub const fn wrapping_with_threshold(inner: A, bytes: usize) -> Self {
        SharedHeap {
            inner,
            // A zero-size allocation never reaches an allocator; 1 keeps the comparison simple.
            threshold: AtomicUsize::new(if bytes == 0 { 1 } else { bytes }),
        }
    }

    /// Changes the threshold from now on; allocations already made stay where they are.
    /// `usize::MAX` sends every new allocation to the wrapped allocator.
    pub fn set_threshold(&self, bytes: usize) {
        self.threshold.store(bytes.max(1), Ordering::Relaxed);
    }

    /// The current threshold in bytes.
    pub fn threshold(&self) -> usize {
        self.threshold.load(Ordering::Relaxed)
    }

    /// Whether `ptr` points into shared memory of this process: into an allocation that the
    /// workers can read without a copy.
    pub fn holds<T>(&self, ptr: *const T) -> bool {
        arena::holds(ptr.cast())
    }

    /// Returns the freed memory kept for reuse to the system now, as `malloc_trim` does.
    pub fn trim(&self) {
        arena::trim();
    }

    /// Figures about the shared memory in use, e.g. to check that memory goes back when freed.
    pub fn stats(&self) -> HeapStats {
        arena::stats()
    }
}

/// What [`SharedHeap::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapStats {
    /// Allocations in shared memory now.
    pub allocations: usize,
    /// Bytes they hold, as requested.
    pub bytes: usize,
    /// Memory the shared file uses now (pages written and not returned), header pages included.
    pub resident_bytes: u64,
    /// Freed memory kept for reuse (at most 64 MiB); [`SharedHeap::trim`] returns it.
    pub cached_bytes: usize,
    /// Bytes `realloc` has copied into shared memory: from the wrapped allocator when a block
    /// crossed the threshold, or from an extent that had no room to grow.
    pub realloc_copied_bytes: u64,
}

// SAFETY: every method hands out memory that is either the wrapped allocator's, under the
// contract it gives, or an extent of the arena that no other live allocation overlaps (the
// arena gives each extent to one allocation until it is freed). Alignment: arena blocks start on
// a page boundary and are used only for alignments of at most a page.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SharedHeap<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= self.threshold.load(Ordering::Relaxed)
            && let Some(p) = arena::alloc(layout, layout.size(), false)
        {
            return p;
        }
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe { self.inner.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= self.threshold.load(Ordering::Relaxed)
            && let Some(p) = arena::alloc(layout, layout.size(), true)
        {
            return p;
        }
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if arena::holds(ptr) {
            arena::free(ptr);
        } else {
            // SAFETY: not ours, so the wrapped allocator's, with the layout it was given.
            unsafe { self.inner.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let threshold = self.threshold.load(Ordering::Relaxed);
        if arena::holds(ptr) {
            // SAFETY: the caller's block, layout and size.
            unsafe { self.move_out_of_arena(ptr, layout, new_size, threshold) }
        } else if new_size >= threshold {
            // SAFETY: the caller's block, layout and size.
            unsafe { self.move_into_arena(ptr, layout, new_size) }
        } else {
            // SAFETY: the wrapped allocator's block, with the caller's layout and size.
            unsafe { self.inner.realloc(ptr, layout, new_size) }
        }
    }
}

impl<A: GlobalAlloc> SharedHeap<A> {
    /// `realloc` of a block in the arena: in place if its extent has room, else a new place.
    #[cold]
    unsafe fn move_out_of_arena(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        threshold: usize,
    ) -> *mut u8 {
        if new_size >= threshold {
            if arena::resize_in_place(ptr, layout.size(), new_size) {
                return ptr;
            }
            let reserve = if new_size > layout.size() {
                new_size.saturating_mul(4)
            } else {
                new_size
            };
            // SAFETY: a valid layout: the caller's alignment, and a size it vouches for.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            if let Some(p) = arena::alloc(new_layout, reserve, false) {
                let kept = layout.size().min(new_size);
                // SAFETY: both blocks hold at least `kept` bytes and are distinct extents.
                unsafe { std::ptr::copy_nonoverlapping(ptr, p, kept) };
                arena::note_copied(kept);
                arena::free(ptr);
                return p;
            }
        }
        // SAFETY: as above.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size (`realloc`'s contract).
        let p = unsafe { self.inner.alloc(new_layout) };
        if !p.is_null() {
            // SAFETY: both blocks hold at least this many bytes; one is ours, one is new.
            unsafe { std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size)) };
            arena::free(ptr);
        }
        p
    }

    /// `realloc` of a wrapped allocator's block to a size at or over the threshold.
    #[cold]
    unsafe fn move_into_arena(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's alignment and new size make a valid layout (`realloc`'s contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // Growing across the threshold suggests growing on: room for four times as much.
        if let Some(p) = arena::alloc(new_layout, new_size.saturating_mul(4), false) {
            let kept = layout.size().min(new_size);
            // SAFETY: both blocks hold `kept` bytes; the new one is a fresh extent.
            unsafe { std::ptr::copy_nonoverlapping(ptr, p, kept) };
            arena::note_copied(kept);
            // SAFETY: the wrapped allocator's block, with its layout.
            unsafe { self.inner.dealloc(ptr, layout) };
            return p;
        }
        // SAFETY: the wrapped allocator's block, with the caller's layout and size.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

/// Where the shared heap is mapped here, for the processes backend: `(start, size, fd)`, if
/// `bytes` lies in it and the arena is this process's own (not inherited through `fork`).
pub(crate) fn region_holding(bytes: &[u8]) -> Option<(usize, usize, i32)> {
    let (start, size, fd) = arena::shared()?;
    let at = (bytes.as_ptr() as usize).wrapping_sub(start);
    (at < size && bytes.len() <= size - at).then_some((start, size, fd))
}

/// Whether this process has a shared heap whose memory workers should keep mapped.
pub(crate) fn active() -> bool {
    arena::shared().is_some()
}

/// The arena itself: process-wide, whichever `SharedHeap` value asks.
mod arena {
    use super::*;

    /// Sizes tried for the file, largest first; each is only address space until written.
    const SIZES: [usize; 4] = [1 << 40, 1 << 38, 1 << 36, 1 << 34];
    /// The smallest extent, 64 KiB; extents are powers of two from here.
    const MIN_SHIFT: u32 = 16;
    const CLASSES: usize = 64 - MIN_SHIFT as usize;
    /// Free extents kept per size; more are dropped from reuse (their memory is already freed;
    /// only address space is lost).
    const FREE_SLOTS: usize = 256;
    /// Freed memory kept mapped for reuse, at most: the page faults of fresh shared memory
    /// cost far more than reusing pages (see `allocation` in `benches/processes.rs`).
    const CACHE_BUDGET: usize = 64 << 20;
    const CACHE_SLOTS: usize = 16;
    const HEADER_MAGIC: u64 = 0x6465_636f_725f_6870; // "decor_hp"

    const UNSET: u8 = 0;
    const READY: u8 = 1;
    const FAILED: u8 = 2;

    static STATE: AtomicU8 = AtomicU8::new(UNSET);
    static BASE: AtomicUsize = AtomicUsize::new(0);
    static LEN: AtomicUsize = AtomicUsize::new(0);
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    static FD: AtomicI32 = AtomicI32::new(-1);
    /// Set in a child after `fork()`: the arena is the parent's, no longer ours to extend.
    static FORKED: AtomicBool = AtomicBool::new(false);
    static LOCK: AtomicBool = AtomicBool::new(false);
    static ATFORK: Once = Once::new();

    struct Books {
        /// Offset of the first byte no extent has used yet.
        bump: usize,
        /// Free extents by size class, as offsets in units of the smallest extent.
        free: [[u32; FREE_SLOTS]; CLASSES],
        free_len: [usize; CLASSES],
        /// Freed extents kept with their pages for reuse, oldest first: `(offset in units of
        /// the smallest extent, size class, bytes charged)`.
        cache: [(u32, u8, usize); CACHE_SLOTS],
        cache_len: usize,
        cache_bytes: usize,
        allocations: usize,
        bytes: usize,
        copied: u64,
    }

    impl Books {
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
        fn evict(&mut self) -> Option<(usize, usize)> {
            if self.cache_len == 0 {
                return None;
            }
            let (at, class, charge) = self.cache[0];
            self.cache.copy_within(1..self.cache_len, 0);
            self.cache_len -= 1;
            self.cache_bytes -= charge;
            Some(((at as usize) << MIN_SHIFT, class as usize))
        }

        fn push_free(&mut self, offset: usize, class: usize) {
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

    fn lock() {
        let mut spins = 0u32;
        while LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now(); // a system call; allocates nothing
            }
        }
    }

    fn unlock() {
        LOCK.store(false, Ordering::Release);
    }

    fn with_books<R>(f: impl FnOnce(&mut Books) -> R) -> R {
        lock();
        // SAFETY: `LOCK` is held, so this is the only reference to the books.
        let r = f(unsafe { &mut *BOOKS.0.get() });
        unlock();
        r
    }

    #[inline]
    pub(super) fn holds(ptr: *const u8) -> bool {
        let base = BASE.load(Ordering::Relaxed);
        base != 0 && (ptr as usize).wrapping_sub(base) < LEN.load(Ordering::Relaxed)
    }

    /// `(base, len, fd)` if this process's own arena exists.
    pub(super) fn shared() -> Option<(usize, usize, i32)> {
        (STATE.load(Ordering::Acquire) == READY && !FORKED.load(Ordering::Relaxed)).then(|| {
            (
                BASE.load(Ordering::Relaxed),
                LEN.load(Ordering::Relaxed),
                FD.load(Ordering::Relaxed),
            )
        })
    }

    /// The arena's base and length, made on first use; `None` if it cannot be had or was
    /// inherited through `fork`.
    fn ready() -> Option<(usize, usize)> {
        match STATE.load(Ordering::Acquire) {
            READY if !FORKED.load(Ordering::Relaxed) => {
                Some((BASE.load(Ordering::Relaxed), LEN.load(Ordering::Relaxed)))
            }
            UNSET => {
                // Registered before the arena exists and outside our lock: glibc may hold its
                // own fork lock while it runs `prepare`, which takes ours.
                ATFORK.call_once(|| {
                    // SAFETY: three `extern "C"` functions with no arguments, as required.
                    unsafe {
                        libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(in_child))
                    };
                });
                lock();
                if STATE.load(Ordering::Relaxed) == UNSET {
                    let made = create();
                    STATE.store(if made { READY } else { FAILED }, Ordering::Release);
                }
                unlock();
                ready()
            }
            _ => None,
        }
    }

    /// Makes the file and maps it; called once, with the lock held. Allocates nothing.
    fn create() -> bool {
        // SAFETY: plain system calls on a descriptor we own, with checked results; the mapping
        // is ours alone until `BASE` publishes it.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let fd = libc::memfd_create(c"decor-heap".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return false;
            }
            for size in SIZES {
                if libc::ftruncate(fd, size as libc::off_t) != 0 {
                    continue;
                }
                let at = libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_NORESERVE,
                    fd,
                    0,
                );
                if at != libc::MAP_FAILED {
                    FD.store(fd, Ordering::Relaxed);
                    LEN.store(size, Ordering::Relaxed);
                    BASE.store(at as usize, Ordering::Release);
                    return true;
                }
            }
            libc::close(fd);
            false
        }
    }

    /// A block of `layout.size()` bytes in an extent with room for `reserve`, or `None` if the
    /// arena cannot take it (too aligned, too large, full, or not ours).
    pub(super) fn alloc(layout: Layout, reserve: usize, zeroed: bool) -> Option<*mut u8> {
        let (base, len) = ready()?;
        let page = PAGE.load(Ordering::Relaxed);
        if layout.align() > page {
            return None;
        }
        let extent = |bytes: usize| {
            bytes
                .checked_add(page)
                .and_then(usize::checked_next_power_of_two)
                .map(|n| n.max(1 << MIN_SHIFT))
                .filter(|&n| n <= len / 8)
        };
        let size = extent(reserve.max(layout.size())).or_else(|| extent(layout.size()))?;
        let class = (size.trailing_zeros() - MIN_SHIFT) as usize;
        let (offset, dirty) = with_books(|b| {
            if let Some(at) = b.take_cached(class) {
                b.allocations += 1;
                b.bytes += layout.size();
                return Some((at, true));
            }
            let at = if b.free_len[class] > 0 {
                b.free_len[class] -= 1;
                (b.free[class][b.free_len[class]] as usize) << MIN_SHIFT
            } else if b.bump.checked_add(size).is_some_and(|end| end <= len) {
                b.bump += size;
                b.bump - size
            } else {
                return None;
            };
            b.allocations += 1;
            b.bytes += layout.size();
            Some((at, false))
        })?;
        let header = (base + offset) as *mut u64;
        // SAFETY: the extent's first page is ours and mapped writable.
        unsafe {
            header.write(HEADER_MAGIC);
            header.add(1).write(size as u64);
            header.add(2).write(layout.size() as u64);
        }
        let block = (base + offset + page) as *mut u8;
        if dirty && zeroed {
            // SAFETY: the block's bytes, ours and writable; a cached extent holds old data.
            unsafe { block.write_bytes(0, layout.size()) };
        }
        Some(block)
    }

    /// The extent of a block: its start and size, from the header page before it.
    fn extent_of(ptr: *const u8) -> (usize, usize, usize) {
        let start = ptr as usize - PAGE.load(Ordering::Relaxed);
        let header = start as *const u64;
        // SAFETY: `ptr` came from `alloc`, which wrote the header a page before it.
        let (magic, size, bytes) = unsafe { (*header, *header.add(1), *header.add(2)) };
        if magic != HEADER_MAGIC {
            // Memory corruption or a pointer we never gave: nothing safe to do with it.
            std::process::abort();
        }
        (start, size as usize, bytes as usize)
    }

    /// Grows or shrinks a block within its extent, if it fits; shrinking frees the tail pages.
    pub(super) fn resize_in_place(ptr: *mut u8, old: usize, new: usize) -> bool {
        if FORKED.load(Ordering::Relaxed) {
            return false;
        }
        let page = PAGE.load(Ordering::Relaxed);
        let (start, size, _) = extent_of(ptr);
        if new > size - page {
            return false;
        }
        if new < old {
            let from = (ptr as usize + new).next_multiple_of(page);
            let to = (ptr as usize + old).next_multiple_of(page);
            if to > from {
                // SAFETY: whole pages of this block past its new end; punching makes them zero,
                // which a later growth in place relies on.
                unsafe { libc::madvise(from as *mut _, to - from, libc::MADV_REMOVE) };
            }
        }
        // SAFETY: the header page of this block's extent, ours and writable.
        unsafe { (start as *mut u64).add(2).write(new as u64) };
        with_books(|b| b.bytes = b.bytes + new - old);
        true
    }

    /// Frees a block: its extent is kept with its pages for reuse while the cache has room (the
    /// oldest cached ones are returned to make room), else its memory goes back to the system
    /// now and the extent to a free list.
    pub(super) fn free(ptr: *mut u8) {
        let (start, size, bytes) = extent_of(ptr);
        if FORKED.load(Ordering::Relaxed) {
            // The parent's file: drop only our private copies of its pages.
            // SAFETY: the block's extent, mapped private in this child.
            unsafe { libc::madvise(start as *mut _, size, libc::MADV_DONTNEED) };
            return;
        }
        let page = PAGE.load(Ordering::Relaxed);
        let offset = start - BASE.load(Ordering::Relaxed);
        let class = (size.trailing_zeros() - MIN_SHIFT) as usize;
        let charge = bytes.next_multiple_of(page) + page;
        let mut evicted = [(0usize, 0usize); CACHE_SLOTS];
        let mut n_evicted = 0;
        let cached = with_books(|b| {
            b.allocations -= 1;
            b.bytes -= bytes;
            if charge > CACHE_BUDGET / 4 {
                return false;
            }
            while b.cache_len == CACHE_SLOTS || b.cache_bytes + charge > CACHE_BUDGET {
                let Some(old) = b.evict() else { break };
                evicted[n_evicted] = old;
                n_evicted += 1;
            }
            b.cache[b.cache_len] = ((offset >> MIN_SHIFT) as u32, class as u8, charge);
            b.cache_len += 1;
            b.cache_bytes += charge;
            true
        });
        if !cached {
            release(offset, class);
        }
        for &(offset, class) in &evicted[..n_evicted] {
            release(offset, class);
        }
    }

    /// Returns an extent's memory to the system and the extent to its free list. Punched before
    /// the extent can be reused, so that the next owner finds zeros.
    fn release(offset: usize, class: usize) {
        let start = BASE.load(Ordering::Relaxed) + offset;
        // SAFETY: the whole extent is free: no block lives in it.
        unsafe {
            libc::madvise(
                start as *mut _,
                1 << (class as u32 + MIN_SHIFT),
                libc::MADV_REMOVE,
            )
        };
        with_books(|b| b.push_free(offset, class));
    }

    /// Returns every cached extent's memory to the system.
    pub(super) fn trim() {
        while let Some((offset, class)) = with_books(|b| b.evict()) {
            release(offset, class);
        }
    }

    pub(super) fn note_copied(bytes: usize) {
        with_books(|b| b.copied += bytes as u64);
    }

    pub(super) fn stats() -> HeapStats {
        let (allocations, bytes, copied, cached) =
            with_books(|b| (b.allocations, b.bytes, b.copied, b.cache_bytes));
        let fd = FD.load(Ordering::Relaxed);
        let mut resident = 0;
        if fd >= 0 {
            // SAFETY: `fstat` on our own descriptor into a zeroed buffer.
            unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::fstat(fd, &mut st) == 0 {
                    resident = st.st_blocks as u64 * 512;
                }
            }
        }
        HeapStats {
            allocations,
            bytes,
            resident_bytes: resident,
            realloc_copied_bytes: copied,
            cached_bytes: cached,
        }
    }

    extern "C" fn before_fork() {
        lock();
    }

    extern "C" fn after_fork() {
        unlock();
    }

    extern "C" fn in_child() {
        FORKED.store(true, Ordering::Relaxed);
        if STATE.load(Ordering::Relaxed) == READY {
            // SAFETY: this child is single-threaded now and the lock was taken before the fork,
            // so the books are stable; the remap replaces our own mapping with a private view
            // of the same pages, at the same addresses.
            unsafe {
                let used = (*BOOKS.0.get()).bump;
                if used > 0 {
                    libc::mmap(
                        BASE.load(Ordering::Relaxed) as *mut _,
                        used,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
                        FD.load(Ordering::Relaxed),
                        0,
                    );
                }
            }
        }
        unlock();
    }
}
