//! Shared memory between the parent and its workers, so that large inputs are not copied
//! through the channel byte by byte: [`SharedVec`] for one buffer, [`SharedHeap`] for every large
//! allocation of a program, the scratch regions a call copies other inputs into, and the
//! worker's mappings of them. Nothing here knows about messages: the remote path turns a range
//! of a region into what it sends.
//!
//! A region is an anonymous memory file (`memfd_create`) mapped in the parent. The parent sends
//! its descriptor to each worker once, over the channel they already share (`SCM_RIGHTS`), and the
//! worker maps the same pages read-only, so a chunk of a slice of plain data reaches the worker as
//! `(region, offset, len)`. No path is involved: this works for a non-dumpable parent and
//! without `/proc`. A slice that already lives in
//! a [`SharedVec`] is sent without any copy (the way joblib memory-maps numpy arrays into its
//! workers); any other slice of plain data is copied once per call into a reused scratch region,
//! one `memcpy`, instead of being encoded element by element. The memory is freed by the kernel
//! when the last process unmaps it, so nothing leaks when a process dies.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{Mmap, MmapMut};

mod file;
pub(crate) mod heap;

pub use file::MappedFile;
pub use heap::{DEFAULT_THRESHOLD, HeapStats, SharedHeap};

/// An anonymous shared-memory file and its mapping in this process.
struct Region {
    id: u64,
    file: File,
    map: MmapMut,
}

impl Region {
    fn new(size: usize) -> io::Result<Region> {
        let size = size.max(1);
        // SAFETY: `memfd_create` takes a NUL-terminated name and flags; it returns a new
        // descriptor that we own, or -1.
        let fd = unsafe { libc::memfd_create(c"decor-shm".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size as u64)?;
        // SAFETY: the file is private to this process and its workers, which only read it; the
        // parent writes only before a call sends the region and after it has finished.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let region = Region {
            id: next_region_id(),
            file,
            map,
        };
        live()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(region.live());
        Ok(region)
    }

    /// Where this region is mapped here, and how a worker finds it.
    fn live(&self) -> Live {
        Live {
            start: self.map.as_ptr() as usize,
            size: self.map.len(),
            fd: self.file.as_raw_fd(),
            id: self.id,
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        live()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|l| l.id != self.id);
    }
}

/// A new process-unique region id (0 is the shared heap's).
fn next_region_id() -> u64 {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The regions mapped in this process, by address, to recognise a slice that lives in one.
#[derive(Clone, Copy)]
struct Live {
    start: usize,
    size: usize,
    fd: i32,
    id: u64,
}

fn live() -> &'static Mutex<Vec<Live>> {
    static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
    &LIVE
}

fn find(bytes: &[u8]) -> Option<Live> {
    if let Some((start, size, fd)) = heap::region_holding(bytes) {
        return Some(Live {
            start,
            size,
            fd,
            id: heap::HEAP_REGION_ID,
        });
    }
    let (start, end) = (
        bytes.as_ptr() as usize,
        bytes.as_ptr() as usize + bytes.len(),
    );
    live()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .find(|l| start >= l.start && end <= l.start + l.size)
}

/// A `Vec`-like buffer of plain data in shared memory: handed to a `#[parallel_chunks]` function on
/// processes, its chunks reach the workers without being copied.
///
/// ```
/// use decor::shm::SharedVec;
/// let mut xs = SharedVec::<u64>::filled(1_000, 1).unwrap();
/// xs[0] = 5;
/// assert_eq!(xs.iter().sum::<u64>(), 1_004);
/// ```
pub struct SharedVec<T> {
    region: Region,
    len: usize,
    _elements: PhantomData<T>,
}

impl<T> std::fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedVec")
            .field("len", &self.len)
            .field("region", &self.region.id)
            .finish()
    }
}

impl<T: bytemuck::Pod> SharedVec<T> {
    /// `len` zeroed elements.
    pub fn zeroed(len: usize) -> io::Result<Self> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or_else(|| io::Error::other("SharedVec too large"))?;
        Ok(SharedVec {
            region: Region::new(bytes)?,
            len,
            _elements: PhantomData,
        })
    }

    /// `len` copies of `value`.
    pub fn filled(len: usize, value: T) -> io::Result<Self> {
        let mut v = Self::zeroed(len)?;
        v.fill(value);
        Ok(v)
    }

    /// A copy of `xs`.
    pub fn from_slice(xs: &[T]) -> io::Result<Self> {
        let mut v = Self::zeroed(xs.len())?;
        v.copy_from_slice(xs);
        Ok(v)
    }
}

impl<T: bytemuck::Pod> Deref for SharedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        let bytes = &self.region.map[..self.len * size_of::<T>()];
        // The mapping is page-aligned, so aligned for any `T`.
        bytemuck::cast_slice(bytes)
    }
}

