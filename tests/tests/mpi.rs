//! `#[parallel_chunks(backend = "mpi")]` under a real `mpirun -n 3`: each test starts this test
//! binary as a 3-rank job, whose rank 0 runs one of the `rank0_*` functions below (through the
//! test harness, with `--exact`) while ranks 1 and 2 serve the chunks. Built only with
//! `--features mpi`; without `mpirun` the tests fail, they do not skip.
#![cfg(feature = "mpi")]

use std::process::Command;
use std::time::Duration;

use decor::{ChunkError, parallel_chunks};
use decor_tests::output_within;
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(120);

#[parallel_chunks(chunks = 6, backend = "mpi", reduce = "sum")]
fn sum(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[parallel_chunks(chunks = 4, backend = "mpi", reduce = "concat")]
fn ranks_and_lengths(xs: &[u32]) -> Vec<(u32, usize)> {
    vec![(std::process::id(), xs.len())]
}

#[parallel_chunks(chunks = 3, backend = "mpi", reduce = "concat")]
fn shout(text: &str, suffix: String, times: usize) -> Vec<String> {
    vec![format!(
        "{}{}",
        text.trim().to_uppercase(),
        suffix.repeat(times)
    )]
}

#[parallel_chunks(chunks = 4, backend = "mpi", reduce = "sum")]
fn panics_on_chunk_two(xs: &[u64]) -> u64 {
    if decor::current_chunk().map(|c| c.index) == Some(2) {
        panic!("chunk two refuses");
    }
    xs.iter().sum()
}

#[derive(Debug, Serialize, Deserialize)]
enum Bad {
    Negative(i64),
    Chunk(String),
}

impl From<ChunkError> for Bad {
    fn from(e: ChunkError) -> Self {
        Bad::Chunk(e.to_string())
    }
}

#[parallel_chunks(chunks = 4, backend = "mpi", reduce = "sum")]
fn checked(xs: &[i64]) -> Result<i64, Bad> {
    match xs.iter().find(|&&x| x < 0) {
        Some(&x) => Err(Bad::Negative(x)),
        None => Ok(xs.iter().sum()),
    }
}

#[parallel_chunks(chunks = 2, backend = "mpi", reduce = "sum")]
fn logs(xs: &[u8]) -> usize {
    tracing::info!(
        len = xs.len(),
        host_pid = std::process::id(),
        "chunk seen on a rank"
    );
    xs.len()
}

#[parallel_chunks(chunks = 2, backend = "mpi", reduce = "sum")]
fn aborts(xs: &[u8]) -> usize {
    if decor::current_chunk().map(|c| c.index) == Some(1) {
        std::process::abort();
    }
    xs.len()
}

/// Runs `rank0_<name>` as rank 0 of `mpirun -n 3`: (success, stdout, stderr).
/// The attempt this is of chunk `key` (1 for the first), counted in files under `dir`, which
/// every rank of the job (one host) sees.
fn attempt_in(dir: &str, key: i64) -> u32 {
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

fn negative_is_transient(e: &Bad) -> bool {
    matches!(e, Bad::Negative(_))
}

#[parallel_chunks(chunks = 4, backend = "mpi", retries = 2, backoff = "1ms..5ms", retry_if = negative_is_transient, rate = "40/s", reduce = "concat")]
fn flaky(xs: &[i64], dir: &str) -> Result<Vec<u128>, Bad> {
    // Chunk starting at 2 fails its first two attempts; the others never do.
    if xs[0] == 2 && attempt_in(dir, xs[0]) <= 2 {
        return Err(Bad::Negative(-1));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    Ok(vec![now.unwrap().as_nanos()])
}

fn mpirun(name: &str) -> (bool, String, String) {
    mpirun_with(name, &[])
}

fn mpirun_with(name: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", "3", "--oversubscribe", "--allow-run-as-root"]);
    for (k, v) in env {
        cmd.args(["-x", &format!("{k}={v}")]);
    }
    cmd.arg(std::env::current_exe().unwrap()).args([
        "--exact",
        &format!("rank0_{name}"),
        "--nocapture",
    ]);
    run_job(&mut cmd)
}

/// Runs an `mpirun` command line of this test binary under the time limit.
fn run_job(cmd: &mut Command) -> (bool, String, String) {
    let out = output_within(cmd.env("DECOR_MPI_TEST", "1"), LIMIT);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `rank0_<name>` as rank 0 of a 3-rank job whose rank 2 declines the rings, as a rank on
/// another host would: rank 0 then reads rank 1 through its ring and rank 2 through MPI.
fn mpirun_one_rank_without_rings(name: &str) -> (bool, String, String) {
    let exe = std::env::current_exe().unwrap();
    let test = format!("rank0_{name}");
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "--allow-run-as-root", "-n", "2"])
        .arg(&exe)
        .args(["--exact", &test, "--nocapture", ":", "-n", "1"])
        .args(["env", "DECOR_MPI_RINGS=0"])
        .arg(&exe)
        .args(["--exact", &test, "--nocapture"]);
    run_job(&mut cmd)
}

fn in_job() -> bool {
    std::env::var_os("DECOR_MPI_TEST").is_some()
}

#[test]
fn rank0_results() {
    if !in_job() {
        return;
    }
    let xs: Vec<u64> = (1..=1_000_000).collect();
    println!("SUM {}", sum(&xs));
    let seen = ranks_and_lengths(&[7u32; 10]);
    let pids: std::collections::BTreeSet<u32> = seen.iter().map(|(p, _)| *p).collect();
    println!(
        "LENGTHS {:?} RANK0 {} OTHERS {}",
        seen.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        pids.contains(&std::process::id()),
        pids.len()
    );
    println!("SHOUT {:?}", shout("ab cd ef", "!".to_owned(), 2));
}

#[test]
fn sum_concat_str_and_extra_arguments_come_back_in_chunk_order_from_the_ranks() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("results");
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("SUM 500000500000"), "{stdout}");
    assert!(
        stdout.contains("LENGTHS [3, 3, 2, 2] RANK0 false OTHERS 2"),
        "chunks ran on the two other ranks: {stdout}"
    );
    assert!(
        stdout.contains(r#"SHOUT ["AB!!", "CD!!", "EF!!"]"#),
        "{stdout}"
    );
    assert!(
        !stderr.contains("finalize"),
        "every rank finalized: {stderr}"
    );
}

#[test]
fn rank0_failures() {
    if !in_job() {
        return;
    }
    let xs = vec![1u64; 100];
    match std::panic::catch_unwind(|| panics_on_chunk_two(&xs)) {
        Ok(v) => println!("NO PANIC {v}"),
        Err(p) => println!(
            "PANIC {}",
            p.downcast_ref::<String>().cloned().unwrap_or_default()
        ),
    }
    println!("AFTER {}", panics_on_chunk_two(&[]));
    println!("OK {:?}", checked(&[1, 2, 3, 4, 5, 6, 7, 8]));
    println!("ERR {:?}", checked(&[1, 2, 3, 4, 5, -6, 7, -8]));
}

#[test]
fn a_panic_names_function_chunk_and_rank_and_result_errors_come_back() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("failures");
    assert!(ok, "{stdout}\n{stderr}");
    let panic = stdout
        .lines()
        .find(|l| l.starts_with("PANIC "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        panic.contains("panics_on_chunk_two")
            && panic.contains("chunk 2")
            && panic.contains("chunk two refuses")
            && panic.contains("on rank "),
        "{panic}"
    );
    assert!(stdout.contains("AFTER 0"), "the ranks serve on: {stdout}");
    assert!(stdout.contains("OK Ok(36)"), "{stdout}");
    assert!(stdout.contains("ERR Err(Negative(-6))"), "{stdout}");
}

#[test]
fn rank0_events() {
    if !in_job() {
        return;
    }
    let (n, seen) = decor_tests::capture(|| logs(&[0u8; 10]));
    println!("N {n}");
    for e in seen.events_with("chunk seen on a rank") {
        println!(
            "EVENT len={} pid={} scope={:?}",
            e.fields["len"], e.fields["worker_pid"], e.scope
        );
    }
    for s in seen.spans.iter().filter(|s| s.name == "chunk") {
        println!(
            "SPAN backend={} rank={} host={}",
            s.fields["backend"],
            s.fields.get("rank").cloned().unwrap_or_default(),
            s.fields.get("host").cloned().unwrap_or_default()
        );
    }
}

#[test]
fn events_of_bodies_on_ranks_reach_rank_0s_subscriber_inside_chunk_spans() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("events");
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("N 10"), "{stdout}");
    let events: Vec<&str> = stdout.lines().filter(|l| l.starts_with("EVENT")).collect();
    assert_eq!(events.len(), 2, "{stdout}");
    assert!(
        events
            .iter()
            .all(|e| e.contains("len=5") && e.contains("chunk")),
        "{stdout}"
    );
    let spans: Vec<&str> = stdout.lines().filter(|l| l.starts_with("SPAN")).collect();
    assert_eq!(spans.len(), 2, "{stdout}");
    assert!(
        spans
            .iter()
            .all(|s| s.contains("backend=mpi") && !s.contains("rank= ") && !s.ends_with("host=")),
        "{stdout}"
    );
}

