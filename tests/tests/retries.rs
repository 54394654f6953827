//! `retries`, `backoff`, `retry_if` and `rate` on every backend: a chunk that returns `Err` runs
//! again, waits hold no worker, and chunk starts keep to the rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use decor::parallel_chunks;
use decor_tests::{capture, within};

/// A service's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(crate = "decor::serde")]
enum Status {
    /// 429 or 503: worth another attempt.
    Busy(u16),
    /// 400: never.
    Bad(u16),
}

fn transient(s: &Status) -> bool {
    matches!(s, Status::Busy(_))
}

/// How many times each chunk (by its first element) has been tried, per test.
static TRIES: Mutex<Vec<(u64, u32)>> = Mutex::new(Vec::new());

fn tried(key: u64) -> u32 {
    let mut t = TRIES.lock().unwrap();
    match t.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            t.push((key, 1));
            1
        }
    }
}

#[parallel_chunks(chunks = 4, workers = 2, retries = 3, backoff = "5ms..20ms", retry_if = transient, reduce = "sum")]
fn busy_twice(xs: &[u64]) -> Result<u64, Status> {
    // Chunks starting at 1000 and 3000 are busy on their first two attempts.
    if (xs[0] == 1000 || xs[0] == 3000) && tried(xs[0]) <= 2 {
        return Err(Status::Busy(503));
    }
    Ok(xs.iter().sum())
}

#[test]
fn an_err_that_retry_if_accepts_runs_again_on_threads() {
    let xs: Vec<u64> = (0..4000).collect();
    let (r, seen) = within(Duration::from_secs(30), "retries", move || {
        capture(|| busy_twice(&xs))
    });
    assert_eq!(r, Ok((0..4000).sum()));
    let warns = seen.events_with("attempt");
    assert_eq!(warns.len(), 4, "{seen:#?}");
    assert!(
        seen.mentions("attempt 2/4") && seen.mentions("attempt 3/4"),
        "{seen:#?}"
    );
    assert!(seen.mentions("Busy(503)"), "{seen:#?}");
}

/// Which chunk (by its first element) started, in order, per test.
static STARTS: Mutex<Vec<(&'static str, u64, Instant)>> = Mutex::new(Vec::new());

fn started(test: &'static str, key: u64) {
    STARTS.lock().unwrap().push((test, key, Instant::now()));
}

fn starts_of(test: &str) -> Vec<(u64, Instant)> {
    STARTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| *t == test)
        .map(|(_, k, at)| (*k, *at))
        .collect()
}

#[parallel_chunks(
    chunks = 4,
    backend = "serial",
    retries = 2,
    backoff = "150ms..150ms",
    reduce = "sum"
)]
fn first_busy_serial(xs: &[u64]) -> Result<u64, Status> {
    started("serial", xs[0]);
    if xs[0] == 0 && tried(100 + xs[0]) == 1 {
        return Err(Status::Busy(429));
    }
    Ok(xs.iter().sum())
}

#[test]
fn on_serial_the_other_chunks_run_while_a_failed_one_waits_out_its_backoff() {
    let r = within(Duration::from_secs(30), "serial retries", || {
        first_busy_serial(&[0, 1, 2, 3])
    });
    assert_eq!(r, Ok(6));
    let order: Vec<u64> = starts_of("serial").iter().map(|(k, _)| *k).collect();
    assert_eq!(
        order,
        [0, 1, 2, 3, 0],
        "chunk 0 runs again after the others, not before"
    );
}

#[parallel_chunks(
    chunks = 4,
    workers = 1,
    retries = 2,
    backoff = "150ms..150ms",
    reduce = "sum"
)]
async fn first_busy_async(xs: &[u64]) -> Result<u64, Status> {
    started("async", xs[0]);
    if xs[0] == 0 && tried(200 + xs[0]) == 1 {
        return Err(Status::Busy(429));
    }
    Ok(xs.iter().sum())
}

#[test]
fn an_async_chunk_waits_on_a_timer_holding_no_place_in_flight() {
    let r = within(Duration::from_secs(30), "async retries", || {
        pollster::block_on(first_busy_async(&[0, 1, 2, 3]))
    });
    assert_eq!(r, Ok(6));
    let starts = starts_of("async");
    let order: Vec<u64> = starts.iter().map(|(k, _)| *k).collect();
    assert_eq!(order, [0, 1, 2, 3, 0]);
    assert!(
        starts[4].1 - starts[0].1 >= Duration::from_millis(150),
        "the backoff was waited"
    );
}

#[parallel_chunks(chunks = 2, retries = 5, backoff = "1ms..2ms", retry_if = transient, reduce = "sum")]
fn refused(xs: &[u64]) -> Result<u64, Status> {
    if xs[0] == 0 {
        tried(300);
        return Err(Status::Bad(400));
    }
    Ok(1)
}

