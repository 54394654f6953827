//! The small messages between two processes of one host: two byte rings in a shared memory file,
//! one each way, with a futex to wake a reader only when it sleeps. Used between the parent and
//! each worker process, and between rank 0 and each rank of an MPI job on its host.
//!
//! **Why.** Over a socket, every frame costs a system call on each side, and a reader that
//! waits is a sleeping process to wake; MPI's own messages cost a progress loop and, for a rank
//! that sleeps, a wake-up datagram. Through a ring, a frame is a copy into shared memory and an
//! atomic store; the writer makes a system call (`FUTEX_WAKE`) only when the reader said it
//! sleeps. The other channel (the worker's socket, or MPI) stays for what a ring cannot carry:
//! descriptors (`SCM_RIGHTS`), frames larger than half a ring, and the end of the peer.
//!
//! **Layout.** The file holds two rings (parent to worker, then worker to parent). A ring is a
//! header of three cache lines (`head`: bytes ever written, by the writer; `tail`: bytes ever
//! read, by the reader; `sleeping`: the reader's futex word) and `capacity` bytes of records. A
//! record is an 8-byte header (the frame's length, little-endian, and 4 spare bytes) and the
//! frame, padded to 8 bytes; a length of `u32::MAX` is a marker, "the next frame is on the
//! other channel", which keeps the order of frames across the two.
//!
//! **Faults.** A writer publishes a record (`head`, with release ordering) only after copying
//! all of it, so a process killed mid-write leaves nothing half-written to read. A reader never
//! trusts a length it reads: one larger than what `head` says is written is a broken channel.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;

/// Bytes of records in each ring.
pub(crate) const CAPACITY: usize = 256 << 10;

/// The largest frame a ring carries; larger ones go on the other channel after a marker.
pub(crate) const MAX_RECORD: usize = CAPACITY / 2;

/// The largest `Run` frame a caller writes to a ring: small enough that the two runs in flight
/// and the markers behind them always fit, so the caller never waits for room.
pub(crate) const RUN_FRAME: usize = CAPACITY / 8;

const LINE: usize = 64;
const HEADER: usize = 4 * LINE;
const MARKER: u32 = u32::MAX;

/// The two rings of one worker, mapped in this process.
pub(crate) struct Rings {
    map: memmap2::MmapRaw,
}

/// Which end of the channel this process is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Parent,
    Worker,
}

/// What a ring held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Popped {
    /// A frame, now in the buffer given.
    Frame,
    /// The next frame is on the other channel (the socket, or MPI).
    Elsewhere,
}

impl Rings {
    /// A new pair of empty rings in a memory file of their own; the file is for the worker.
    pub(crate) fn create() -> io::Result<(Rings, File)> {
        // SAFETY: `memfd_create` takes a NUL-terminated name and flags; it returns a new
        // descriptor we own, or -1.
        let fd = unsafe { libc::memfd_create(c"decor-ring".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        file.set_len(Self::size() as u64)?;
        Ok((Self::map(&file)?, file))
    }

    /// Maps the rings of `file`, which another process created with [`create`](Self::create).
    pub(crate) fn map(file: &File) -> io::Result<Rings> {
        if file.metadata()?.len() != Self::size() as u64 {
            return Err(io::Error::other("the ring file has the wrong size"));
        }
        let map = memmap2::MmapOptions::new()
            .len(Self::size())
            .map_raw(file)?;
        Ok(Rings { map })
    }

    fn size() -> usize {
        2 * (HEADER + CAPACITY)
    }

    /// The ring this end writes to.
    pub(crate) fn outgoing(&self, end: End) -> Ring<'_> {
        self.ring(end == End::Worker)
    }

    /// The ring this end reads from.
    pub(crate) fn incoming(&self, end: End) -> Ring<'_> {
        self.ring(end == End::Parent)
    }

    fn ring(&self, second: bool) -> Ring<'_> {
        let base = self.map.as_mut_ptr();
        // SAFETY: both rings lie inside the mapping, which `self` keeps alive as long as the
        // returned `Ring` borrows it.
        let base = unsafe { base.add(if second { HEADER + CAPACITY } else { 0 }) };
        Ring {
            base,
            _rings: std::marker::PhantomData,
        }
    }
}