#[test]
fn rank0_abort() {
    if !in_job() {
        return;
    }
    println!("RESULT {}", aborts(&[1u8; 10]));
}

#[test]
fn a_rank_that_dies_ends_the_job_with_a_message_naming_the_chunk_not_a_hang() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("abort");
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(!stdout.contains("RESULT"), "{stdout}");
    assert!(
        stderr.contains("decor: rank")
            && stderr.contains("chunk 1 of 2")
            && stderr.contains("aborts"),
        "{stderr}"
    );
}

#[test]
fn rank0_panics_in_main() {
    if !in_job() {
        return;
    }
    assert_eq!(sum(&[1, 2, 3]), 6);
    panic!("rank 0 gives up");
}

#[test]
fn ranks_leave_cleanly_when_rank_0_fails() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("panics_in_main");
    assert!(!ok, "the test failed on rank 0: {stdout}");
    assert!(
        !stderr.contains("did not call") && !stderr.contains("finalize"),
        "ranks finalized: {stderr}"
    );
    assert!(
        (stdout + &stderr).contains("rank 0 gives up"),
        "the panic is rank 0's own"
    );
}

#[test]
fn without_mpirun_the_chunks_run_on_processes_with_one_warning() {
    if in_job() {
        return;
    }
    let (total, first) = decor_tests::capture(|| sum(&[1, 2, 3, 4]));
    assert_eq!(total, 10);
    let (total, second) = decor_tests::capture(|| sum(&[5, 6]));
    assert_eq!(total, 11);
    let warns =
        first.events_with("runs on processes, not mpi: this program was not started by mpirun");
    assert_eq!(warns.len(), 1, "{first:#?}");
    assert!(
        second.events_with("not mpi").is_empty(),
        "one WARN, not one per call"
    );
    assert_eq!(
        second.span("parallel_chunks").fields["backend"],
        "processes"
    );
}

