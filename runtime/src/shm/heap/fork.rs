//! After `fork()` without `exec`, the child must not write the parent's memory: these
//! `pthread_atfork` handlers hold the books' lock across the fork (so the child finds them
//! whole), then remap the used part of the arena in the child as a private, copy-on-write view
//! of the same file, at the same addresses, and turn the arena off there (see the module docs
//! of [`heap`](super)).

use std::sync::Once;
use std::sync::atomic::Ordering;

use super::arena::{BASE, FD, FORKED, READY, STATE};
use super::books::{lock, unlock, used_while_locked};

static ATFORK: Once = Once::new();

/// Registers the handlers, once per process. Called before the arena exists and outside the
/// books' lock: glibc may hold its own fork lock while it runs `before_fork`, which takes ours.
pub(super) fn register() {
    ATFORK.call_once(|| {
        // SAFETY: three `extern "C"` functions with no arguments, as required.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(in_child)) };
    });
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
        let used = used_while_locked();
        if used > 0 {
            // SAFETY: this child is single-threaded now and the lock was taken before the
            // fork, so the books are stable; the remap replaces our own mapping with a private
            // view of the same pages, at the same addresses.
            unsafe {
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
