//! What `#[logged]` does at run time: a span with the arguments, an event with the result.
//!
//! The attribute puts a `static` [`LoggedSite`] in the function, opens a [`LoggedCall`] with the
//! arguments it records, runs the body inside it and reports the outcome. The same thing by hand:
//!
//! ```
//! use decor::logged::LoggedSite;
//! use decor::Level;
//!
//! fn login(user: &str, password: &str) -> Result<u64, String> {
//!     static SITE: LoggedSite = LoggedSite::new("login", &["user"])
//!         .at(module_path!(), file!(), line!())
//!         .level(Level::INFO)
//!         .max_len(64);
//!     let call = SITE.enter([Some(&user as &dyn std::fmt::Debug)]); // `password` is skipped
//!     let result = call.run(move || if password == "hunter2" { Ok(7) } else { Err("denied".to_owned()) });
//!     match &result {
//!         Ok(session) => call.returned(Some(session)),
//!         Err(e) => call.failed(e),
//!     }
//!     result
//! }
//! assert_eq!(login("ana", "hunter2"), Ok(7));
//! ```
//!
//! Every recorded value is formatted only up to `max_len` characters, and nothing is formatted at all when no subscriber wants
//! the span: a disabled `#[logged]` costs a level check.
//!
//! Errors and panics are reported at ERROR even when the span's own level is disabled; they then
//! carry no `elapsed_ns`, because the clock is only read for calls whose span is recorded. They
//! do carry the arguments, as fields of the event, when the site is [`fallible`](LoggedSite::fallible)
//! (the attribute says so for a function returning `Result`): for that, such a function whose span
//! is filtered out while ERROR is not formats its recorded arguments on every call.

use std::any::Any;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tracing::Span;
use tracing::level_filters::LevelFilter;
use tracing_core::Level;
use tracing_core::field::{DebugValue, DisplayValue, Value, debug, display};
use tracing_core::metadata::Kind;

use crate::callsite::{DynCallsite, Location, event_name};
use crate::clock::{self, Stamp};
use crate::fmt::Truncated;
pub use crate::recorded::{Recorded, ShortDebug};

const RET_FIELDS: &[&str] = &["message", "ret", "elapsed_ns"];
const ERROR_FIELDS: &[&str] = &["message", "error", "panicked", "elapsed_ns"];

/// The default longest recorded value, in characters.
pub const DEFAULT_MAX_LEN: usize = 128;

/// The fixed facts of one logged function: span name, recorded argument names, level, limit.
///
/// Meant to live in a `static` inside the function; everything is set by `const` builders.
pub struct LoggedSite {
    name: &'static str,
    args: &'static [&'static str],
    loc: Location,
    level: Level,
    max_len: usize,
    fallible: bool,
    callsites: OnceLock<Callsites>,
}

struct Callsites {
    /// `"<name> returned"`, `"<name> failed"`, `"<name> panicked"`: made once, not per call.
    returned: &'static str,
    failed: &'static str,
    panicked: &'static str,
    span: &'static DynCallsite,
    ret: &'static DynCallsite,
    error: &'static DynCallsite,
    /// The error event with the recorded arguments after its own fields, for calls whose span
    /// is filtered out.
    error_with_args: &'static DynCallsite,
}

impl Debug for LoggedSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedSite")
            .field("name", &self.name)
            .field("args", &self.args)
            .field("level", &self.level)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

crate::callsite::site_place!(LoggedSite, target: "the span's target", level: "the span and of the return event");

