//! `#[parallel_chunks(backend = "processes")]`: chunks in worker processes of this same test
//! binary, with no code in `main`; crashes that never take the caller down.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use decor::{ChunkError, parallel_chunks};
use decor_tests::{capture, exclusive};
use serde::{Deserialize, Serialize};

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "concat")]
fn pids(xs: &[u64]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", reduce = "sum")]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[test]
fn chunks_run_in_other_processes_and_the_pool_is_kept() {
    let _pool = exclusive();
    let ids = pids(&[1, 2, 3, 4]);
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|&p| p != std::process::id()), "{ids:?}");
    assert_eq!(total(&vec![1; 8_000_000]), 8_000_000);
    // Both workers exist after the first calls (one may have been still starting during the
    // first); later calls reuse them.
    let mut known = ids.clone();
    known.extend(pids(&[1, 2, 3, 4]));
    let again = pids(&[1, 2, 3, 4]);
    assert!(
        again.iter().all(|p| known.contains(p)),
        "warm workers are reused: {known:?} {again:?}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    prefix: String,
    factor: u64,
}

#[parallel_chunks(chunk_size = 4, workers = 2, backend = "processes", reduce = "concat")]
fn label(text: &str, settings: &Settings, repeat: usize) -> Vec<String> {
    vec![format!(
        "{}{}",
        settings.prefix,
        text.repeat(repeat * settings.factor as usize)
    )]
}

#[parallel_chunks(chunks = 3, backend = "processes", reduce = "concat")]
fn lengths(words: Vec<String>) -> Vec<usize> {
    words.iter().map(String::len).collect()
}

#[test]
fn strings_vectors_and_other_parameters_cross_with_serde() {
    let s = Settings {
        prefix: ">".into(),
        factor: 1,
    };
    assert_eq!(
        label("abcdefgh日本", &s, 2),
        [">abcdabcd", ">efghefgh", ">日本日本"]
    );
    let words: Vec<String> = ["a", "bb", "ccc", "dddd"].map(String::from).to_vec();
    assert_eq!(lengths(words), [1, 2, 3, 4]);
}

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "sum")]
fn crash(xs: &[u32]) -> u32 {
    match xs[0] {
        100 => panic!("bad input {}", xs[0]),
        200 => std::process::abort(),
        300 => std::process::exit(3),
        // SAFETY: sending a signal to ourselves.
        400 => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
            unreachable!()
        },
        _ => xs.iter().sum(),
    }
}

fn panic_message(xs: &[u32]) -> String {
    let err = std::panic::catch_unwind(|| crash(xs)).expect_err("the call panics");
    err.downcast_ref::<String>().expect("a message").clone()
}

#[parallel_chunks(chunks = 2, workers = 1, backend = "processes", reduce = "concat")]
fn one_worker_pid(xs: &[u8]) -> Vec<u32> {
    if xs[0] == 1 {
        panic!("one worker panics");
    }
    vec![std::process::id()]
}

#[test]
fn a_panic_in_a_worker_names_function_and_chunk_and_the_worker_lives_on() {
    let _pool = exclusive();
    let msg = panic_message(&[1, 2, 3, 4, 100, 6, 7, 8]);
    assert_eq!(
        msg,
        "processes::crash: chunk 2 of 4 panicked: bad input 100"
    );
    assert_eq!(crash(&[1, 1, 1, 1]), 4, "the next call works");
    // One worker: the process that panicked is the one that answers next.
    let before = one_worker_pid(&[0, 0]);
    assert!(std::panic::catch_unwind(|| one_worker_pid(&[1, 0])).is_err());
    let after = one_worker_pid(&[0, 0]);
    assert_eq!(before, after);
}