/// One direction of the channel. Exactly one thread at a time writes (callers hold a lock if
/// several could), and exactly one reads.
pub(crate) struct Ring<'a> {
    base: *mut u8,
    _rings: std::marker::PhantomData<&'a Rings>,
}

impl Ring<'_> {
    fn word64(&self, line: usize) -> &AtomicU64 {
        // SAFETY: the header's lines are inside the mapping, 8-aligned (the mapping is
        // page-aligned), and only ever accessed atomically, by both processes.
        unsafe { &*self.base.add(line * LINE).cast::<AtomicU64>() }
    }

    fn head(&self) -> &AtomicU64 {
        self.word64(0)
    }

    fn tail(&self) -> &AtomicU64 {
        self.word64(1)
    }

    fn sleeping(&self) -> &AtomicU32 {
        // SAFETY: as for `word64`; a futex word is 4 bytes, 4-aligned.
        unsafe { &*self.base.add(2 * LINE).cast::<AtomicU32>() }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the records follow the header inside the mapping.
        unsafe { self.base.add(HEADER) }
    }

    /// Copies `bytes` in at ring position `at`, wrapping around the end.
    fn put(&self, at: u64, bytes: &[u8]) {
        let start = (at % CAPACITY as u64) as usize;
        let first = bytes.len().min(CAPACITY - start);
        // SAFETY: both parts lie inside the records; the writer owns the bytes between `head`
        // and `tail + CAPACITY`, which the reader does not touch until `head` moves past them.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data().add(start), first);
            std::ptr::copy_nonoverlapping(
                bytes[first..].as_ptr(),
                self.data(),
                bytes.len() - first,
            );
        }
    }

    /// Copies `out.len()` bytes out from ring position `at`, wrapping around the end.
    fn get(&self, at: u64, out: &mut [u8]) {
        let start = (at % CAPACITY as u64) as usize;
        let first = out.len().min(CAPACITY - start);
        // SAFETY: both parts lie inside the records, between `tail` and `head`: written and
        // published by the writer, which does not touch them until `tail` moves past them.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data().add(start), out.as_mut_ptr(), first);
            let rest = out.len() - first;
            std::ptr::copy_nonoverlapping(self.data(), out[first..].as_mut_ptr(), rest);
        }
    }

    /// Writes one frame (at most [`MAX_RECORD`] bytes) if there is room now; whether it did. The
    /// reader is woken if it sleeps.
    pub(crate) fn push(&self, frame: &[u8]) -> bool {
        debug_assert!(frame.len() <= MAX_RECORD);
        self.push_record(frame.len() as u32, frame)
    }

    /// Writes the marker "the next frame is on the other channel" if there is room now.
    pub(crate) fn push_marker(&self) -> bool {
        self.push_record(MARKER, &[])
    }

    /// Wakes the reader if it sleeps, with nothing to read yet: a call about to write wakes its
    /// sleeping workers first, so that their wake-up runs while it prepares the first frames.
    pub(crate) fn nudge(&self) {
        if self.sleeping().load(Ordering::Relaxed) != 0
            && self.sleeping().swap(0, Ordering::AcqRel) != 0
        {
            futex_wake(self.sleeping());
            super::spin::woke_peer();
        }
    }

    fn push_record(&self, len: u32, frame: &[u8]) -> bool {
        let need = 8 + frame.len().next_multiple_of(8) as u64;
        let head = self.head().load(Ordering::Relaxed);
        let tail = self.tail().load(Ordering::Acquire);
        if head - tail + need > CAPACITY as u64 {
            return false;
        }
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&len.to_le_bytes());
        self.put(head, &header);
        self.put(head + 8, frame);
        self.head().store(head + need, Ordering::Release);
        // Pairs with the reader's fence between saying it sleeps and looking once more: either
        // it sees the record, or we see that it sleeps.
        fence(Ordering::SeqCst);
        self.nudge();
        true
    }

    /// Whether a record waits to be read.
    pub(crate) fn has_data(&self) -> bool {
        self.head().load(Ordering::Acquire) != self.tail().load(Ordering::Relaxed)
    }

    /// Takes the next record, if one was written: a frame into `out` (replacing what it held), or
    /// the marker. An error means the ring's contents cannot be trusted.
    pub(crate) fn pop(&self, out: &mut Vec<u8>) -> io::Result<Option<Popped>> {
        let head = self.head().load(Ordering::Acquire);
        let tail = self.tail().load(Ordering::Relaxed);
        if head == tail {
            return Ok(None);
        }
        let mut header = [0u8; 8];
        self.get(tail, &mut header);
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let (popped, used) = if len == MARKER {
            (Popped::Elsewhere, 8)
        } else {
            let used = 8 + (len as u64).next_multiple_of(8);
            if len as usize > MAX_RECORD || used > head - tail {
                return Err(io::Error::other(format!(
                    "a ring record of {len} bytes where {} are written",
                    head - tail
                )));
            }
            out.clear();
            out.resize(len as usize, 0);
            self.get(tail + 8, out);
            (Popped::Frame, used)
        };
        self.tail().store(tail + used, Ordering::Release);
        Ok(Some(popped))
    }

    /// Sleeps until a record is written, the writer [nudges](Ring::nudge), or `limit` passes
    /// (the caller then looks again, and checks whether the writer still lives); whether the
    /// writer woke it. Never sleeps if a record is there already.
    pub(crate) fn wait(&self, limit: Duration) -> bool {
        self.sleeping().store(1, Ordering::Relaxed);
        // Pairs with the writer's fence after publishing.
        fence(Ordering::SeqCst);
        if !self.has_data() {
            futex_wait(self.sleeping(), 1, limit);
        }
        // The writer clears the word before it wakes us.
        self.sleeping().swap(0, Ordering::AcqRel) == 0
    }
}

