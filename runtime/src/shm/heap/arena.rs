//! The arena: one sparse memory file mapped once, and the blocks of large allocations in its
//! extents (a header page, then the block), process-wide, whichever `SharedHeap` value asks.
//! The bookkeeping of the extents is in [`super::books`].

use std::alloc::Layout;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};

use super::HeapStats;
use super::books::{self, CACHE_SLOTS, MIN_SHIFT, class_of, size_of_class, with_books};

/// Sizes tried for the file, largest first; each is only address space until written.
const SIZES: [usize; 4] = [1 << 40, 1 << 38, 1 << 36, 1 << 34];
const HEADER_MAGIC: u64 = 0x6465_636f_725f_6870; // "decor_hp"

const UNSET: u8 = 0;
pub(super) const READY: u8 = 1;
const FAILED: u8 = 2;

pub(super) static STATE: AtomicU8 = AtomicU8::new(UNSET);
pub(super) static BASE: AtomicUsize = AtomicUsize::new(0);
static LEN: AtomicUsize = AtomicUsize::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(4096);
pub(super) static FD: AtomicI32 = AtomicI32::new(-1);
/// Set in a child after `fork()`: the arena is the parent's, no longer ours to extend.
pub(super) static FORKED: AtomicBool = AtomicBool::new(false);

/// Whether `ptr` lies in the arena.
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
            super::fork::register();
            books::lock();
            if STATE.load(Ordering::Relaxed) == UNSET {
                let made = create();
                STATE.store(if made { READY } else { FAILED }, Ordering::Release);
            }
            books::unlock();
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
    let (offset, dirty) = with_books(|b| b.take(class_of(size), len, layout.size()))?;
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
    let class = class_of(size);
    let charge = bytes.next_multiple_of(page) + page;
    let mut evicted = [(0usize, 0usize); CACHE_SLOTS];
    let (cached, n_evicted) =
        with_books(|b| b.give_back(offset, class, bytes, charge, &mut evicted));
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
    unsafe { libc::madvise(start as *mut _, size_of_class(class), libc::MADV_REMOVE) };
    with_books(|b| b.push_free(offset, class));
}

/// Returns every cached extent's memory to the system.
pub(super) fn trim() {
    while let Some((offset, class)) = with_books(|b| b.evict()) {
        release(offset, class);
    }
}

/// Counts `bytes` a `realloc` copied (it could not grow in place).
pub(super) fn note_copied(bytes: usize) {
    with_books(|b| b.copied += bytes as u64);
}

/// What the arena holds now.
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