impl<T: bytemuck::Pod> DerefMut for SharedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let n = self.len * size_of::<T>();
        bytemuck::cast_slice_mut(&mut self.region.map[..n])
    }
}

/// Scratch regions reused across calls for slices that are not in shared memory already, with
/// when each was last given back.
fn scratch_pool() -> &'static Mutex<Vec<(Region, Instant)>> {
    static POOL: Mutex<Vec<(Region, Instant)>> = Mutex::new(Vec::new());
    &POOL
}

/// Scratch regions kept for reuse at most.
const SCRATCH_KEPT: usize = 2;

/// Frees the scratch regions no call has used for `idle`: memory a burst of large calls needed
/// goes back to the system once the burst is over.
pub(crate) fn release_idle_scratch(idle: Duration) {
    let released: Vec<(Region, Instant)> = {
        let mut pool = scratch_pool().lock().unwrap_or_else(|e| e.into_inner());
        let (old, keep) = std::mem::take(&mut *pool)
            .into_iter()
            .partition(|(_, at)| at.elapsed() >= idle);
        *pool = keep;
        old
    };
    drop(released); // unmapped and closed outside the lock
}

/// The ids of the regions this process has mapped now: a worker keeps its mappings of these
/// only, so that memory the parent freed is not held alive by a worker.
pub(crate) fn live_ids() -> Vec<u64> {
    let mut ids: Vec<u64> = live()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|l| l.id)
        .collect();
    if heap::active() {
        ids.push(heap::HEAP_REGION_ID);
    }
    ids
}

static COPIED: AtomicU64 = AtomicU64::new(0);

/// Counts `n` bytes of a call's input that crossed to a worker process or rank by copy.
pub(crate) fn count_copied(n: usize) {
    if n > 0 {
        COPIED.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Bytes of calls' inputs this process has sent to worker processes or ranks by copy: copied
/// into shared memory, encoded with serde (the other parameters, with every chunk's message;
/// chunks that are not plain data or text), or sent over MPI. What a [`SharedVec`], the
/// [`SharedHeap`] or a [`MappedFile`] saves: a call whose input is read in place leaves it
/// unchanged. Results coming back are not counted.
///
/// ```
/// #[decor::parallel_chunks(chunks = 2, workers = 1, backend = "processes", reduce = "sum")]
/// fn total(xs: &[u64]) -> u64 {
///     xs.iter().sum()
/// }
///
/// fn main() {
///     let xs = vec![1u64; 1_000]; // a plain Vec: copied once per call
///     let before = decor::shm::copied_bytes();
///     assert_eq!(total(&xs), 1_000);
///     assert_eq!(decor::shm::copied_bytes() - before, 8_000);
/// }
/// ```
pub fn copied_bytes() -> u64 {
    COPIED.load(Ordering::Relaxed)
}

/// Leaves the scratch regions to the process that made them: after a `fork()` they are shared
/// with it, and writing them here would change what its calls send.
pub(crate) fn forget_scratch() {
    let mut pool = scratch_pool().lock().unwrap_or_else(|e| e.into_inner());
    for (region, _) in pool.drain(..) {
        live()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|l| l.id != region.id);
        std::mem::forget(region);
    }
}

/// A scratch region lent to one call; returned to the pool when dropped.
pub(crate) struct Scratch(Option<Region>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let mut pool = scratch_pool().lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < SCRATCH_KEPT {
                pool.push((r, Instant::now()));
            }
        }
    }
}

/// Copies of chunks into a scratch region, made by the calling thread just before each chunk is
/// sent: the copy overlaps the workers' work on earlier chunks.
pub(crate) struct PendingCopy {
    src: *const u8,
    dst: *mut u8,
    len: usize,
}

// SAFETY: `src` points into the caller's input, which the caller keeps borrowed (through
// `Prepared<'a>`) until every chunk's result is in; `dst` into a scratch region the call owns.
// Each chunk's byte range is copied by exactly one thread, and ranges do not overlap.
unsafe impl Send for PendingCopy {}
// SAFETY: as above: concurrent calls of `copy` touch disjoint ranges.
unsafe impl Sync for PendingCopy {}

impl PendingCopy {
    /// Copies bytes `offset..offset + len` of the input to the same place in the region.
    pub(crate) fn copy(&self, offset: usize, len: usize) {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked above) of both buffers, which do not overlap (one is ours);
        // see the `Send` impl for why the range is not aliased.
        unsafe { std::ptr::copy_nonoverlapping(self.src.add(offset), self.dst.add(offset), len) }
    }
}