/// Sleeps until a record is written to any of `rings` or `limit` passes; never sleeps if one
/// is there already. One `futex_waitv` (Linux 5.16); on an older kernel, short sleeps on the
/// first ring.
pub(crate) fn wait_any(rings: &[Ring<'_>], limit: Duration) {
    match rings {
        [] => return std::thread::sleep(limit),
        [one] => {
            one.wait(limit);
            return;
        }
        _ => {}
    }
    for r in rings {
        r.sleeping().store(1, Ordering::Relaxed);
    }
    fence(Ordering::SeqCst);
    if !rings.iter().any(Ring::has_data) {
        let waiters: Vec<FutexWaitv> = rings
            .iter()
            .take(128)
            .map(|r| FutexWaitv {
                val: 1,
                uaddr: r.sleeping().as_ptr() as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            })
            .collect();
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `clock_gettime` writes the time into `now`.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let until = Duration::new(now.tv_sec as u64, now.tv_nsec as u32) + limit;
        let until = libc::timespec {
            tv_sec: until.as_secs() as libc::time_t,
            tv_nsec: until.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `waiters` describes live 4-byte atomics in shared mappings, for the duration of
        // the call; the kernel sleeps only while each still holds 1, until one is woken or
        // `until` (absolute, on the monotonic clock) passes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                waiters.as_ptr(),
                waiters.len() as u32,
                0u32,
                &until as *const libc::timespec,
                libc::CLOCK_MONOTONIC,
            )
        };
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            rings[0].wait(limit.min(Duration::from_millis(1)));
        }
    }
    for r in rings {
        r.sleeping().store(0, Ordering::Relaxed);
    }
}

/// The kernel's `struct futex_waitv`.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// A 32-bit futex word, shared between processes (no `FUTEX2_PRIVATE`).
const FUTEX2_SIZE_U32: u32 = 0x02;

// SAFETY: a `Ring` is a view of shared memory that both processes access only through atomics
// and the copying protocol above; which thread holds the view does not matter.
unsafe impl Send for Ring<'_> {}