#[test]
fn a_worker_that_aborts_exits_or_is_killed_fails_its_chunk_and_is_replaced() {
    let _pool = exclusive();
    let msg = panic_message(&[1, 2, 200, 4]);
    assert!(
        msg.starts_with("processes::crash: chunk 2 of 4 failed: its worker process "),
        "{msg}"
    );
    assert!(msg.ends_with("killed by signal 6 (SIGABRT)"), "{msg}");
    let msg = panic_message(&[1, 2, 3, 4, 5, 6, 300, 8]);
    assert!(
        msg.contains("chunk 3 of 4 failed") && msg.ends_with("exited with code 3"),
        "{msg}"
    );
    let msg = panic_message(&[400, 2, 3, 4]);
    assert!(
        msg.contains("chunk 0 of 4 failed") && msg.ends_with("killed by signal 9 (SIGKILL)"),
        "{msg}"
    );
    assert_eq!(crash(&[1, 2, 3, 4]), 10, "the pool replaced its workers");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Failure {
    Bad(String),
    Lost(String),
}

impl From<ChunkError> for Failure {
    fn from(e: ChunkError) -> Self {
        Failure::Lost(e.to_string())
    }
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
fn careful_sum(xs: &[i64]) -> Result<i64, Failure> {
    if xs.contains(&-1) {
        return Err(Failure::Bad("negative".into()));
    }
    if xs.contains(&-2) {
        std::process::abort();
    }
    Ok(xs.iter().sum())
}

#[test]
fn a_dead_worker_is_an_err_when_the_error_type_converts_from_chunk_error() {
    let _pool = exclusive();
    assert_eq!(careful_sum(&[1, 2, 3, 4]), Ok(10));
    assert_eq!(
        careful_sum(&[1, 2, -1, 4]),
        Err(Failure::Bad("negative".into()))
    );
    let Err(Failure::Lost(msg)) = careful_sum(&[1, 2, -2, 4]) else {
        panic!("a lost chunk")
    };
    assert!(
        msg.contains("chunk 1 of 2 failed") && msg.contains("SIGABRT"),
        "{msg}"
    );
}

fn marker(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("decor-test-{}-{name}", std::process::id()))
}

#[parallel_chunks(
    chunks = 2,
    workers = 2,
    backend = "processes",
    retries = 1,
    reduce = "sum"
)]
fn dies_once(xs: &[u64], marker: &str) -> u64 {
    if xs[0] == 2 && std::fs::create_dir(marker).is_ok() {
        std::process::abort(); // the first attempt only
    }
    xs.iter().sum()
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
fn dies_once_without_retries(xs: &[u64], marker: &str) -> u64 {
    if xs[0] == 2 && std::fs::create_dir(marker).is_ok() {
        std::process::abort();
    }
    xs.iter().sum()
}

#[test]
fn retries_run_a_chunk_again_on_a_fresh_worker() {
    let _pool = exclusive();
    let m = marker("retry");
    let _ = std::fs::remove_dir(&m);
    assert_eq!(dies_once(&[1, 2], m.to_str().unwrap()), 3);
    let m2 = marker("no-retry");
    let _ = std::fs::remove_dir(&m2);
    let r = std::panic::catch_unwind(|| dies_once_without_retries(&[1, 2], m2.to_str().unwrap()));
    assert!(r.is_err());
    let _ = std::fs::remove_dir(&m);
    let _ = std::fs::remove_dir(&m2);
}

#[parallel_chunks(
    chunks = 2,
    workers = 2,
    backend = "processes",
    timeout = "300ms",
    reduce = "sum"
)]
fn hangs(xs: &[u64]) -> u64 {
    if xs[0] == 9 {
        std::thread::sleep(Duration::from_secs(30));
    }
    xs.iter().sum()
}