/// A range of bytes in a shared region: what a worker maps and where it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// The region's descriptor in this process, sent to a worker that does not have it yet.
    pub(crate) fd: i32,
    /// The region's process-unique id, to reuse a mapping.
    pub(crate) id: u64,
    /// The region's size.
    pub(crate) size: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// The chunks of `bytes`, cut at the byte lengths `lengths`, as shared-memory ranges: in
/// place if `bytes` lives in a region, else in a scratch region, the returned guard keeping it
/// until the call ends and the [`PendingCopy`] saying what each chunk still needs copied.
pub(crate) fn share(
    bytes: &[u8],
    lengths: &[usize],
) -> io::Result<(Vec<Placed>, Scratch, Option<PendingCopy>)> {
    share_from(find(bytes), bytes, lengths)
}

fn share_from(
    found: Option<Live>,
    bytes: &[u8],
    lengths: &[usize],
) -> io::Result<(Vec<Placed>, Scratch, Option<PendingCopy>)> {
    let Some(l) = found else {
        let mut region = scratch_region(bytes.len())?;
        COPIED.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let pending = PendingCopy {
            src: bytes.as_ptr(),
            dst: region.map.as_mut_ptr(),
            len: bytes.len(),
        };
        return Ok((
            ranges(region.live(), 0, lengths),
            Scratch(Some(region)),
            Some(pending),
        ));
    };
    let base = bytes.as_ptr() as usize - l.start;
    Ok((ranges(l, base, lengths), Scratch(None), None))
}

/// Chunks made for the call, of `lengths` bytes each, written straight into a scratch region by
/// `fill(chunk, its bytes)`, the chunks in parallel: data laid out for the workers (a slice of
/// strings as one table) is written once, where they read it.
pub(crate) fn share_filled(
    lengths: &[usize],
    fill: impl Fn(usize, &mut [u8]) + Sync,
) -> io::Result<(Vec<Placed>, Scratch)> {
    use rayon::prelude::*;
    let total: usize = lengths.iter().sum();
    let mut region = scratch_region(total)?;
    COPIED.fetch_add(total as u64, Ordering::Relaxed);
    let mut rest = &mut region.map[..total];
    let mut parts = Vec::with_capacity(lengths.len());
    for &len in lengths {
        let (part, tail) = rest.split_at_mut(len);
        parts.push(part);
        rest = tail;
    }
    parts
        .into_par_iter()
        .enumerate()
        .for_each(|(k, part)| fill(k, part));
    Ok((ranges(region.live(), 0, lengths), Scratch(Some(region))))
}

/// A scratch region of at least `len` bytes: a pooled one, or a new one.
fn scratch_region(len: usize) -> io::Result<Region> {
    let mut pool = scratch_pool().lock().unwrap_or_else(|e| e.into_inner());
    match pool.iter().position(|(r, _)| r.map.len() >= len) {
        Some(i) => Ok(pool.swap_remove(i).0),
        None => {
            drop(pool);
            Region::new(len.next_power_of_two())
        }
    }
}

/// The ranges of consecutive chunks of `lengths` bytes from `base` in region `l`.
fn ranges(l: Live, base: usize, lengths: &[usize]) -> Vec<Placed> {
    let mut offset = base;
    lengths
        .iter()
        .map(|&len| {
            let s = Placed {
                fd: l.fd,
                id: l.id,
                size: l.size as u64,
                offset: offset as u64,
                len: len as u64,
            };
            offset += len;
            s
        })
        .collect()
}

/// A worker's mappings of its parent's regions, by region id; a few are kept for reuse.
#[derive(Default)]
pub(crate) struct Mappings {
    maps: HashMap<u64, Mmap>,
}

impl Mappings {
    /// Unmaps the regions the parent no longer has.
    pub(crate) fn keep_only(&mut self, live: &[u64]) {
        self.maps.retain(|id, _| live.contains(id));
    }

    /// Maps a region the parent sent with its descriptor, read-only.
    pub(crate) fn add(&mut self, id: u64, size: u64, file: File) -> Result<(), String> {
        // SAFETY: the parent does not write the region while a call that sent it runs; we only
        // read it, through a read-only mapping.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| format!("shared region {id}: {e}"))?;
        if (map.len() as u64) < size {
            return Err(format!("shared region {id}: smaller than announced"));
        }
        self.maps.insert(id, map);
        Ok(())
    }

    /// The bytes at `offset..offset + len` of region `id`.
    pub(crate) fn bytes(&self, id: u64, offset: u64, len: u64) -> Result<&[u8], String> {
        let map = self
            .maps
            .get(&id)
            .ok_or_else(|| format!("shared region {id} was never received"))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= map.len() as u64)
            .ok_or("a range outside its shared region")?;
        Ok(&map[offset as usize..end as usize])
    }
}