#[test]
fn rank0_killed() {
    if !in_job() {
        return;
    }
    assert_eq!(sum(&[1, 2, 3]), 6);
    println!("KILLING");
    // SAFETY: rank 0 kills itself, as an OOM killer or a user would.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

#[test]
fn when_rank_0_is_killed_the_job_ends_instead_of_hanging() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("killed");
    assert!(!ok && stdout.contains("KILLING"), "{stdout}\n{stderr}");
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
fn on_processes(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[test]
fn rank0_everything_on_mpi() {
    if !in_job() {
        return;
    }
    let (total, seen) = decor_tests::capture(|| on_processes(&[1, 2, 3, 4]));
    println!(
        "TOTAL {total} BACKEND {}",
        seen.span("parallel_chunks").fields["backend"]
    );
}

#[test]
fn decor_backend_mpi_moves_every_processes_function_to_the_ranks() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun_with("everything_on_mpi", &[("DECOR_BACKEND", "mpi")]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("TOTAL 10 BACKEND mpi"), "{stdout}");
}

struct Table<T>(std::marker::PhantomData<T>);

impl<T> Table<T>
where
    T: Serialize + serde::de::DeserializeOwned + Copy + Into<f64> + Send + Sync,
{
    #[parallel_chunks(chunks = 4, backend = "mpi", reduce = "concat")]
    fn weighted(xs: &[T], weights: &[f32], label: &str) -> Vec<(String, f64, u32)> {
        let total: f64 = xs
            .iter()
            .zip(weights.iter().cycle())
            .map(|(&x, &w)| x.into() * f64::from(w))
            .sum();
        vec![(label.to_owned(), total, std::process::id())]
    }
}

#[parallel_chunks(chunks = 3, backend = "mpi", reduce = "sum")]
fn count<T: Serialize + serde::de::DeserializeOwned + PartialEq + Clone + Send + Sync>(
    xs: &[T],
    needle: &T,
) -> usize {
    xs.iter().filter(|x| *x == needle).count()
}

// Written for threads: `DECOR_BACKEND=mpi` moves it to the ranks.
#[parallel_chunks(chunks = 2, reduce = "concat")]
fn pids<T: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync>(xs: &[T]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

#[test]
fn rank0_generic() {
    if !in_job() {
        return;
    }
    let me = std::process::id();
    let seen = Table::<u32>::weighted(&[1, 2, 3, 4, 5, 6, 7, 8], &[0.5, 2.0], "w");
    println!(
        "WEIGHTED {} ELSEWHERE {}",
        seen.iter().map(|(_, t, _)| t).sum::<f64>(),
        seen.iter().all(|(l, _, p)| l == "w" && *p != me)
    );
    let words: Vec<String> = "a b a c a".split(' ').map(str::to_owned).collect();
    println!(
        "COUNT {} {}",
        count(&words, &"a".to_owned()),
        count(&[1u8, 1, 2], &1)
    );
    let plan = decor::Plan::new().chunks(4).backend(decor::Backend::Mpi);
    let by_hand = plan.map_remote(&[1u64, 2, 3, 4, 5, 6, 7, 8][..], |c: &[u64]| {
        (c.iter().sum::<u64>(), std::process::id())
    });
    println!(
        "BY_HAND {} ELSEWHERE {}",
        by_hand.iter().map(|(s, _)| s).sum::<u64>(),
        by_hand.iter().all(|(_, p)| *p != me)
    );
    let moved = pids(&[1u8, 2]);
    println!("MOVED {}", moved.iter().all(|p| *p != me));
}

#[test]
fn generic_and_associated_functions_and_map_remote_run_on_the_ranks() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun_with("generic", &[("DECOR_BACKEND", "mpi")]);
    assert!(ok, "{stdout}\n{stderr}");
    // Chunks of two: (1·0.5 + 2·2) + (3·0.5 + 4·2) + ... = 4.5 + 9.5 + 14.5 + 19.5.
    assert!(stdout.contains("WEIGHTED 48 ELSEWHERE true"), "{stdout}");
    assert!(stdout.contains("COUNT 3 2"), "{stdout}");
    assert!(stdout.contains("BY_HAND 36 ELSEWHERE true"), "{stdout}");
    assert!(stdout.contains("MOVED true"), "{stdout}");
}

#[test]
fn ranks_of_another_build_end_the_job_with_an_error_naming_them() {
    if in_job() {
        return;
    }
    // This program with another build id, as ranks 1 and 2: as if one host had an older copy.
    let dir = tempfile::tempdir().unwrap();
    let other = decor_tests::another_build_of_this_program(dir.path());
    let this = std::env::current_exe().unwrap();
    let test = ["--exact", "rank0_results", "--nocapture"];
    let (ok, stdout, stderr) = run_job(
        Command::new("mpirun")
            .args(["--oversubscribe", "--allow-run-as-root", "-n", "1"])
            .arg(&this)
            .args(test)
            .args([":", "-n", "2"])
            .arg(&other)
            .args(test),
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("rank 1 on")
            && stderr.contains("rank 2 on")
            && stderr.contains("another build"),
        "{stderr}"
    );
    assert!(!stdout.contains("SUM"), "no chunk ran");
}

#[parallel_chunks(chunks = 4, backend = "mpi", cut_at = "line", reduce = "concat")]
fn lines_and_pids(file: &decor::shm::MappedFile) -> Vec<(usize, u32)> {
    vec![(
        file.iter().filter(|&&b| b == b'\n').count(),
        std::process::id(),
    )]
}

#[derive(Debug, Serialize, Deserialize)]
struct Refused(ChunkError);

impl From<ChunkError> for Refused {
    fn from(e: ChunkError) -> Self {
        Refused(e)
    }
}

#[parallel_chunks(chunks = 2, backend = "mpi", reduce = "sum")]
fn checked_lines(file: &decor::shm::MappedFile) -> Result<usize, Refused> {
    Ok(file.iter().filter(|&&b| b == b'\n').count())
}

#[test]
fn rank0_mapped_file() {
    if !in_job() {
        return;
    }
    let path = std::env::var("DECOR_TEST_FILE").unwrap();
    let file = decor::shm::MappedFile::open(&path).unwrap();
    let before = decor::shm::copied_bytes();
    let seen = lines_and_pids(&file);
    println!(
        "LINES {} ELSEWHERE {} COPIED {}",
        seen.iter().map(|(n, _)| n).sum::<usize>(),
        seen.iter().all(|(_, p)| *p != std::process::id()),
        decor::shm::copied_bytes() - before
    );
    // The file changes on disk after rank 0 opened it: the ranks must refuse it.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    match checked_lines(&file) {
        Ok(n) => println!("REFUSED none, counted {n}"),
        Err(Refused(e)) => println!("REFUSED {e}"),
    }
}