fn futex_wait(word: &AtomicU32, expected: u32, limit: Duration) {
    let ts = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live 4-byte atomic in memory shared with the writer (so not
    // FUTEX_PRIVATE); the kernel sleeps only while it still holds `expected`, until woken or
    // `ts` passes; a signal or a spurious wake-up returns early, which callers allow for.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: wakes the waiters on `word`, a live atomic in the shared mapping; no memory is
    // written.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn frames_and_markers_come_out_in_order_across_the_wrap() {
        let (rings, file) = Rings::create().unwrap();
        let theirs = Rings::map(&file).unwrap();
        let w = rings.outgoing(End::Parent);
        let r = theirs.incoming(End::Worker);
        let mut out = Vec::new();
        // Records of odd sizes, many times around the ring.
        for i in 0..2000usize {
            let frame: Vec<u8> = (0..(i * 37) % 5000 + 1).map(|b| (b + i) as u8).collect();
            assert!(w.push(&frame));
            if i % 7 == 0 {
                assert!(w.push_marker());
            }
            assert_eq!(r.pop(&mut out).unwrap(), Some(Popped::Frame));
            assert_eq!(out, frame);
            if i % 7 == 0 {
                assert_eq!(r.pop(&mut out).unwrap(), Some(Popped::Elsewhere));
            }
            assert_eq!(r.pop(&mut out).unwrap(), None);
        }
    }

    #[test]
    fn a_full_ring_refuses_until_read() {
        let (rings, _file) = Rings::create().unwrap();
        let w = rings.outgoing(End::Worker);
        let r = rings.incoming(End::Parent);
        let frame = vec![7u8; MAX_RECORD];
        assert!(w.push(&frame));
        assert!(
            !w.push(&frame),
            "the second half-ring frame does not fit with its header"
        );
        assert!(w.push(&[1, 2, 3]));
        let mut out = Vec::new();
        assert_eq!(r.pop(&mut out).unwrap(), Some(Popped::Frame));
        assert_eq!(out.len(), MAX_RECORD);
        assert!(w.push(&frame));
        assert_eq!(r.pop(&mut out).unwrap(), Some(Popped::Frame));
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn a_nudge_wakes_a_sleeping_reader_with_nothing_to_read_and_a_timeout_is_told_apart() {
        let (rings, _file) = Rings::create().unwrap();
        let r = rings.incoming(End::Worker);
        assert!(
            !r.wait(Duration::from_millis(5)),
            "nobody woke it: a timeout"
        );
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let r = rings.incoming(End::Worker);
                let start = Instant::now();
                (r.wait(Duration::from_secs(20)), start.elapsed())
            });
            // Nudge until the reader sleeps and is woken (a nudge of a reader awake is nothing).
            while !reader.is_finished() {
                rings.outgoing(End::Parent).nudge();
                std::thread::sleep(Duration::from_millis(10));
            }
            let (woken, waited) = reader.join().unwrap();
            assert!(woken, "the nudge woke it");
            assert!(
                waited < Duration::from_secs(10),
                "woken, not timed out: {waited:?}"
            );
            assert!(!r.has_data(), "a nudge writes nothing");
        });
    }

    #[test]
    fn a_sleeping_reader_is_woken_by_a_write_from_another_thread() {
        let (rings, _file) = Rings::create().unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let r = rings.incoming(End::Worker);
                let mut out = Vec::new();
                let start = Instant::now();
                loop {
                    if r.pop(&mut out).unwrap().is_some() {
                        return (out, start.elapsed());
                    }
                    r.wait(Duration::from_secs(20));
                }
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(rings.outgoing(End::Parent).push(b"hello"));
            let (out, waited) = reader.join().unwrap();
            assert_eq!(out, b"hello");
            assert!(
                waited < Duration::from_secs(10),
                "woken, not timed out: {waited:?}"
            );
        });
    }

    #[test]
    fn a_reader_of_several_rings_is_woken_by_a_write_to_any() {
        let all: Vec<_> = (0..3).map(|_| Rings::create().unwrap().0).collect();
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let rings: Vec<_> = all.iter().map(|r| r.incoming(End::Parent)).collect();
                let start = Instant::now();
                while !rings.iter().any(Ring::has_data) {
                    wait_any(&rings, Duration::from_secs(20));
                }
                start.elapsed()
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(all[2].outgoing(End::Worker).push(b"news"));
            let waited = reader.join().unwrap();
            assert!(
                waited < Duration::from_secs(10),
                "woken, not timed out: {waited:?}"
            );
        });
    }

    #[test]
    fn a_length_past_what_is_written_is_an_error() {
        let (rings, _file) = Rings::create().unwrap();
        let w = rings.outgoing(End::Parent);
        assert!(w.push(b"12345678"));
        // Corrupt the record's length, as a broken peer could.
        w.put(0, &1000u32.to_le_bytes());
        let err = rings
            .incoming(End::Worker)
            .pop(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("1000 bytes"), "{err}");
    }
}
