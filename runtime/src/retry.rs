//! Failures as services produce them: a chunk run again after an `Err` (or a dead worker, or a
//! timeout), the wait before each retry, and a cap on how fast a function's chunks start.
//!
//! These are the `retries`, `backoff`, `retry_if` and `rate` options of `#[parallel_chunks]`, and
//! [`Plan::retries`](crate::Plan::retries), [`Plan::backoff`](crate::Plan::backoff) and
//! [`Plan::rate`](crate::Plan::rate) by hand:
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//! use decor::{Plan, retry::Rate};
//!
//! static TRIES: AtomicUsize = AtomicUsize::new(0);
//!
//! // #[parallel_chunks(chunks = 4, retries = 3, backoff = "1ms..10ms", rate = "1000/s", reduce = "sum")]
//! let plan = Plan::new().named("flaky").chunks(4).retries(3)
//!     .backoff(Duration::from_millis(1), Duration::from_millis(10))
//!     .rate(Rate::per_second(1000));
//! let sums = plan.try_map_retrying(&[1u64, 2, 3, 4][..], || (), |c: &[u64], ()| {
//!     // Chunk 2 fails its first attempt, as a service answering 503 would.
//!     if c[0] == 3 && TRIES.fetch_add(1, Ordering::Relaxed) == 0 { return Err("503") }
//!     Ok(c[0])
//! }, &|e: &&str| *e == "503");
//! assert_eq!(sums.unwrap().unwrap(), [1, 2, 3, 4]);
//! ```
//!
//! **Who waits where.** A chunk waiting out its backoff holds nothing: on threads and serial it
//! goes back to the call's queue with the time it may run again, and the worker takes other
//! chunks meanwhile; an `async` call waits on a timer polled by its own future; on processes and
//! MPI the caller sends other chunks to the worker. A chunk waiting for the rate does hold its
//! worker, since every other chunk of the function waits for the same rate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The wait before each retry: exponential from `min`, doubling with each attempt up to `max`,
/// with full jitter (a uniform draw between `min` and the attempt's cap), so that the chunks
/// that failed together do not all come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The shortest wait, and the cap of the first retry's draw's lower end.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// What `retries` alone gets: 100 ms, doubling up to 10 s.
    pub const DEFAULT: Backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    /// The cap of retry `attempt` (1 for the first retry): `min * 2^(attempt-1)`, at most `max`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = decor::retry::Backoff { min: Duration::from_millis(100), max: Duration::from_secs(1) };
    /// assert_eq!(b.cap(1), Duration::from_millis(100));
    /// assert_eq!(b.cap(3), Duration::from_millis(400));
    /// assert_eq!(b.cap(9), Duration::from_secs(1));
    /// ```
    pub fn cap(&self, attempt: u32) -> Duration {
        let doubled = self
            .min
            .checked_mul(1u32 << attempt.saturating_sub(1).min(31))
            .unwrap_or(self.max);
        doubled.clamp(self.min, self.max.max(self.min))
    }

    /// The wait before retry `attempt`: a uniform draw between `min` and [`cap`](Self::cap).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = decor::retry::Backoff { min: Duration::from_millis(100), max: Duration::from_secs(1) };
    /// let w = b.wait(3);
    /// assert!(w >= Duration::from_millis(100) && w <= Duration::from_millis(400));
    /// ```
    pub fn wait(&self, attempt: u32) -> Duration {
        let (low, high) = (self.min, self.cap(attempt));
        let span = (high - low).as_nanos() as u64;
        low + Duration::from_nanos(if span == 0 { 0 } else { random() % (span + 1) })
    }
}

/// At most `starts` chunk starts per `per`, spaced evenly (`per / starts` apart): `rate =
/// "50/min"` is `Rate::per_minute(50)`, one start every 1.2 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Starts allowed in each period.
    pub starts: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// `n` starts a second.
    pub const fn per_second(n: u32) -> Rate {
        Rate {
            starts: n,
            per: Duration::from_secs(1),
        }
    }

    /// `n` starts a minute.
    pub const fn per_minute(n: u32) -> Rate {
        Rate {
            starts: n,
            per: Duration::from_secs(60),
        }
    }

    /// The time between two starts.
    fn interval(&self) -> Duration {
        self.per / self.starts.max(1)
    }
}

/// What a chunk's result asks of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judged {
    /// A result to keep.
    Keep,
    /// An `Err` that stops the call.
    Stop,
    /// An `Err` that `retry_if` says is worth another attempt, as it reads in a log.
    Retry(String),
}

/// A chunk's result, judged.
pub(crate) type Judge<'a, R> = &'a (dyn Fn(&R) -> Judged + Sync);

/// One call's retry settings, as a backend applies them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Attempts after the first.
    pub(crate) retries: u32,
    pub(crate) backoff: Backoff,
    /// The function's shared limiter, when it has a `rate`.
    pub(crate) rate: Option<&'static Limiter>,
}

impl Policy {
    /// Whether a chunk that failed its attempt `attempt` (0 for the first run) runs again.
    pub(crate) fn again(&self, attempt: u32) -> bool {
        attempt < self.retries
    }

    /// Waits until the function's rate lets a chunk start, and takes that start.
    pub(crate) fn before_start(&self) {
        let Some(limiter) = self.rate else {
            return;
        };
        let mut wait = limiter.wait_before_start(true);
        while let Some(at) = wait {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            wait = limiter.wait_before_start(false);
        }
    }
}