#[test]
fn a_timeout_kills_a_hung_worker_and_fails_its_chunk_in_about_the_timeout() {
    let _pool = exclusive();
    assert_eq!(hangs(&[1, 2]), 3);
    let start = Instant::now();
    let err = std::panic::catch_unwind(|| hangs(&[1, 9])).expect_err("times out");
    let took = start.elapsed();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("chunk 1 of 2 timed out after 300ms"), "{msg}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(hangs(&[1, 2]), 3, "the next call works");
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
fn chatty(xs: &[u64]) -> u64 {
    tracing::info!(first = xs[0], "working in a worker");
    xs.iter().sum()
}

#[test]
fn events_in_workers_reach_the_parents_subscriber_inside_the_chunk_span() {
    let _pool = exclusive();
    let (sum, seen) = capture(|| chatty(&[5, 6]));
    assert_eq!(sum, 11);
    let events = seen.events_with("working in a worker");
    assert_eq!(events.len(), 2, "{seen:#?}");
    for e in &events {
        assert_eq!(e.scope, ["parallel_chunks", "chunk"], "{seen:#?}");
        let pid: u32 = e.fields["worker_pid"].parse().unwrap();
        assert_ne!(pid, std::process::id());
        assert_eq!(e.target, "processes");
    }
    let mut firsts: Vec<&str> = events.iter().map(|e| e.fields["first"].as_str()).collect();
    firsts.sort();
    assert_eq!(firsts, ["5", "6"]);
    let call = seen.span("parallel_chunks");
    assert_eq!(call.fields["backend"], "processes");
    let chunk_workers: Vec<&String> = seen
        .spans
        .iter()
        .filter(|s| s.name == "chunk")
        .map(|s| &s.fields["worker"])
        .collect();
    assert!(
        chunk_workers
            .iter()
            .all(|w| w.parse::<u32>().unwrap() != std::process::id())
    );
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes")]
fn wait_and_report(xs: &[u64], dir: &str) {
    std::fs::write(format!("{dir}/{}", std::process::id()), b"").unwrap();
    let _ = xs;
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn child_runs_long_call() {
    let Ok(dir) = std::env::var("DECOR_ORPHAN_DIR") else {
        return;
    };
    wait_and_report(&[1, 2], &dir);
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn no_worker_outlives_its_parent_even_when_the_parent_is_killed() {
    if std::env::var_os("DECOR_ORPHAN_DIR").is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_runs_long_call", "--nocapture"])
        .env("DECOR_ORPHAN_DIR", dir.path())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let workers: Vec<u32> = loop {
        let found: Vec<u32> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        if found.len() == 2 {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "workers never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(workers.iter().all(|&p| alive(p)));
    parent.kill().unwrap(); // SIGKILL: no destructor, no cleanup code runs in the parent
    parent.wait().unwrap();
    let start = Instant::now();
    while workers.iter().any(|&p| alive(p)) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "orphaned workers still running: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn child_plain_test() {
    if std::env::var_os("DECOR_STRANGER_CHILD").is_some() {
        println!("MAIN RAN");
    }
}

#[test]
fn setting_the_worker_variable_alone_does_not_make_a_worker() {
    if std::env::var_os("DECOR_STRANGER_CHILD").is_some() {
        return;
    }
    for value in ["3:00000000000000000000000000000001", "0:ff", "garbage"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_plain_test", "--nocapture"])
            .env("DECOR_STRANGER_CHILD", "1")
            .env("DECOR_WORKER_CHANNEL_0_1_0", value)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{value}: {stdout}");
        assert!(
            stdout.contains("MAIN RAN"),
            "{value}: main must run: {stdout}"
        );
    }
}

#[parallel_chunks(chunks = 3, workers = 2, backend = "processes", reduce = "concat")]
fn own_index_remote(xs: &[u8]) -> Vec<(usize, usize)> {
    let _ = xs;
    let c = decor::current_chunk().unwrap();
    vec![(c.index, c.chunks)]
}

#[test]
fn a_body_in_a_worker_knows_its_chunk() {
    assert_eq!(own_index_remote(&[0; 6]), [(0, 3), (1, 3), (2, 3)]);
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes")]
fn two_slow_chunks(xs: &[u64]) {
    let _ = xs;
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn long_chunks_are_spread_over_the_workers() {
    let _pool = exclusive();
    two_slow_chunks(&[1, 2]); // both workers exist from here on
    let start = Instant::now();
    two_slow_chunks(&[1, 2]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(550),
        "two 300 ms chunks on two workers: {took:?}"
    );
}

/// See [`decor_tests::floods`]: the same call on MPI is in `mpi.rs`.
#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "concat")]
fn floods(words: &[String], notes: Vec<String>) -> Vec<u64> {
    decor_tests::floods::body(words, &notes)
}

#[test]
fn what_overflows_the_rings_both_ways_crosses_whole_and_in_order() {
    let _pool = exclusive();
    let words = decor_tests::floods::words();
    let (out, seen) = capture(|| floods(&words, decor_tests::floods::notes()));
    decor_tests::floods::check(&out, &seen).unwrap();
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", reduce = "sum")]
fn sum_remote(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

/// Runs `call(thread, round)` for `rounds` rounds on each of 4 threads at once, and gives what
/// each returned. A time limit of its own: a lost wake-up fails here instead of hanging.
fn on_four_threads<T: Send + 'static>(rounds: u64, call: fn(u64, u64) -> T) -> Vec<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..4u64 {
        let tx = tx.clone();
        // Not scoped: a thread that hung must not keep the test from failing.
        std::thread::spawn(move || {
            for round in 0..rounds {
                tx.send(call(t, round)).unwrap();
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    (0..4 * rounds)
        .map(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left)
                .unwrap_or_else(|_| panic!("every thread finishes its {rounds} calls within 60 s"))
        })
        .collect()
}

/// 64 numbers, different for each thread and round.
fn numbers(t: u64, round: u64) -> Vec<u64> {
    (0..64).map(|i| i + t * 1000 + round).collect()
}

#[test]
fn calls_from_several_threads_at_once_each_get_their_own_answers() {
    let _pool = exclusive();
    on_four_threads(50, |t, round| {
        let xs = numbers(t, round);
        assert_eq!(
            sum_remote(&xs),
            xs.iter().sum::<u64>(),
            "thread {t}, round {round}"
        );
    });
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", reduce = "concat")]
fn sums_and_pids(xs: &[u64]) -> Vec<(u64, u32)> {
    vec![(xs.iter().sum(), std::process::id())]
}

#[test]
fn calls_from_four_threads_never_start_more_workers_than_they_hold_at_once() {
    let _pool = exclusive();
    let pids = on_four_threads(1000, |t, round| {
        let xs = numbers(t, round);
        let got = sums_and_pids(&xs);
        let sum: u64 = got.iter().map(|(s, _)| s).sum();
        assert_eq!(sum, xs.iter().sum::<u64>(), "thread {t}, round {round}");
        got.into_iter().map(|(_, pid)| pid).collect::<Vec<_>>()
    });
    let all: std::collections::BTreeSet<u32> = pids.into_iter().flatten().collect();
    // 4 calls of 2 workers at once hold at most 8 slots, so the first 8 always have 2 free:
    // a 9th worker means a slot looked taken when it was not.
    assert!(
        all.len() <= 8,
        "{} workers served 4 threads of 2: {all:?}",
        all.len()
    );
}

#[parallel_chunks(chunks = 5, workers = 2, backend = "processes", reduce = "concat")]
fn shout(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| format!("{}!", l.to_uppercase()))
        .collect()
}

/// Lines of every kind: empty, non-ASCII, with newlines inside, plain digits.
fn mixed_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 4 {
            0 => String::new(),
            1 => format!("São Paulo {i}"),
            2 => "Řež\n".repeat(i % 5),
            _ => i.to_string(),
        })
        .collect()
}

#[test]
fn strings_cross_whole_both_ways_in_messages_and_in_shared_memory() {
    let _pool = exclusive();
    let (tx, rx) = std::sync::mpsc::channel();
    // Not scoped: a hung call must not keep the test from failing.
    std::thread::spawn(move || {
        // 0 to 7 lines travel in the messages; 100,000 (over 1 MB) through shared memory.
        for n in [0, 1, 7, 100_000] {
            let lines = mixed_lines(n);
            let want: Vec<String> = lines
                .iter()
                .map(|l| format!("{}!", l.to_uppercase()))
                .collect();
            assert_eq!(shout(&lines), want, "{n} lines");
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the calls answered within 60 s");
}
