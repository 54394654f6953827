//! The processes backend under real programs: what a user's program does around a call (big
//! chunks, two functions of one name, children of chunk bodies, `main`'s arguments, a rebuilt
//! executable, Ctrl-C, nested calls) never hangs it, never runs the wrong body, and gives the
//! answer threads give. Every test that could hang runs under a time limit of its own.

use std::process::Command;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use decor::{ChunkError, parallel_chunks};
use decor_tests::{exclusive, output_within, within};
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(60);

#[parallel_chunks(
    chunk_size = 1_000_000,
    workers = 2,
    backend = "processes",
    reduce = "concat"
)]
fn echo(text: &str) -> Vec<String> {
    vec![text.to_owned()]
}

#[parallel_chunks(
    chunk_size = 1_000_000,
    workers = 2,
    backend = "processes",
    reduce = "concat",
    timeout = "30s"
)]
fn echo_with_timeout(text: &str) -> Vec<String> {
    vec![text.to_owned()]
}

#[test]
fn chunks_and_results_of_a_mebibyte_with_more_chunks_than_workers_do_not_hang() {
    let _pool = exclusive();
    let text: String = (0..8_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let (a, b) = within(LIMIT, "1 MiB chunks on 2 workers", move || {
        (
            echo(&text).concat() == text,
            echo_with_timeout(&text).concat() == text,
        )
    });
    assert!(a && b, "every chunk comes back whole and in order");
}

struct Gauss;
struct Count;

impl Gauss {
    #[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
    fn total(xs: &[u64]) -> u64 {
        xs.iter().sum()
    }
}

impl Count {
    #[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
    fn total(xs: &[u64]) -> u64 {
        xs.len() as u64
    }
}

fn doubled(xs: &[u64]) -> u64 {
    #[parallel_chunks(chunks = 2, backend = "processes", reduce = "sum")]
    fn helper(xs: &[u64]) -> u64 {
        xs.iter().map(|x| 2 * x).sum()
    }
    helper(xs)
}

fn squared(xs: &[u64]) -> u64 {
    #[parallel_chunks(chunks = 2, backend = "processes", reduce = "sum")]
    fn helper(xs: &[u64]) -> u64 {
        xs.iter().map(|x| x * x).sum()
    }
    helper(xs)
}

#[test]
fn two_functions_of_one_name_in_one_module_each_run_their_own_body() {
    let _pool = exclusive();
    let xs: Vec<u64> = (1..=100).collect();
    let got = within(LIMIT, "same-name functions", move || {
        (
            Gauss::total(&xs),
            Count::total(&xs),
            doubled(&xs),
            squared(&xs),
        )
    });
    assert_eq!(got, (5050, 100, 10_100, 338_350));
}

#[derive(Debug, Serialize, Deserialize)]
struct Failed(String);

impl From<ChunkError> for Failed {
    fn from(e: ChunkError) -> Self {
        Failed(e.to_string())
    }
}

#[parallel_chunks(chunks = 1, workers = 1, backend = "processes", reduce = "sum")]
fn start_a_sleeper_then_abort(xs: &[u64]) -> Result<u64, Failed> {
    let _ = xs;
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep starts");
    std::process::abort()
}

#[test]
fn a_process_started_by_a_chunk_body_does_not_keep_the_caller_waiting() {
    let _pool = exclusive();
    let (r, took) = within(
        Duration::from_secs(20),
        "abort after starting `sleep 30`",
        || {
            let start = std::time::Instant::now();
            (start_a_sleeper_then_abort(&[1]), start.elapsed())
        },
    );
    let Err(Failed(e)) = r else {
        panic!("an aborted worker is an error")
    };
    assert!(e.contains("SIGABRT"), "{e}");
    assert!(took < Duration::from_secs(10), "reported after {took:?}");
}

static ARGS: LazyLock<Vec<String>> = LazyLock::new(|| std::env::args().collect());

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "concat")]
fn arguments_seen(xs: &[u8]) -> Vec<Vec<String>> {
    let _ = xs;
    vec![ARGS.clone()]
}

