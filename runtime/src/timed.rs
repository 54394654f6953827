//! What `#[timed]` does at run time: measure a call, record it in [`crate::stats`], emit one
//! `tracing` event.
//!
//! The attribute puts a `static` [`TimedSite`] in the function and a guard around its body. The
//! same thing by hand:
//!
//! ```
//! use decor::timed::TimedSite;
//! use decor::Level;
//!
//! fn load(path: &str) -> std::io::Result<String> {
//!     static SITE: TimedSite = TimedSite::new("load", concat!(module_path!(), "::load"))
//!         .at(module_path!(), file!(), line!())
//!         .level(Level::INFO);
//!     let _timer = SITE.start(); // records on drop: on return, `?` and panic alike
//!     std::fs::read_to_string(path)
//! }
//! # let _ = load("/nonexistent");
//! # assert!(decor::stats::snapshot().iter().any(|s| s.name.ends_with("::load")));
//! ```
//!
//! An `async fn` is timed from its first poll to its completion with [`TimedSite::future`]; a
//! future dropped before it completes is not recorded.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tracing_core::Level;
use tracing_core::field::Value;
use tracing_core::metadata::Kind;

use crate::callsite::{DynCallsite, Location, event_name};
use crate::clock::{self, Stamp};
use crate::fmt::HumanDuration;
use crate::stats::{Recorder, duration_ns};

const FIELDS: &[&str] = &["message", "function", "elapsed_ns", "panicked", "ok"];

/// The fixed facts of one timed function: its names, where it is, the event level.
///
/// Meant to live in a `static` inside the function; everything is set by `const` builders.
#[derive(Debug)]
pub struct TimedSite {
    short_name: &'static str,
    function: &'static str,
    loc: Location,
    level: Level,
    warn_over_ns: u64,
    state: OnceLock<State>,
}

struct State {
    recorder: &'static Recorder,
    normal: &'static DynCallsite,
    /// WARN (or `level` when that is more severe) for slow and panicking calls.
    loud: &'static DynCallsite,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

/// The human part of a timed event: `parse took 1.23ms`.
struct Message<'a> {
    site: &'a TimedSite,
    took: HumanDuration,
    panicked: bool,
    slow: bool,
    ok: Option<bool>,
}

impl std::fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.site.short_name;
        if self.panicked {
            write!(f, "{name} panicked after {}", self.took)
        } else if self.slow {
            let limit = HumanDuration(Duration::from_nanos(self.site.warn_over_ns));
            let failed = if self.ok == Some(false) {
                " and failed"
            } else {
                ""
            };
            write!(f, "{name} took {}, over {limit}{failed}", self.took)
        } else if self.ok == Some(false) {
            write!(f, "{name} failed after {}", self.took)
        } else {
            write!(f, "{name} took {}", self.took)
        }
    }
}

crate::callsite::site_place!(TimedSite, target: "the event's target", level: "the event of a normal call");

impl TimedSite {
    /// A site for the function called `short_name` in messages and `function` (usually
    /// `"module::path::name"`) in events and statistics; level INFO, no slow-call warning.
    pub const fn new(short_name: &'static str, function: &'static str) -> Self {
        TimedSite {
            short_name,
            function,
            loc: Location::UNKNOWN,
            level: Level::INFO,
            warn_over_ns: u64::MAX,
            state: OnceLock::new(),
        }
    }

    /// Calls slower than `limit` are reported at WARN.
    pub const fn warn_over(mut self, limit: Duration) -> Self {
        let ns = limit.as_nanos();
        self.warn_over_ns = if ns > u64::MAX as u128 {
            u64::MAX
        } else {
            ns as u64
        };
        self
    }