#[test]
fn ranks_map_their_own_range_of_a_file_and_refuse_another_file() {
    if in_job() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines.txt");
    let text: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, stderr) = mpirun_with(
        "mapped_file",
        &[("DECOR_TEST_FILE", path.to_str().unwrap())],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("LINES 10000 ELSEWHERE true COPIED 0"),
        "nothing sent, every line counted on the ranks: {stdout}"
    );
    let refused = stdout
        .lines()
        .find(|l| l.starts_with("REFUSED"))
        .unwrap_or_default();
    assert!(
        refused.contains("on ")
            && refused.contains(path.to_str().unwrap())
            && refused.contains("is not the file rank 0 opened")
            && (refused.contains("rank 1") || refused.contains("rank 2")),
        "{stdout}"
    );
}

/// See [`decor_tests::floods`]: the same call on processes is in `processes.rs`.
#[parallel_chunks(chunks = 4, backend = "mpi", reduce = "concat")]
fn floods(words: &[String], notes: Vec<String>) -> Vec<u64> {
    decor_tests::floods::body(words, &notes)
}

#[test]
fn rank0_floods() {
    if !in_job() {
        return;
    }
    let words = decor_tests::floods::words();
    let (out, seen) = decor_tests::capture(|| floods(&words, decor_tests::floods::notes()));
    println!("FLOODS {:?}", decor_tests::floods::check(&out, &seen));
}