#[test]
fn workers_see_the_parents_arguments() {
    let _pool = exclusive();
    let seen = within(LIMIT, "arguments", || arguments_seen(&[1, 2]));
    let ours: Vec<String> = std::env::args().collect();
    assert_eq!(seen, [ours.clone(), ours]);
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "concat")]
fn pids(xs: &[u8]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "sum")]
fn sum(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[test]
fn child_asks_a_worker_of_another_build() {
    let Some(other) = std::env::var_os("DECOR_OTHER_BUILD") else {
        return;
    };
    decor::__private::remote::start_workers_from(Some(other.into()));
    let failed = std::panic::catch_unwind(|| sum(&[1, 2, 3, 4])).unwrap_err();
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    println!("FAILED {message}");
}

#[test]
fn a_worker_of_another_build_is_refused_with_the_function_named() {
    if std::env::var_os("DECOR_OTHER_BUILD").is_some() {
        return;
    }
    // The same program with another build id: as if the executable had been rebuilt.
    let dir = tempfile::tempdir().unwrap();
    let other = decor_tests::another_build_of_this_program(dir.path());
    let out = output_within(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_asks_a_worker_of_another_build",
                "--nocapture",
            ])
            .env("DECOR_OTHER_BUILD", &other),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAILED")
            && stdout.contains("processes_programs::sum")
            && stdout.contains("another build"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn child_deletes_its_executable_then_needs_workers() {
    if std::env::var_os("DECOR_DELETE_SELF").is_none() {
        return;
    }
    std::fs::remove_file(std::env::current_exe().unwrap()).unwrap();
    println!("SUM {}", sum(&[1, 2, 3, 4]));
}

#[test]
fn workers_start_from_an_executable_deleted_while_the_program_runs() {
    if std::env::var_os("DECOR_DELETE_SELF").is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy-of-the-test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let out = output_within(
        Command::new(&copy)
            .args([
                "--exact",
                "child_deletes_its_executable_then_needs_workers",
                "--nocapture",
            ])
            .env("DECOR_DELETE_SELF", "1"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SUM 10"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!copy.exists());
}

#[test]
fn ctrl_c_and_sigterm_are_the_parents_to_handle_workers_live_on() {
    let _pool = exclusive();
    let before = within(LIMIT, "first call", || {
        // Both workers up: a second call once the first has started them.
        pids(&[1, 2]);
        pids(&[1, 2])
    });
    for &pid in &before {
        // SAFETY: sending a signal to a process we started.
        unsafe {
            libc::kill(pid as i32, libc::SIGINT);
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = within(LIMIT, "call after the signals", || pids(&[1, 2]));
    assert_eq!(after.len(), 2);
    for pid in before {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = stat.split(") ").nth(1).is_some_and(|s| !s.starts_with('Z'));
        assert!(running, "worker {pid} lives on after SIGINT and SIGTERM");
    }
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "concat")]
fn inner_pids(xs: &[u8]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "concat")]
fn outer(xs: &[u8]) -> Vec<(u32, Vec<u32>)> {
    vec![(std::process::id(), inner_pids(xs))]
}

#[test]
fn a_processes_call_inside_a_chunk_runs_in_that_worker() {
    let _pool = exclusive();
    let got = within(LIMIT, "nested call", || outer(&[1, 2, 3, 4]));
    assert_eq!(got.len(), 2);
    for (worker, inner) in got {
        assert_ne!(worker, std::process::id());
        assert_eq!(
            inner,
            [worker, worker],
            "the inner chunks ran in the worker itself"
        );
    }
}

#[test]
fn child_forks_then_calls_again() {
    if std::env::var_os("DECOR_FORK_CHILD").is_none() {
        return;
    }
    assert_eq!(sum(&[1, 2, 3, 4]), 10, "before the fork");
    // SAFETY: the forked process only calls into decor and then `_exit`s, as a daemonizing
    // program's child would go on with its work.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = sum(&[5, 6, 7, 8]) == 26;
        // SAFETY: ends the forked process without running the harness's exit code.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: waits for the process we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    println!("FORKED EXIT {}", libc::WEXITSTATUS(status));
    assert_eq!(sum(&[1, 1]), 2, "the parent's pool still serves");
}

#[test]
fn a_call_after_fork_without_exec_gets_a_pool_of_its_own() {
    if std::env::var_os("DECOR_FORK_CHILD").is_some() {
        return;
    }
    let out = output_within(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_forks_then_calls_again", "--nocapture"])
            .env("DECOR_FORK_CHILD", "1"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("FORKED EXIT 0"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[parallel_chunks(
    chunk_size = 1_000_000,
    workers = 2,
    backend = "processes",
    reduce = "sum"
)]
fn chatty_length(text: &str) -> usize {
    let line = "x".repeat(1_000);
    for _ in 0..1_000 {
        tracing::info!(%line, "a kilobyte");
    }
    text.len()
}

#[test]
fn a_mebibyte_of_events_per_chunk_while_big_chunks_are_sent_does_not_hang() {
    let _pool = exclusive();
    let text = "y".repeat(6_000_000);
    let (len, seen) = within(LIMIT, "1 MiB of events per chunk", move || {
        decor_tests::capture(|| chatty_length(&text))
    });
    assert_eq!(len, 6_000_000);
    let relayed = seen
        .events
        .iter()
        .filter(|e| e.fields.get("message").map(String::as_str) == Some("a kilobyte"))
        .count();
    assert_eq!(relayed, 6 * 1_000, "every event reaches the parent");
}

/// A user's error type holding the `ChunkError` itself: it crosses from the workers too.
#[derive(Debug, Serialize, Deserialize)]
enum JobError {
    Empty,
    Chunk(ChunkError),
}

impl From<ChunkError> for JobError {
    fn from(e: ChunkError) -> Self {
        JobError::Chunk(e)
    }
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
fn checked_sum(xs: &[u64]) -> Result<u64, JobError> {
    if xs.is_empty() {
        return Err(JobError::Empty);
    }
    if xs.contains(&0) {
        std::process::abort();
    }
    Ok(xs.iter().sum())
}

#[test]
fn an_error_type_holding_a_chunk_error_crosses_processes() {
    let _pool = exclusive();
    let (ok, failed) = within(LIMIT, "ChunkError in an error type", || {
        (checked_sum(&[1, 2, 3, 4]), checked_sum(&[1, 2, 0, 4]))
    });
    assert_eq!(ok.unwrap(), 10);
    let Err(JobError::Chunk(e)) = failed else {
        panic!("the aborted chunk is a ChunkError: {failed:?}")
    };
    assert_eq!(e.chunk, 1);
    assert!(
        matches!(e.cause, decor::ChunkFailure::WorkerDied { .. }),
        "{e}"
    );
}

/// The shared-memory regions a process has mapped, by inode.
fn shared_regions_mapped(pid: u32) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("memfd:decor-shm"))
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .collect()
}

#[parallel_chunks(chunks = 2, workers = 1, backend = "processes", reduce = "concat")]
fn sum_and_pid(xs: &[u64]) -> Vec<(u64, u32)> {
    vec![(xs.iter().sum(), std::process::id())]
}

#[test]
fn memory_the_parent_freed_is_not_kept_by_workers_nor_scratch_kept_when_idle() {
    let _pool = exclusive();
    let ours = std::process::id();
    let before = shared_regions_mapped(ours);
    let big = decor::shm::SharedVec::filled(1 << 20, 1u64).unwrap();
    let big_region: Vec<String> = shared_regions_mapped(ours)
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(big_region.len(), 1);
    let first = within(LIMIT, "a call on a SharedVec", move || {
        let r = sum_and_pid(&big);
        drop(big);
        r
    });
    let worker = first[0].1;
    assert_eq!(first.iter().map(|(s, _)| s).sum::<u64>(), 1 << 20);
    assert!(
        shared_regions_mapped(worker).contains(&big_region[0]),
        "the worker mapped it"
    );
    // The SharedVec is gone in the parent: the next call tells the worker, which unmaps it.
    let small = decor::shm::SharedVec::filled(8, 2u64).unwrap();
    let second = within(LIMIT, "a call on another SharedVec", move || {
        sum_and_pid(&small)
    });
    assert_eq!(second[0].1, worker, "the same worker");
    assert!(
        !shared_regions_mapped(worker).contains(&big_region[0]),
        "the worker let the freed region go"
    );
    // A plain Vec is copied into a scratch region, which is freed after two idle seconds.
    let plain = vec![3u64; 1 << 20];
    within(LIMIT, "a call on a plain Vec", move || sum_and_pid(&plain));
    assert!(
        !shared_regions_mapped(ours).is_empty(),
        "scratch in use is kept"
    );
    std::thread::sleep(Duration::from_millis(4_500));
    assert!(
        shared_regions_mapped(ours).is_empty(),
        "idle scratch is freed: {:?}",
        shared_regions_mapped(ours)
    );
}

#[test]
fn child_turns_non_dumpable_then_calls() {
    if std::env::var_os("DECOR_NOT_DUMPABLE").is_none() {
        return;
    }
    // SAFETY: `setgid`/`setuid`/`prctl` with constant arguments. As root, first become an
    // ordinary user (`nobody`): root may read any process's `/proc` entries anyway.
    unsafe {
        if libc::getuid() == 0 {
            assert_eq!(libc::setgid(65534), 0);
            assert_eq!(libc::setuid(65534), 0);
        }
        assert_eq!(libc::prctl(libc::PR_SET_DUMPABLE, 0), 0);
    }
    let shared = decor::shm::SharedVec::filled(1_000, 1u64).unwrap();
    let plain = vec![2u64; 1_000];
    println!("SUMS {} {}", sum(&shared), sum(&plain));
}

#[test]
fn shared_memory_reaches_workers_of_a_non_dumpable_parent() {
    if std::env::var_os("DECOR_NOT_DUMPABLE").is_some() {
        return;
    }
    let out = output_within(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_turns_non_dumpable_then_calls",
                "--nocapture",
            ])
            .env("DECOR_NOT_DUMPABLE", "1"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SUMS 1000 2000"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
fn typed_events(xs: &[u64]) -> u64 {
    tracing::info!(
        distinct = xs[0],
        delta = -3i64,
        ratio = 0.5f64,
        done = true,
        word = "x",
        "typed"
    );
    xs.iter().sum()
}

/// Records how each field of each event was recorded: `u64`, `i64`, `f64`, `bool` or `str`.
#[derive(Default, Clone)]
struct Kinds(std::sync::Arc<Mutex<Vec<(String, &'static str)>>>);

impl tracing::field::Visit for Kinds {
    fn record_u64(&mut self, f: &tracing::field::Field, _: u64) {
        self.0.lock().unwrap().push((f.name().into(), "u64"));
    }
    fn record_i64(&mut self, f: &tracing::field::Field, _: i64) {
        self.0.lock().unwrap().push((f.name().into(), "i64"));
    }
    fn record_f64(&mut self, f: &tracing::field::Field, _: f64) {
        self.0.lock().unwrap().push((f.name().into(), "f64"));
    }
    fn record_bool(&mut self, f: &tracing::field::Field, _: bool) {
        self.0.lock().unwrap().push((f.name().into(), "bool"));
    }
    fn record_str(&mut self, f: &tracing::field::Field, _: &str) {
        self.0.lock().unwrap().push((f.name().into(), "str"));
    }
    fn record_debug(&mut self, f: &tracing::field::Field, _: &dyn std::fmt::Debug) {
        self.0.lock().unwrap().push((f.name().into(), "debug"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Kinds {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        event.record(&mut self.clone());
    }
}

#[test]
fn numbers_and_booleans_from_workers_stay_typed() {
    use tracing_subscriber::layer::SubscriberExt;
    let _pool = exclusive();
    let kinds = Kinds::default();
    let subscriber = tracing_subscriber::registry().with(kinds.clone());
    let sum = tracing::subscriber::with_default(subscriber, || {
        within(LIMIT, "typed events", || 0) + typed_events(&[5, 6])
    });
    assert_eq!(sum, 11);
    let seen = kinds.0.lock().unwrap().clone();
    for (field, kind) in [
        ("distinct", "u64"),
        ("delta", "i64"),
        ("ratio", "f64"),
        ("done", "bool"),
        ("word", "str"),
        ("worker_pid", "u64"),
    ] {
        let n = seen
            .iter()
            .filter(|(f, k)| f == field && *k == kind)
            .count();
        assert_eq!(n, 2, "{field} as {kind}: {seen:?}");
    }
}