impl LoggedSite {
    /// A site for a span called `name` recording the arguments called `args`, in that order;
    /// level INFO, values cut at [`DEFAULT_MAX_LEN`].
    pub const fn new(name: &'static str, args: &'static [&'static str]) -> Self {
        LoggedSite {
            name,
            args,
            loc: Location::UNKNOWN,
            level: Level::INFO,
            max_len: DEFAULT_MAX_LEN,
            fallible: false,
            callsites: OnceLock::new(),
        }
    }

    /// The longest recorded value, in characters; longer ones are cut and end with `…`.
    pub const fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The function returns `Result`: when its span is filtered out but ERROR is not, its
    /// arguments are formatted at each call, so that the ERROR event of a failed call carries
    /// them (a log filtered at WARN still says what the call was given).
    pub const fn fallible(mut self) -> Self {
        self.fallible = true;
        self
    }

    fn callsites(&'static self) -> &'static Callsites {
        self.callsites.get_or_init(|| {
            let event = event_name(self.loc);
            let phrase = |verb: &str| -> &'static str {
                Box::leak(format!("{} {verb}", self.name).into_boxed_str())
            };
            Callsites {
                returned: phrase("returned"),
                failed: phrase("failed"),
                panicked: phrase("panicked"),
                span: DynCallsite::leak(self.name, self.loc, self.level, self.args, Kind::SPAN),
                ret: DynCallsite::leak(event, self.loc, self.level, RET_FIELDS, Kind::EVENT),
                error: DynCallsite::leak(event, self.loc, Level::ERROR, ERROR_FIELDS, Kind::EVENT),
                error_with_args: {
                    let fields: Vec<&'static str> =
                        ERROR_FIELDS.iter().chain(self.args).copied().collect();
                    let fields = Box::leak(fields.into_boxed_slice());
                    DynCallsite::leak(event, self.loc, Level::ERROR, fields, Kind::EVENT)
                },
            }
        })
    }

    /// Opens the span of one call with the recorded arguments, in the order of the site's `args`
    /// (`None` leaves a field empty).
    ///
    /// The span is a child of the current span. Nothing is formatted or timed if no subscriber
    /// wants it.
    #[inline]
    pub fn enter<const N: usize>(&'static self, args: [Option<&dyn Debug>; N]) -> LoggedCall {
        self.enter_at(self.level, self.fallible, args)
    }

    /// [`enter`](Self::enter), given the site's level and [`fallible`](Self::fallible) again as
    /// constants (what the attribute writes), so that the compiler folds the checks on them: a
    /// site above `tracing`'s compile-time ceiling
    /// ([`STATIC_MAX_LEVEL`](tracing::level_filters::STATIC_MAX_LEVEL), set by its
    /// `max_level_*` / `release_max_level_*` features) then compiles to nothing but the body.
    /// Such a site records nothing, and its errors are reported without the arguments.
    ///
    /// The arguments are `&dyn Debug` values or [`Recorded`] ones (which the attribute writes).
    #[inline(always)]
    pub fn enter_at<'a, A: Into<Recorded<'a>>, const N: usize>(
        &'static self,
        level: Level,
        fallible: bool,
        args: [Option<A>; N],
    ) -> LoggedCall {
        match self.try_enter_at(level, fallible, || args) {
            Some(call) => call,
            None => self.disabled(),
        }
    }

    /// [`enter_at`](Self::enter_at), or `None` when the call records nothing (its span is
    /// filtered out and the site is not [`fallible`](Self::fallible)): the body then runs through
    /// [`run_quiet`](Self::run_quiet), with no call to build or drop. The arguments are gathered
    /// only for a call that records them. This is what the attribute writes for a sync function:
    /// a disabled site costs a level check and the body.
    #[inline(always)]
    pub fn try_enter_at<'a, A: Into<Recorded<'a>>, const N: usize>(
        &'static self,
        level: Level,
        fallible: bool,
        args: impl FnOnce() -> [Option<A>; N],
    ) -> Option<LoggedCall> {
        debug_assert_eq!(level, self.level, "the site's own level");
        if level > tracing::level_filters::STATIC_MAX_LEVEL {
            // An error is still reported (at ERROR, which the ceiling may let through), as
            // `tracing`'s `#[instrument(err)]` does: by a call that records nothing else.
            return fallible.then(|| self.disabled());
        }
        // The global maximum level first: one relaxed load, so that a disabled site touches
        // nothing else.
        let level_on = level <= LevelFilter::current();
        if !level_on && !fallible {
            return None;
        }
        self.try_enter_slow(level_on, fallible, args)
    }

    /// The rest of [`try_enter_at`](Self::try_enter_at), out of line so that the decorated
    /// function's quiet path stays small.
    #[inline(never)]
    fn try_enter_slow<'a, A: Into<Recorded<'a>>, const N: usize>(
        &'static self,
        level_on: bool,
        fallible: bool,
        args: impl FnOnce() -> [Option<A>; N],
    ) -> Option<LoggedCall> {
        let recorded = || args().map(|a| a.map(Into::into));
        if level_on {
            let callsites = self.callsites();
            if callsites.span.is_enabled() {
                return Some(self.enter_enabled(callsites, recorded()));
            }
        }
        if fallible {
            return Some(self.enter_unrecorded(recorded()));
        }
        None
    }

    /// Runs the body of a call that records nothing: a panic is still reported at ERROR, as
    /// [`LoggedCall::run`] does, then goes on.
    #[inline(always)]
    pub fn run_quiet<R>(&'static self, body: impl FnOnce() -> R) -> R {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(r) => r,
            Err(payload) => self.disabled().panicked(payload),
        }
    }

