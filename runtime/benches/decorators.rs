//! `#[timed]` and `#[logged]` against their anchors, side by side in one run.
//!
//! `cargo bench -p decor --bench decorators`. Each group holds a decorated function and its
//! anchor (the bare function, or `#[tracing::instrument(ret)]`); compare within a group.
//! Where a subscriber is enabled it is `tracing_subscriber::fmt()` writing to `io::sink()`: every
//! field is really formatted, then thrown away.

use divan::{Bencher, black_box};
use tracing::level_filters::LevelFilter;

fn main() {
    divan::main();
}

/// `f` under the subscriber users run: `tracing-subscriber`'s formatter, writing to `io::sink`.
fn with<R>(max: LevelFilter, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(max)
        .finish();
    tracing::subscriber::with_default(subscriber, f)
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

    /// The same call on 1, 2 and 8 long-lived threads at once (8 is more than this machine's
    /// cores): the time per call should not grow with the threads.
    #[divan::bench(threads = [1, 2, 8], sample_count = 200, sample_size = 4000)]
    fn decorated_threads() -> u64 {
        timed_work(black_box(7))
    }

    #[divan::bench(threads = [1, 2, 8], sample_count = 200, sample_size = 4000)]
    fn bare_threads() -> u64 {
        work(black_box(7))
    }

    // Short-lived threads: `benches/timed_threads.rs`, which times calls inside each thread
    // (thread start-up here varies by more than a batch's whole difference).
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

    /// `#[instrument(ret)]` with the call's duration, as `tracing` gives it: a span-close line
    /// (`FmtSpan::CLOSE`, with `time.busy` and `time.idle`). `#[logged]` carries it in its return
    /// event (`elapsed_ns`).
    #[divan::bench(sample_count = 200, sample_size = 4000)]
    fn instrument_ret_timed(b: Bencher<'_, '_>) {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_max_level(LevelFilter::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            b.bench_local(|| instrumented_work(black_box("ana"), black_box(7)))
        });
    }
}

/// `#[logged]` on inputs of 8 elements against 8,000,000, formatted: `max_len` bounds the work.
mod logged_large_argument {
    use super::*;

    #[decor::logged]
    #[inline(never)]
    fn total(xs: &[u64]) -> u64 {
        xs.first().copied().unwrap_or(0)
    }

    #[decor::logged]
    #[inline(never)]
    #[allow(clippy::ptr_arg)] // a `&Vec` is what users pass
    fn vec_len(xs: &Vec<u64>) -> usize {
        xs.len()
    }

    #[derive(Debug, Clone)]
    #[allow(dead_code)] // read by `Debug`
    struct Batch {
        id: u32,
        xs: Vec<u64>,
    }

    #[decor::logged]
    #[inline(never)]
    fn batch(b: &Batch) -> u32 {
        b.id
    }

    #[divan::bench(args = [8, 8_000_000], sample_count = 100, sample_size = 10)]
    fn slice(b: Bencher<'_, '_>, len: usize) {
        let xs = vec![7u64; len];
        with(LevelFilter::TRACE, || {
            b.bench_local(|| total(black_box(&xs)))
        });
    }

    #[divan::bench(args = [8, 8_000_000], sample_count = 100, sample_size = 10)]
    fn vec(b: Bencher<'_, '_>, len: usize) {
        let xs = vec![7u64; len];
        with(LevelFilter::TRACE, || {
            b.bench_local(|| vec_len(black_box(&xs)))
        });
    }

    /// A user type whose derived `Debug` walks a `Vec`: 8 elements fit in `max_len`; 100 go just
    /// past it (formatted to the end, the surplus swallowed); 8M are left by unwinding.
    #[divan::bench(args = [8, 100, 8_000_000], sample_count = 20, sample_size = 5)]
    fn derived_debug_struct(b: Bencher<'_, '_>, len: usize) {
        let x = Batch {
            id: 1,
            xs: vec![7u64; len],
        };
        with(LevelFilter::TRACE, || {
            b.bench_local(|| batch(black_box(&x)))
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
