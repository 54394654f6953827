//! Waiting without paying a wake-up for short waits: spin a little, yielding the core, before
//! blocking. Between the chunks of one call the next message is usually a few microseconds away,
//! and a sleeping thread or process costs tens of microseconds to wake on a loaded machine; after
//! the spin, waiters block, so nothing burns a core while idle.

use std::time::{Duration, Instant};

/// How long a waiter spins before it blocks.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// Tries `ready` until it says yes or [`SPIN`] has passed, yielding between tries; whether it
/// said yes.
pub(crate) fn briefly(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() >= SPIN {
            return false;
        }
        std::thread::yield_now();
    }
}
