//! `#[timed]` per call on 1, 2 and 8 threads at once, long-lived and short-lived, timed inside
//! each thread: `cargo bench -p decor --bench timed_threads`.
//!
//! A short-lived thread is a new scoped thread per batch of calls; its first call takes a
//! statistics shard (one a finished thread left, or a new one), which its time includes. The
//! time of a batch is read inside the thread, from its first call to its last, so the spread of
//! thread start-up and of scheduling between batches (tens of microseconds here, more than a
//! batch's whole difference) stays out. Every row is compared with one long-lived thread alone;
//! the rows take their rounds in turn, so a slower spell of the machine falls on all of them.
//! Beside each decorated batch, a batch of the same function with only the two clock reads
//! `#[timed]` makes (no statistics, no event) shows what the machine itself does at that many
//! threads.

use std::hint::black_box;
use std::sync::mpsc;
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

#[inline(never)]
fn clocked_work(x: u64) -> u64 {
    static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    let c = CLOCK.get_or_init(quanta::Clock::new);
    let start = c.raw();
    let r = work(x);
    r ^ c.delta_as_nanos(start, black_box(c.raw()))
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

/// The time of one round: each of `threads` threads times a decorated batch, then one with the
/// clock reads only.
type Round = Vec<(f64, f64)>;

/// `threads` threads alive for the whole run, each timing its two batches when told to.
struct LongLived {
    go: Vec<mpsc::Sender<()>>,
    done: mpsc::Receiver<(f64, f64)>,
}

impl LongLived {
    fn start(threads: usize) -> Self {
        let (done_tx, done) = mpsc::channel();
        let go = (0..threads)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<()>();
                let done_tx = done_tx.clone();
                std::thread::spawn(move || {
                    for () in rx {
                        let d = batch(timed_work);
                        let _ = done_tx.send((d, batch(clocked_work)));
                    }
                });
                tx
            })
            .collect();
        LongLived { go, done }
    }

    fn round(&self) -> Round {
        for g in &self.go {
            g.send(()).unwrap();
        }
        (0..self.go.len())
            .map(|_| self.done.recv().unwrap())
            .collect()
    }
}

/// `threads` new threads time a decorated batch, then new ones a batch with the clock reads only.
fn short_lived_round(threads: usize) -> Round {
    let run = |f: fn(u64) -> u64| -> Vec<f64> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || batch(f))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    run(timed_work).into_iter().zip(run(clocked_work)).collect()
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
    let pools: Vec<(usize, LongLived)> = [1, 2, 8].map(|n| (n, LongLived::start(n))).into();
    // (kind, threads, every (decorated, clock reads only) seen); the rows take their rounds in turn, so a
    // slower spell of the machine falls on all of them.
    let mut rows: Vec<(&str, usize, Round)> = Vec::new();
    for (n, _) in &pools {
        rows.push(("long-lived", *n, Vec::new()));
    }
    for n in [1, 2, 8] {
        rows.push(("short-lived", n, Vec::new()));
    }
    for _ in 0..ROUNDS {
        for (i, (_, pool)) in pools.iter().enumerate() {
            rows[i].2.extend(pool.round());
        }
        for row in rows.iter_mut().skip(pools.len()) {
            row.2.extend(short_lived_round(row.1));
        }
    }
    let medians = |seen: &Round| {
        let (d, b): (Vec<f64>, Vec<f64>) = seen.iter().copied().unzip();
        (median(d), median(b))
    };
    let (alone, _) = medians(&rows[0].2);
    println!(
        "#[timed] per call, timed inside each thread ({BATCH} calls a batch, {ROUNDS} rounds, medians)"
    );
    println!(
        "{:<13} {:>7} {:>12} {:>17} {:>11}",
        "threads", "at once", "decorated", "its clock reads", "vs 1 alone"
    );
    for (kind, n, seen) in &rows {
        let (d, c) = medians(seen);
        println!(
            "{kind:<13} {n:>7} {d:>9.1} ns {c:>14.1} ns {:>10.2}x",
            d / alone
        );
    }
    let (d, b) = first_call();
    println!("first call in a new thread (takes a shard): decorated {d:.0} ns, bare {b:.0} ns");
}
