//! The machine's own floor for waking two worker processes and hearing back: two forked
//! processes wait on futexes in a shared page (after spinning 50 µs, as decor's workers do), no
//! decor code. A dispatch figure is judged against this, measured in the same run.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Requests to the two processes, then their answers.
fn words() -> &'static [AtomicU32; 4] {
    static WORDS: OnceLock<usize> = OnceLock::new();
    let at = *WORDS.get_or_init(|| {
        // SAFETY: a new shared anonymous page; it stays mapped for the life of the bench.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        let words = page as usize;
        for k in 0..2 {
            // SAFETY: the child only touches atomics in the shared page and makes system
            // calls (`prctl`, `futex`, `clock_gettime`), all safe after `fork` in a process
            // with threads; it never returns, and dies with this process.
            unsafe {
                if libc::fork() == 0 {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    answer(&*(words as *const [AtomicU32; 4]), k);
                }
            }
        }
        words
    });
    // SAFETY: the page lives as long as the program; its words are only used atomically.
    unsafe { &*(at as *const [AtomicU32; 4]) }
}

fn answer(w: &[AtomicU32; 4], k: usize) -> ! {
    let mut seen = 0;
    loop {
        let start = Instant::now();
        while w[k].load(Ordering::Acquire) == seen {
            if start.elapsed() < Duration::from_micros(50) {
                std::thread::yield_now();
                continue;
            }
            // SAFETY: waits on a live atomic in the shared page while it still holds `seen`.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    w[k].as_ptr(),
                    libc::FUTEX_WAIT,
                    seen,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
        seen = w[k].load(Ordering::Acquire);
        w[2 + k].store(seen, Ordering::Release);
    }
}

/// Wakes both processes and waits until both answered.
pub fn round() {
    let w = words();
    let n = w[0].fetch_add(1, Ordering::AcqRel) + 1;
    w[1].store(n, Ordering::Release);
    for word in &w[..2] {
        // SAFETY: wakes waiters on a live atomic in the shared page.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
    }
    // Yielding, as decor's caller does: on two cores one of them runs on this one.
    while w[2].load(Ordering::Acquire) != n || w[3].load(Ordering::Acquire) != n {
        std::thread::yield_now();
    }
}