#[test]
fn an_err_that_retry_if_refuses_is_returned_after_one_attempt() {
    assert_eq!(refused(&[0, 1]), Err(Status::Bad(400)));
    assert_eq!(tried(300), 2, "one attempt, then this look");
}

#[parallel_chunks(chunks = 1, retries = 2, backoff = "1ms..2ms", reduce = "sum")]
fn always_busy(xs: &[u64]) -> Result<u64, Status> {
    Err(Status::Busy(tried(400 + xs[0]) as u16))
}

#[test]
fn after_the_last_retry_the_last_attempts_error_is_returned() {
    let (r, seen) = capture(|| always_busy(&[0]));
    assert_eq!(r, Err(Status::Busy(3)), "three attempts, the third's error");
    let retried = decor::stats::retries();
    let row = retried
        .iter()
        .find(|r| r.name.ends_with("always_busy"))
        .unwrap();
    assert_eq!(row.retries, 2);
    let spans: Vec<_> = seen.spans.iter().filter(|s| s.name == "chunk").collect();
    assert_eq!(spans.len(), 3, "a span per attempt: {seen:#?}");
}

#[parallel_chunks(chunks = 2, retries = 3, backoff = "1ms..2ms", reduce = "sum")]
fn panics_once(xs: &[u64]) -> Result<u64, Status> {
    if xs[0] == 0 && tried(500) == 1 {
        panic!("a bug, not a busy service");
    }
    Ok(1)
}

#[test]
fn a_panic_is_never_retried() {
    let r = std::panic::catch_unwind(|| panics_once(&[0, 1]));
    let msg = r.expect_err("the panic reaches the caller");
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("chunk 0 of 2 panicked: a bug"), "{msg}");
}

#[parallel_chunks(chunks = 6, workers = 6, rate = "20/s", reduce = "sum")]
fn paced(xs: &[u64]) -> u64 {
    started("rate", xs[0]);
    xs.iter().sum()
}

#[test]
fn chunk_starts_of_concurrent_calls_keep_to_the_rate() {
    within(Duration::from_secs(30), "paced calls", || {
        let a = std::thread::spawn(|| paced(&[0, 1, 2, 3, 4, 5]));
        let b = std::thread::spawn(|| paced(&[10, 11, 12, 13, 14, 15]));
        assert_eq!(a.join().unwrap() + b.join().unwrap(), 15 + 75);
    });
    let mut at: Vec<Instant> = starts_of("rate").iter().map(|(_, at)| *at).collect();
    at.sort();
    assert_eq!(at.len(), 12);
    // 20 a second: 50 ms apart, whichever call each start belongs to.
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(49),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

/// The attempt this is of chunk `key` (1 for the first), counted in files under `dir`, so that
/// worker processes count together.
fn attempt_in(dir: &str, key: u64) -> u32 {
    (1..)
        .find(|n| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(format!("{dir}/{key}-{n}"))
                .is_ok()
        })
        .expect("a free attempt number")
}

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", retries = 3, backoff = "5ms..20ms", retry_if = transient, reduce = "sum")]
fn busy_twice_remote(xs: &[u64], dir: &str) -> Result<u64, Status> {
    if (xs[0] == 1000 || xs[0] == 3000) && attempt_in(dir, xs[0]) <= 2 {
        return Err(Status::Busy(503));
    }
    if xs[0] == 2000 && attempt_in(dir, xs[0]) == 1 {
        return Err(Status::Bad(400)); // refused by retry_if on its first attempt
    }
    Ok(xs.iter().sum())
}

#[test]
fn on_processes_an_err_that_retry_if_accepts_runs_again_and_one_it_refuses_ends_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let xs: Vec<u64> = (0..4000).collect();
    let (r, seen) = within(Duration::from_secs(60), "processes retries", move || {
        capture(|| busy_twice_remote(&xs, &path))
    });
    // Chunk 1's Busy is retried and chunk 2's Bad is not: the first Err in chunk order kept.
    assert_eq!(r, Err(Status::Bad(400)), "{seen:#?}");
    assert!(seen.mentions("Busy(503)"), "{seen:#?}");
    assert!(!seen.mentions("Bad(400)); attempt"), "{seen:#?}");
    let _ = std::fs::remove_dir_all(dir.path());
    std::fs::create_dir(dir.path()).unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let xs: Vec<u64> = (0..4000).collect();
    let xs: Vec<u64> = xs
        .into_iter()
        .map(|x| if x == 2000 { 2001 } else { x })
        .collect();
    let (r, seen) = within(Duration::from_secs(60), "processes retries", move || {
        capture(|| busy_twice_remote(&xs, &path))
    });
    assert_eq!(r, Ok((0..4000).sum::<u64>() + 1), "{seen:#?}");
    let warns = seen.events_with("attempt");
    assert_eq!(warns.len(), 4, "two chunks, two retries each: {seen:#?}");
    assert!(
        seen.mentions("attempt 2/4") && seen.mentions("attempt 3/4"),
        "{seen:#?}"
    );
}

