//! Faults as a busy program meets them: hung chunks under a timeout and workers SIGKILLed while
//! calls from several threads run, with nothing to absorb them (`retries = 0`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use decor::{ChunkError, parallel_chunks};
use decor_tests::{exclusive, within};

/// The worker processes of this process now: its children, read from `/proc`.
fn children() -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// SIGKILLs one worker every `every` until `stop` is set.
fn killer(stop: Arc<AtomicBool>, every: Duration) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut killed = 0;
        let mut turn = 0usize;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(every);
            let kids = children();
            if let Some(&pid) = kids.get(turn % kids.len().max(1)) {
                // SAFETY: a plain signal to a child of ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed += 1;
            }
            turn += 1;
        }
        killed
    })
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(crate = "decor::serde")]
struct Failed(ChunkError);

impl From<ChunkError> for Failed {
    fn from(e: ChunkError) -> Self {
        Failed(e)
    }
}

#[parallel_chunks(
    chunks = 8,
    workers = 2,
    backend = "processes",
    timeout = "200ms",
    reduce = "sum"
)]
fn one_chunk_hangs(xs: &[u64]) -> Result<u64, Failed> {
    if xs.contains(&7) {
        std::thread::sleep(Duration::from_secs(30));
    }
    Ok(xs.iter().sum())
}

/// Runs `calls` calls of `f` from each of four threads at once and returns how long each took.
fn from_four_threads(calls: usize, f: fn() -> ()) -> Vec<Duration> {
    let callers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..calls)
                    .map(|_| {
                        let start = Instant::now();
                        f();
                        start.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Duration> = callers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort();
    all
}

fn hung_call() {
    let xs: Vec<u64> = (0..64).collect();
    let r = one_chunk_hangs(&xs);
    let Err(Failed(e)) = r else {
        panic!("a hung chunk gave {r:?}")
    };
    assert!(
        e.function.ends_with("one_chunk_hangs") && e.chunk == 0,
        "{e}"
    );
}

#[test]
fn timed_out_calls_from_four_threads_never_wait_past_their_timeout() {
    let _pool = exclusive();
    let stop = Arc::new(AtomicBool::new(false));
    let kills = killer(stop.clone(), Duration::from_millis(150));
    let times = within(Duration::from_secs(120), "timed-out calls", || {
        from_four_threads(25, hung_call)
    });
    stop.store(true, Ordering::Relaxed);
    assert!(kills.join().unwrap() > 0, "the killer killed workers");
    // Each call has its own workers: none waits for another call's hung chunk, nor for a
    // respawn, a reap or a poll on top of its own timeout.
    let slowest = *times.last().unwrap();
    assert!(
        slowest < Duration::from_millis(200 + 250),
        "slowest {slowest:?} of {times:?}"
    );
}

#[parallel_chunks(
    chunks = 8,
    workers = 2,
    backend = "processes",
    retries = 0,
    reduce = "sum"
)]
fn sum_unprotected(xs: &[u64]) -> Result<u64, Failed> {
    std::thread::sleep(Duration::from_millis(2));
    Ok(xs.iter().sum())
}

static NAMED_ERRORS: AtomicUsize = AtomicUsize::new(0);

fn checked_call() {
    let xs: Vec<u64> = (1..=4_000).collect();
    match sum_unprotected(&xs) {
        Ok(sum) => assert_eq!(sum, 4_000 * 4_001 / 2, "a wrong answer"),
        Err(Failed(e)) => {
            NAMED_ERRORS.fetch_add(1, Ordering::Relaxed);
            assert!(
                e.function.ends_with("sum_unprotected") && e.chunk < 8,
                "{e}"
            );
            assert!(
                e.to_string().contains(&format!("chunk {} of 8", e.chunk)),
                "{e}"
            );
        }
    }
}

#[test]
fn with_nothing_to_absorb_them_killed_workers_give_the_answer_or_a_named_error() {
    let _pool = exclusive();
    // The pool as four callers use it, before any kill.
    within(Duration::from_secs(60), "warm-up calls", || {
        from_four_threads(3, checked_call)
    });
    let (fds, threads, kids) = (open_fds(), threads(), children().len());
    let stop = Arc::new(AtomicBool::new(false));
    let kills = killer(stop.clone(), Duration::from_millis(7));
    within(
        Duration::from_secs(120),
        "calls while workers are killed",
        || from_four_threads(40, checked_call),
    );
    stop.store(true, Ordering::Relaxed);
    assert!(kills.join().unwrap() > 10, "the killer killed workers");
    assert!(
        NAMED_ERRORS.load(Ordering::Relaxed) > 0,
        "a killed worker failed a call"
    );
    // Every slot's worker is back (or started again) after calls with no kills.
    within(Duration::from_secs(60), "calls after", || {
        from_four_threads(3, checked_call)
    });
    assert!(
        open_fds() <= fds,
        "descriptors: {fds} before, {} after",
        open_fds()
    );
    assert!(
        self::threads() <= threads,
        "threads: {threads} before, {} after",
        self::threads()
    );
    assert!(
        children().len() <= kids,
        "children: {kids} before, {} after",
        children().len()
    );
}