/// A GCRA limiter ("generic cell rate algorithm", the token bucket as one time): the earliest
/// time the next start may come. Each start takes the later of now and that time and moves it one
/// interval on, and is let through only one interval after the last start that really happened
/// ([`start_now`](Limiter::start_now): a start can come later than granted), so starts are at
/// least `per / starts` apart and no window of length `per` ever holds more than `starts` of them. No burst is allowed: a service that counts requests per
/// minute counts them in any minute, not in one that starts where ours does.
///
/// Written here rather than taken from `governor`: it is one atomic, and the async path needs the
/// time a start is granted for, to wait for it on a timer; `governor` gives that too, but brings
/// `futures-util`, `parking_lot`, `hashbrown` and a random-number crate into every user's build.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Nanoseconds after `origin` of the earliest time the next start may come.
    next: AtomicU64,
    /// Nanoseconds after `origin`, plus one, of the last start that happened (0: none yet).
    last: AtomicU64,
    interval: u64,
    origin: Instant,
}

impl Limiter {
    fn new(rate: Rate) -> Limiter {
        Limiter {
            next: AtomicU64::new(0),
            last: AtomicU64::new(0),
            interval: rate.interval().as_nanos().max(1) as u64,
            origin: Instant::now(),
        }
    }

    /// Takes the next start: the time it may happen (now, or later when the rate is used up).
    pub(crate) fn take(&self) -> Instant {
        let now = self.origin.elapsed().as_nanos() as u64;
        let mut seen = self.next.load(Ordering::Relaxed);
        loop {
            let at = seen.max(now);
            match self.next.compare_exchange_weak(
                seen,
                at + self.interval,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.origin + Duration::from_nanos(at),
                Err(now_seen) => seen = now_seen,
            }
        }
    }

    /// Whether a chunk may start now (`None`, and the start is marked), or the time to wait
    /// for; `take_grant` for a chunk not yet granted its start (see [`take`](Self::take)).
    pub(crate) fn wait_before_start(&self, take_grant: bool) -> Option<Instant> {
        take_grant
            .then(|| self.take())
            .filter(|&at| at > Instant::now())
            .or_else(|| self.start_now().err())
    }

    /// Marks a start happening now, if it comes at least one interval after the last start
    /// that happened; else the time it may. A start [`take`](Self::take) granted can come late
    /// (a sleep or a timer that woke late, a busy machine), and the start after it, granted one
    /// interval after the grant, must still keep one interval from when it really happened.
    pub(crate) fn start_now(&self) -> Result<(), Instant> {
        let now = self.origin.elapsed().as_nanos() as u64 + 1;
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            if last != 0 && now < last + self.interval {
                return Err(self.origin + Duration::from_nanos(last - 1 + self.interval));
            }
            match self
                .last
                .compare_exchange_weak(last, now, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(seen) => last = seen,
            }
        }
    }
}

/// The limiter of `function` at `rate`, shared by every call of it in this process (made on
/// its first call, kept for the life of the process: one per function and rate).
pub(crate) fn limiter(function: &'static str, rate: Rate) -> &'static Limiter {
    type Limiters = Mutex<HashMap<(&'static str, u32, Duration), &'static Limiter>>;
    static LIMITERS: OnceLock<Limiters> = OnceLock::new();
    let mut all = LIMITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    all.entry((function, rate.starts, rate.per))
        .or_insert_with(|| Box::leak(Box::new(Limiter::new(rate))))
}

/// A number for jitter, from a per-thread xorshift seeded by the standard library's randomly
/// keyed hasher.
fn random() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local!(static STATE: Cell<u64> = Cell::new({
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        h.finish() | 1
    }));
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_spaces_starts_one_interval_apart() {
        let l = Limiter::new(Rate::per_second(10));
        let start = Instant::now();
        let times: Vec<Instant> = (0..5).map(|_| l.take()).collect();
        assert!(times[0] <= start + Duration::from_millis(5));
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(100));
        }
    }

    #[test]
    fn a_start_that_came_late_pushes_the_next_one_interval_after_it() {
        let l = Limiter::new(Rate::per_second(20)); // 50 ms
        assert!(l.take() <= Instant::now());
        assert_eq!(l.start_now(), Ok(()));
        let granted = l.take();
        // It starts 20 ms after its grant: the next grant (one interval after this one) is
        // 30 ms after this start, too soon.
        std::thread::sleep(
            granted.saturating_duration_since(Instant::now()) + Duration::from_millis(20),
        );
        let started = Instant::now();
        assert_eq!(l.start_now(), Ok(()));
        let next = l.take();
        assert!(next < started + Duration::from_millis(50));
        // Asked at once, not at `next`: a test thread that slept late could be past the interval.
        let later = l
            .start_now()
            .expect_err("one interval after the late start, not before");
        assert!(
            later >= started + Duration::from_millis(49),
            "{:?}",
            later - started
        );
        std::thread::sleep(later.saturating_duration_since(Instant::now()));
        assert_eq!(l.start_now(), Ok(()));
    }

    #[test]
    fn backoff_waits_stay_within_their_bounds() {
        let b = Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        for attempt in 1..10 {
            for _ in 0..100 {
                let w = b.wait(attempt);
                assert!(
                    w >= b.min && w <= b.cap(attempt) && w <= b.max,
                    "{attempt}: {w:?}"
                );
            }
        }
    }
}