/// What `rank0_floods` printed is every answer whole and every chunk's events in order.
fn assert_floods_whole(stdout: &str) {
    assert!(stdout.contains("FLOODS Ok(())"), "{stdout}");
}

#[test]
fn what_overflows_the_rings_both_ways_crosses_whole_and_in_order() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("floods");
    assert!(ok, "{stdout}\n{stderr}");
    assert_floods_whole(&stdout);
}

#[test]
fn with_rings_off_every_message_crosses_by_mpi_as_to_another_host() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun_with("floods", &[("DECOR_MPI_RINGS", "0")]);
    assert!(ok, "{stdout}\n{stderr}");
    assert_floods_whole(&stdout);
    let (ok, stdout, stderr) = mpirun_with("results", &[("DECOR_MPI_RINGS", "0")]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("SUM 500000500000"), "{stdout}");
    assert!(
        stdout.contains(r#"SHOUT ["AB!!", "CD!!", "EF!!"]"#),
        "{stdout}"
    );
}

#[test]
fn with_one_rank_on_rings_and_one_on_mpi_nothing_is_lost_or_reordered() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun_one_rank_without_rings("floods");
    assert!(ok, "{stdout}\n{stderr}");
    assert_floods_whole(&stdout);
    let (ok, stdout, stderr) = mpirun_one_rank_without_rings("results");
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("SUM 500000500000"), "{stdout}");
    assert!(
        stdout.contains("LENGTHS [3, 3, 2, 2] RANK0 false OTHERS 2"),
        "chunks ran on both ranks: {stdout}"
    );
}

