//! `#[timed]` per call on 1, 2 and 8 threads at once, long-lived and short-lived, timed inside
//! each thread: `cargo bench -p decor --bench timed_threads`.
//!
//! A short-lived thread is a new scoped thread per batch of calls; its first call takes a
//! statistics shard (one a finished thread left, or a new one), which its time includes. The
//! time of a batch is read inside the thread, from its first call to its last, so the spread of
//! thread start-up and of scheduling between batches (tens of microseconds here, more than a
//! batch's whole difference) stays out; decorated and bare batches alternate, and each figure is
//! a median. Every row is compared with one long-lived thread alone, in the same run.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

#[decor::timed]
#[inline(never)]
fn timed_work(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

#[inline(never)]
fn work(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

const BATCH: usize = 2_000;
const ROUNDS: usize = 200;

/// One batch of calls, its time in nanoseconds per call.
fn batch(f: fn(u64) -> u64) -> f64 {
    let start = Instant::now();
    for i in 0..BATCH {
        black_box(f(black_box(i as u64)));
    }
    start.elapsed().as_nanos() as f64 / BATCH as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `threads` threads alive for every round, each timing one decorated and one bare batch a
/// round: (decorated, bare) per call.
fn long_lived(threads: usize) -> (f64, f64) {
    let barrier = Barrier::new(threads);
    let per_thread: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut d, mut b) = (Vec::new(), Vec::new());
                    for _ in 0..ROUNDS {
                        barrier.wait();
                        d.push(batch(timed_work));
                        b.push(batch(work));
                    }
                    (d, b)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (d, b): (Vec<_>, Vec<_>) = per_thread.into_iter().unzip();
    (median(d.concat()), median(b.concat()))
}

/// Each round, `threads` new threads time a decorated batch, then new ones a bare batch.
fn short_lived(threads: usize) -> (f64, f64) {
    let round = |f: fn(u64) -> u64| -> Vec<f64> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || batch(f))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let (mut d, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        d.extend(round(timed_work));
        b.extend(round(work));
    }
    (median(d), median(b))
}

/// The first call in a new thread, timed inside it: (decorated, bare), median nanoseconds.
fn first_call() -> (f64, f64) {
    let once = |f: fn(u64) -> u64| -> f64 {
        std::thread::scope(|s| {
            s.spawn(move || {
                let start = Instant::now();
                black_box(f(black_box(7)));
                start.elapsed().as_nanos() as f64
            })
            .join()
            .unwrap()
        })
    };
    let (mut d, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        d.push(once(timed_work));
        b.push(once(work));
    }
    (median(d), median(b))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks; there is no filter.
    }
    black_box(timed_work(1)); // the site's first call registers it, once per process
    let (alone_d, alone_b) = long_lived(1);
    let alone = alone_d - alone_b;
    println!(
        "#[timed] per call, decorated - bare, timed inside each thread ({BATCH} calls a batch, {ROUNDS} rounds, medians)"
    );
    println!(
        "{:<13} {:>7} {:>12} {:>9} {:>12}",
        "threads", "at once", "decorated", "bare", "vs 1 alone"
    );
    let row = |kind: &str, n: usize, (d, b): (f64, f64)| {
        println!(
            "{kind:<13} {n:>7} {d:>9.1} ns {b:>6.1} ns {:>11.2}x",
            (d - b) / alone
        );
    };
    row("long-lived", 1, (alone_d, alone_b));
    for n in [2, 8] {
        row("long-lived", n, long_lived(n));
    }
    for n in [1, 2, 8] {
        row("short-lived", n, short_lived(n));
    }
    let (d, b) = first_call();
    println!("first call in a new thread (takes a shard): decorated {d:.0} ns, bare {b:.0} ns");
}