#[parallel_chunks(
    chunks = 2,
    workers = 2,
    backend = "processes",
    timeout = "300ms",
    retries = 1,
    backoff = "1ms..2ms",
    reduce = "sum"
)]
fn hangs_once_remote(xs: &[u64], dir: &str) -> u64 {
    if xs[0] == 0 && attempt_in(dir, 0) == 1 {
        std::thread::sleep(Duration::from_secs(60));
    }
    xs.iter().sum()
}

#[test]
fn on_processes_a_timed_out_chunk_runs_again_on_a_fresh_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let (sum, seen) = within(Duration::from_secs(30), "timed-out retry", move || {
        capture(|| hangs_once_remote(&[0, 1, 2, 3], &path))
    });
    assert_eq!(sum, 6, "{seen:#?}");
    assert!(seen.mentions("timed out after 300ms"), "{seen:#?}");
    assert!(seen.mentions("attempt 2/2"), "{seen:#?}");
}

#[parallel_chunks(
    chunks = 6,
    workers = 3,
    backend = "processes",
    rate = "20/s",
    reduce = "concat"
)]
fn paced_remote(xs: &[u64]) -> Vec<u128> {
    let _ = xs;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    vec![now.unwrap().as_nanos()]
}

#[test]
fn on_processes_chunk_starts_of_concurrent_calls_keep_to_the_rate() {
    let mut at = within(Duration::from_secs(30), "paced remote calls", || {
        let a = std::thread::spawn(|| paced_remote(&[0, 1, 2, 3, 4, 5]));
        let b = std::thread::spawn(|| paced_remote(&[10, 11, 12, 13, 14, 15]));
        let mut at = a.join().unwrap();
        at.extend(b.join().unwrap());
        at
    });
    at.sort();
    assert_eq!(at.len(), 12);
    // Sent 50 ms apart; a worker may start one a little late, never two closer than ~40 ms.
    for pair in at.windows(2) {
        let gap = Duration::from_nanos((pair[1] - pair[0]) as u64);
        assert!(gap >= Duration::from_millis(40), "{gap:?} in {at:?}");
    }
}

#[parallel_chunks(
    chunks = 2,
    workers = 2,
    retries = 2,
    backoff = "1ms..2ms",
    reduce = "concat"
)]
fn succeeds_on_its_last_attempt(xs: &[u64]) -> Result<Vec<(u32, u32)>, Status> {
    let _ = xs;
    let c = decor::current_chunk().expect("in a chunk");
    if !c.is_last_attempt() {
        return Err(Status::Busy(503));
    }
    Ok(vec![(c.attempt, c.retries)])
}

#[parallel_chunks(
    chunks = 2,
    workers = 2,
    backend = "processes",
    retries = 2,
    backoff = "1ms..2ms",
    reduce = "concat"
)]
fn succeeds_on_its_last_attempt_remote(xs: &[u64]) -> Result<Vec<(u32, u32)>, Status> {
    let _ = xs;
    let c = decor::current_chunk().expect("in a chunk");
    if !c.is_last_attempt() {
        return Err(Status::Busy(503));
    }
    Ok(vec![(c.attempt, c.retries)])
}

#[test]
fn a_body_knows_its_attempt_on_threads_and_processes() {
    let (here, there) = within(Duration::from_secs(30), "attempts", || {
        (
            succeeds_on_its_last_attempt(&[1, 2]),
            succeeds_on_its_last_attempt_remote(&[1, 2]),
        )
    });
    assert_eq!(here, Ok(vec![(2, 2), (2, 2)]));
    assert_eq!(there, Ok(vec![(2, 2), (2, 2)]));
}

#[parallel_chunks(chunks = 5, workers = 5, rate = "20/s", reduce = "sum")]
async fn paced_async(xs: &[u64]) -> u64 {
    started("async rate", xs[0]);
    xs.iter().sum()
}

#[test]
fn async_chunk_starts_keep_to_the_rate_on_one_thread() {
    let r = within(Duration::from_secs(30), "paced async", || {
        pollster::block_on(paced_async(&[0, 1, 2, 3, 4]))
    });
    assert_eq!(r, 10);
    let at: Vec<Instant> = starts_of("async rate").iter().map(|(_, at)| *at).collect();
    assert_eq!(at.len(), 5);
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(49), "{gap:?}");
    }
}