#[test]
fn rank0_retries() {
    if !in_job() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let mut starts = flaky(&[0, 1, 2, 3], path).expect("every chunk done after retries");
    starts.sort();
    let closest = starts.windows(2).map(|p| p[1] - p[0]).min().unwrap_or(0);
    let retried: u64 = decor::stats::retries().iter().map(|r| r.retries).sum();
    println!(
        "DONE {} RETRIED {retried} CLOSEST_MS {}",
        starts.len(),
        closest / 1_000_000
    );
}

#[test]
fn on_mpi_an_err_retry_if_accepts_runs_again_and_starts_keep_to_the_rate() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("retries");
    assert!(ok, "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("DONE "))
        .unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(&words[..4], ["DONE", "4", "RETRIED", "2"], "{line}");
    // 40 a second: 25 ms apart as sent; a rank may start one a little late.
    let closest: u64 = words[5].parse().unwrap();
    assert!(closest >= 18, "{line}");
}

/// Doubles each element; its event names the thread of rank 0 that made the call.
#[parallel_chunks(chunks = 4, backend = "mpi", reduce = "concat")]
fn doubled_for(xs: &[u64], caller: u64) -> Vec<u64> {
    tracing::info!(caller, "doubling");
    xs.iter().map(|x| x * 2).collect()
}

#[parallel_chunks(chunks = 4, backend = "mpi", reduce = "sum")]
fn panics_on_its_second_chunk(xs: &[u64]) -> u64 {
    assert!(xs[0] != 2, "the second chunk panics");
    xs.iter().sum()
}

/// One chunk, so that the call holds one rank: it runs over its timeout on it.
#[parallel_chunks(chunks = 1, backend = "mpi", timeout = "50ms", reduce = "sum")]
fn overruns(xs: &[u64]) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    xs.len() as u64
}

std::thread_local! {
    static CALLER: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
}

