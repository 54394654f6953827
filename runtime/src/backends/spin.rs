//! Waiting without paying a wake-up for short waits: spin a little, yielding the core, before
//! blocking. Between the chunks of one call the next message is usually a few microseconds away,
//! and a sleeping thread or process costs tens of microseconds to wake on a loaded machine; after
//! the spin, waiters block, so nothing burns a core while idle.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a waiter spins before it blocks.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// How long after waking a sleeping peer its first answer is spun for: a peer asleep since the
/// last call takes a wake-up of its own (the `dispatch` bench's floor: 100-150 µs on a 2-core VM
/// after 100 ms of idle) before it answers, and a waiter that slept meanwhile would pay a
/// second wake-up of its own on top. A worker nudged awake before a call's first frame (see
/// `processes::pool::wake_ahead`) spins as long for it.
pub(crate) const AFTER_WAKE: Duration = Duration::from_micros(500);

/// Tries `ready` until it says yes or [`SPIN`] has passed, yielding between tries; whether it
/// said yes.
pub(crate) fn briefly(ready: impl FnMut() -> bool) -> bool {
    until(Instant::now() + SPIN, ready)
}

/// Tries `ready` until it says yes or `deadline` passes, yielding between tries (at least
/// once); whether it said yes.
pub(crate) fn until(deadline: Instant, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
}

/// When this process last woke a sleeping peer (see [`woke_peer`]), in ns from [`base`].
static WOKE: AtomicU64 = AtomicU64::new(0);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Notes that this process just woke a sleeping peer.
pub(crate) fn woke_peer() {
    let ns = base().elapsed().as_nanos() as u64;
    WOKE.store(ns.max(1), Ordering::Relaxed);
}

/// How long a waiter spins for an answer now: until [`AFTER_WAKE`] after the last wake of a
/// sleeping peer if that is later than [`SPIN`] from now.
pub(crate) fn deadline() -> Instant {
    let short = Instant::now() + SPIN;
    match WOKE.load(Ordering::Relaxed) {
        0 => short,
        ns => short.max(base() + Duration::from_nanos(ns) + AFTER_WAKE),
    }
}
