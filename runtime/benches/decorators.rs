//! `#[timed]` and `#[logged]` against their anchors, side by side in one run.
//!
//! `cargo bench -p decor --bench decorators`. Each group holds a decorated function and its
//! anchor (the bare function, or `#[tracing::instrument(ret)]`); compare within a group.
//! The subscriber used where one is enabled formats every field it receives with `Debug` into
//! `io::sink()`, like a real subscriber that then throws the text away.

use std::fmt::Debug;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use divan::{Bencher, black_box};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

fn main() {
    divan::main();
}

/// Formats everything it is given, keeps nothing.
struct FormatAndDrop {
    max: LevelFilter,
    next: AtomicU64,
}

impl FormatAndDrop {
    fn at(max: LevelFilter) -> Self {
        FormatAndDrop {
            max,
            next: AtomicU64::new(1),
        }
    }
}

struct Format;

impl Visit for Format {
    fn record_debug(&mut self, _field: &Field, value: &dyn Debug) {
        let _ = write!(std::io::sink(), "{value:?}");
    }
}

impl Subscriber for FormatAndDrop {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        span.record(&mut Format);
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _span: &Id, values: &Record<'_>) {
        values.record(&mut Format);
    }
    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
    fn event(&self, event: &Event<'_>) {
        event.record(&mut Format);
    }
    fn enter(&self, _span: &Id) {}
    fn exit(&self, _span: &Id) {}
}

fn with<R>(max: LevelFilter, f: impl FnOnce() -> R) -> R {
    tracing::subscriber::with_default(FormatAndDrop::at(max), f)
}

#[inline(never)]
fn work(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

/// `#[timed]` against the bare function, no subscriber: clock reads and statistics only.
mod timed {
    use super::*;

    #[decor::timed]
    #[inline(never)]
    fn timed_work(x: u64) -> u64 {
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn bare() -> u64 {
        work(black_box(7))
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn decorated() -> u64 {
        timed_work(black_box(7))
    }

    /// With a subscriber at WARN, the INFO event is off: the cost a production binary pays.
    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn decorated_event_filtered(b: Bencher<'_, '_>) {
        with(LevelFilter::WARN, || {
            b.bench_local(|| timed_work(black_box(7)))
        });
    }
}

/// `#[logged(level = "debug")]` with a subscriber at INFO against the bare function.
mod logged_disabled {
    use super::*;

    #[decor::logged(level = "debug")]
    #[inline(never)]
    fn logged_work(x: u64) -> u64 {
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn bare(b: Bencher<'_, '_>) {
        with(LevelFilter::INFO, || b.bench_local(|| work(black_box(7))));
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn decorated(b: Bencher<'_, '_>) {
        with(LevelFilter::INFO, || {
            b.bench_local(|| logged_work(black_box(7)))
        });
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn decorated_no_subscriber() -> u64 {
        logged_work(black_box(7))
    }
}

/// Enabled: `#[logged]` against `#[tracing::instrument(ret)]`, same function, same subscriber.
mod logged_enabled {
    use super::*;

    #[decor::logged]
    #[inline(never)]
    fn logged_work(name: &str, x: u64) -> u64 {
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) + name.len() as u64
    }

    #[tracing::instrument(ret)]
    #[inline(never)]
    fn instrumented_work(name: &str, x: u64) -> u64 {
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) + name.len() as u64
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn instrument_ret(b: Bencher<'_, '_>) {
        with(LevelFilter::TRACE, || {
            b.bench_local(|| instrumented_work(black_box("ana"), black_box(7)))
        });
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn decorated(b: Bencher<'_, '_>) {
        with(LevelFilter::TRACE, || {
            b.bench_local(|| logged_work(black_box("ana"), black_box(7)))
        });
    }
}

/// `#[logged]` on a slice of 8 against one of 8,000,000: formatting stops at `max_len`.
mod logged_large_argument {
    use super::*;

    #[decor::logged]
    #[inline(never)]
    fn total(xs: &[u64]) -> u64 {
        xs.first().copied().unwrap_or(0)
    }

    #[divan::bench(args = [8, 8_000_000], sample_count = 200, sample_size = 1000)]
    fn decorated(b: Bencher<'_, '_>, len: usize) {
        let xs = vec![1u64; len];
        with(LevelFilter::TRACE, || {
            b.bench_local(|| total(black_box(&xs)))
        });
    }
}

/// The clocks: a call timed with each costs about two reads.
mod clock {
    use super::*;

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn std_instant_now() -> std::time::Instant {
        std::time::Instant::now()
    }

    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn quanta_instant_now() -> quanta::Instant {
        quanta::Instant::now()
    }

    /// What `decor` pays per timed call: two raw counter reads and one scaled delta.
    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn decor_clock_pair(b: Bencher<'_, '_>) {
        let clock = quanta::Clock::new();
        b.bench_local(|| {
            let start = clock.raw();
            clock.delta_as_nanos(start, black_box(clock.raw()))
        });
    }
}