/// Counts the relayed `doubling` events, and those re-emitted on a thread other than the one
/// whose call they belong to (mixed between calls).
struct EventsOfCalls {
    seen: std::sync::atomic::AtomicU64,
    mixed: std::sync::atomic::AtomicU64,
    overrun_warnings: std::sync::atomic::AtomicU64,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for &'static EventsOfCalls {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        use std::sync::atomic::Ordering::Relaxed;
        struct Fields(Option<u64>, String);
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
                if f.name() == "caller" {
                    self.0 = Some(v);
                }
            }
            fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
                self.record_u64(f, v as u64);
            }
            fn record_debug(&mut self, _: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.1.push_str(&format!("{v:?} "));
            }
        }
        let mut fields = Fields(None, String::new());
        event.record(&mut fields);
        if let Some(caller) = fields.0 {
            self.seen.fetch_add(1, Relaxed);
            if caller != CALLER.with(|c| c.get()) {
                self.mixed.fetch_add(1, Relaxed);
            }
        }
        if *event.metadata().level() == tracing::Level::WARN && fields.1.contains("overruns") {
            self.overrun_warnings.fetch_add(1, Relaxed);
        }
    }
}

#[test]
fn rank0_side_by_side() {
    use std::sync::atomic::Ordering::Relaxed;
    use tracing_subscriber::layer::SubscriberExt;
    if !in_job() {
        return;
    }
    static EVENTS: EventsOfCalls = EventsOfCalls {
        seen: std::sync::atomic::AtomicU64::new(0),
        mixed: std::sync::atomic::AtomicU64::new(0),
        overrun_warnings: std::sync::atomic::AtomicU64::new(0),
    };
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(&EVENTS)).unwrap();
    let overrunning = std::sync::atomic::AtomicBool::new(false);
    let beside = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (overrunning, beside) = (&overrunning, &beside);
            s.spawn(move || {
                CALLER.with(|c| c.set(t));
                if t == 2 {
                    let p = std::panic::catch_unwind(|| panics_on_its_second_chunk(&[1, 2, 3, 4]));
                    let p = p.expect_err("the call panics");
                    let m = p.downcast_ref::<String>().cloned().unwrap_or_default();
                    println!("PANIC {}", m.replace('\n', " "));
                }
                if t == 3 {
                    overrunning.store(true, Relaxed);
                    println!("OVERRAN {}", overruns(&[1, 2, 3]));
                    overrunning.store(false, Relaxed);
                }
                for round in 0..40 {
                    let xs: Vec<u64> = (0..64).map(|i| t * 1_000_000 + round * 1000 + i).collect();
                    let want: Vec<u64> = xs.iter().map(|x| x * 2).collect();
                    assert_eq!(doubled_for(&xs, t), want, "thread {t}, round {round}");
                    if overrunning.load(Relaxed) {
                        beside.fetch_add(1, Relaxed);
                    }
                }
                println!("THREAD {t} OK");
            });
        }
    });
    println!(
        "EVENTS {} MIXED {} OVERRUN_WARNINGS {} CALLS_BESIDE_THE_LONG_ONE {}",
        EVENTS.seen.load(Relaxed),
        EVENTS.mixed.load(Relaxed),
        EVENTS.overrun_warnings.load(Relaxed),
        beside.load(Relaxed) > 0
    );
}

#[test]
fn calls_from_four_threads_run_side_by_side_on_the_ranks_and_nothing_mixes() {
    if in_job() {
        return;
    }
    let (ok, stdout, stderr) = mpirun("side_by_side");
    assert!(ok, "{stdout}\n{stderr}");
    for t in 0..4 {
        assert!(
            stdout.contains(&format!("THREAD {t} OK")),
            "{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("PANIC ") && stdout.contains("the second chunk panics"),
        "{stdout}"
    );
    assert!(stdout.contains("OVERRAN 3"), "{stdout}");
    // 4 threads × 40 calls × 4 chunks, each event on the thread of its own call; while the
    // overrunning call held one rank, other calls ran on the other.
    assert!(
        stdout.contains("EVENTS 640 MIXED 0 OVERRUN_WARNINGS 1 CALLS_BESIDE_THE_LONG_ONE true"),
        "{stdout}\n{stderr}"
    );
}