    fn state(&'static self) -> &'static State {
        self.state.get_or_init(|| {
            let name = event_name(self.loc);
            let normal = DynCallsite::leak(name, self.loc, self.level, FIELDS, Kind::EVENT);
            let loud = if self.level <= Level::WARN {
                // `Level` orders by verbosity: ERROR < WARN < INFO.
                normal
            } else {
                DynCallsite::leak(name, self.loc, Level::WARN, FIELDS, Kind::EVENT)
            };
            State {
                recorder: Recorder::for_name(self.function),
                normal,
                loud,
            }
        })
    }

    /// Starts timing a call; the returned guard records it when dropped.
    #[inline]
    pub fn start(&'static self) -> TimedGuard {
        TimedGuard {
            site: self,
            was_panicking: std::thread::panicking(),
            start: clock::now(),
            ok: None,
        }
    }

    /// Times `fut` from its first poll to its completion.
    pub fn future<F: Future>(&'static self, fut: F) -> TimedFuture<F> {
        TimedFuture {
            inner: fut,
            site: self,
            start: None,
            judge: None,
        }
    }

    /// Records one call that took `elapsed`: statistics, then the event if anyone listens.
    pub fn record(&'static self, elapsed: Duration, panicked: bool) {
        self.record_outcome(elapsed, panicked, None);
    }

    /// Like [`record`](Self::record), for a call that returned `Ok` (`ok = Some(true)`) or `Err`
    /// (`Some(false)`): the event's `ok` field says which, and its message says `failed`.
    pub fn record_outcome(&'static self, elapsed: Duration, panicked: bool, ok: Option<bool>) {
        let state = self.state();
        let ns = duration_ns(elapsed);
        state.recorder.record(ns);
        let slow = ns > self.warn_over_ns;
        let cs = if panicked || slow {
            state.loud
        } else {
            state.normal
        };
        if !cs.is_enabled() {
            return;
        }
        let message = tracing_core::field::display(Message {
            site: self,
            took: HumanDuration(elapsed),
            panicked,
            slow,
            ok,
        });
        let fields = cs.fields();
        let mut it = fields.iter();
        let (f_msg, f_fn, f_ns, f_panic, f_ok) = (
            it.next().expect("message"),
            it.next().expect("function"),
            it.next().expect("elapsed_ns"),
            it.next().expect("panicked"),
            it.next().expect("ok"),
        );
        let values: [(&_, Option<&dyn Value>); 5] = [
            (&f_msg, Some(&message as &dyn Value)),
            (&f_fn, Some(&self.function as &dyn Value)),
            (&f_ns, Some(&ns as &dyn Value)),
            (&f_panic, if panicked { Some(&true) } else { None }),
            (&f_ok, ok.as_ref().map(|b| b as &dyn Value)),
        ];
        cs.event(None, &fields.value_set(&values));
    }
}

/// Records the call it times when dropped, whatever way the function is left.
#[derive(Debug)]
#[must_use = "the call is timed until the guard is dropped"]
pub struct TimedGuard {
    site: &'static TimedSite,
    was_panicking: bool,
    start: Stamp,
    ok: Option<bool>,
}

impl TimedGuard {
    /// Says whether the call succeeded (`Some(false)` for an `Err`), for its event's `ok` field.
    #[inline]
    pub fn set_ok(&mut self, ok: Option<bool>) {
        self.ok = ok;
    }
}

impl Drop for TimedGuard {
    #[inline]
    fn drop(&mut self) {
        let elapsed = clock::elapsed(self.start);
        let panicked = !self.was_panicking && std::thread::panicking();
        self.site.record_outcome(elapsed, panicked, self.ok);
    }
}

pin_project_lite::pin_project! {
    /// A future timed from its first poll to completion; see [`TimedSite::future`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct TimedFuture<F: Future> {
        #[pin]
        inner: F,
        site: &'static TimedSite,
        start: Option<Stamp>,
        judge: Option<fn(&F::Output) -> Option<bool>>,
    }
}

impl<F: Future> TimedFuture<F> {
    /// Says, from the output, whether the call succeeded, as [`TimedGuard::set_ok`] does.
    pub fn judged_by(mut self, judge: fn(&F::Output) -> Option<bool>) -> Self {
        self.judge = Some(judge);
        self
    }
}

impl<F: Future> Future for TimedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let start = *this.start.get_or_insert_with(clock::now);
        // Reports a panic that unwinds out of the inner poll.
        struct OnUnwind(&'static TimedSite, Stamp);
        impl Drop for OnUnwind {
            fn drop(&mut self) {
                self.0.record(clock::elapsed(self.1), true);
            }
        }
        let guard = OnUnwind(this.site, start);
        let poll = this.inner.poll(cx);
        std::mem::forget(guard);
        if let Poll::Ready(out) = &poll {
            let ok = this.judge.and_then(|judge| judge(out));
            this.site.record_outcome(clock::elapsed(start), false, ok);
        }
        poll
    }
}
