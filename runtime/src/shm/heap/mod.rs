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
//! **Modules.** [`arena`]: the file, its mapping, and blocks in extents (alloc, resize, free);
//! [`books`]: the extents' bookkeeping behind its spin lock (free lists, the cache, the counts);
//! [`fork`]: the `pthread_atfork` handlers.
//!
//! **Lifetime.** The file has no name anywhere (`/dev/shm` included): the kernel frees it when
//! the last process that holds its descriptor or a mapping ends, SIGKILL included. Workers end
//! with the parent.

mod arena;
mod books;
mod fork;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

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