    /// A call that records nothing.
    #[inline(always)]
    fn disabled(&'static self) -> LoggedCall {
        LoggedCall {
            site: self,
            span: Span::none(),
            start: None,
            args: None,
        }
    }

    /// A call of a fallible site whose span is filtered out: the arguments, formatted, for its
    /// error event if that is enabled.
    #[cold]
    #[inline(never)]
    fn enter_unrecorded<const N: usize>(
        &'static self,
        args: [Option<Recorded<'_>>; N],
    ) -> LoggedCall {
        let wanted =
            Level::ERROR <= LevelFilter::current() && self.callsites().error_with_args.is_enabled();
        let max = self.max_len;
        LoggedCall {
            site: self,
            span: Span::none(),
            start: None,
            args: wanted.then(|| {
                Box::new(
                    args.iter()
                        .map(|a| a.map(|v| Truncated::recorded(v, max).to_string()))
                        .collect(),
                )
            }),
        }
    }

    #[inline(never)]
    fn enter_enabled<const N: usize>(
        &'static self,
        callsites: &'static Callsites,
        args: [Option<Recorded<'_>>; N],
    ) -> LoggedCall {
        assert_eq!(N, self.args.len(), "one value per recorded argument");
        let max = self.max_len;
        let shown: [Option<DebugValue<Truncated<'_>>>; N] =
            args.map(|a| a.map(|v| debug(Truncated::recorded(v, max))));
        let values: [Option<&dyn Value>; N] =
            std::array::from_fn(|i| shown[i].as_ref().map(|v| v as &dyn Value));
        let meta = callsites.span.meta();
        let span = Span::new(meta, &meta.fields().value_set_all(&values));
        LoggedCall {
            site: self,
            span,
            start: Some(clock::now()),
            args: None,
        }
    }
}

/// One call of a logged function, from [`LoggedSite::enter`].
#[derive(Debug)]
pub struct LoggedCall {
    site: &'static LoggedSite,
    span: Span,
    start: Option<Stamp>,
    /// The recorded arguments, formatted, when the span is filtered out and the error event
    /// would be the only record of the call.
    /// Boxed so that a call that has none stays one pointer wider, not three.
    #[allow(clippy::box_collection)]
    args: Option<Box<Vec<Option<String>>>>,
}

impl LoggedCall {
    /// The call's span (disabled when no subscriber wants it).
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Runs the body inside the span. A panic is reported at ERROR with its message, then goes on.
    #[inline]
    pub fn run<R>(&self, body: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(r) => r,
            Err(payload) => self.panicked(payload),
        }
    }

    /// [`run`](Self::run), then `report` with the call and the body's value, which it hands back:
    /// the whole recorded call out of line, as the attribute writes it, so that the decorated
    /// function's path for a quiet call stays small.
    #[inline(never)]
    pub fn run_recorded<R>(
        self,
        body: impl FnOnce() -> R,
        report: impl FnOnce(&LoggedCall, R) -> R,
    ) -> R {
        let r = self.run(body);
        report(&self, r)
    }

    /// Runs an async body inside the span, entered on every poll; a panic in a poll is reported
    /// like in [`run`](Self::run).
    pub fn instrument<F: Future>(&self, body: F) -> LoggedFuture<'_, F> {
        LoggedFuture {
            call: self,
            inner: body,
        }
    }

    #[cold]
    fn panicked(&self, payload: Box<dyn Any + Send>) -> ! {
        let msg: &str = if let Some(s) = payload.downcast_ref::<&str>() {
            s
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s
        } else {
            "Box<dyn Any>"
        };
        let shown = display(Truncated::display(&msg, self.site.max_len));
        self.error_event(self.site.callsites().panicked, None, Some(&shown));
        resume_unwind(payload)
    }

    /// Reports a successful return at the site's level, with the value when `ret` is given.
    #[inline]
    pub fn returned(&self, ret: Option<&dyn Debug>) {
        self.returned_recorded(ret.map(Recorded::Plain))
    }

    /// [`returned`](Self::returned) with a [`Recorded`] value, as the attribute writes it.
    #[inline]
    pub fn returned_recorded(&self, ret: Option<Recorded<'_>>) {
        let Some(start) = self.start else { return };
        let callsites = self.site.callsites();
        let cs = callsites.ret;
        if !cs.is_enabled() {
            return;
        }
        let ns = clock::since(start);
        let ret = ret.map(|v| debug(Truncated::recorded(v, self.site.max_len)));
        let values: [Option<&dyn Value>; 3] = [
            Some(&callsites.returned),
            ret.as_ref().map(|v| v as &dyn Value),
            Some(&ns),
        ];
        cs.event(Some(&self.span), &cs.fields().value_set_all(&values));
    }

    /// Reports an error at ERROR with its `Display` form.
    #[cold]
    pub fn failed(&self, error: &dyn Display) {
        let shown = display(Truncated::display(error, self.site.max_len));
        self.error_event(self.site.callsites().failed, Some(&shown), None);
    }

    fn error_event(
        &self,
        message: &'static str,
        error: Option<&DisplayValue<Truncated<'_>>>,
        panicked: Option<&DisplayValue<Truncated<'_>>>,
    ) {
        let callsites = self.site.callsites();
        let cs = match self.args {
            Some(_) => callsites.error_with_args,
            None => callsites.error,
        };
        if !cs.is_enabled() {
            return;
        }
        let ns = self.start.map(clock::since);
        let args: &[Option<String>] = self.args.as_deref().map_or(&[], |a| a.as_slice());
        let args: Vec<_> = args.iter().map(|a| a.as_deref().map(display)).collect();
        let mut values: Vec<Option<&dyn Value>> = vec![
            Some(&message),
            error.map(|v| v as &dyn Value),
            panicked.map(|v| v as &dyn Value),
            ns.as_ref().map(|v| v as &dyn Value),
        ];
        values.extend(args.iter().map(|a| a.as_ref().map(|v| v as &dyn Value)));
        cs.event(Some(&self.span), &cs.fields().value_set_all(&values));
    }
}

pin_project_lite::pin_project! {
    /// An async body running inside a [`LoggedCall`]'s span; see [`LoggedCall::instrument`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct LoggedFuture<'a, F> {
        call: &'a LoggedCall,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for LoggedFuture<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let call = *this.call;
        let _entered = call.span.enter();
        let inner = this.inner;
        match catch_unwind(AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(p) => p,
            Err(payload) => call.panicked(payload),
        }
    }
}
