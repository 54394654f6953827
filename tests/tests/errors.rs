//! One error contract on every backend: a failed chunk is `Err(E::from(ChunkError))` when the
//! function returns `Result<_, E>` with `E: From<ChunkError>`, a panic naming the function and
//! the chunk otherwise; and what `timeout` does where a chunk cannot be stopped.

use std::time::Duration;

use decor::{ChunkError, ChunkFailure, parallel_chunks};
use decor_tests::{capture, within};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum SumError {
    Negative,
    Chunk(ChunkError),
}

impl From<ChunkError> for SumError {
    fn from(e: ChunkError) -> Self {
        SumError::Chunk(e)
    }
}

fn checked(xs: &[i64]) -> Result<i64, SumError> {
    if xs.contains(&13) {
        panic!("unlucky {}", xs[0]);
    }
    if xs.iter().any(|&x| x < 0) {
        return Err(SumError::Negative);
    }
    Ok(xs.iter().sum())
}

#[parallel_chunks(chunks = 4, workers = 2, backend = "threads", reduce = "sum")]
fn on_threads(xs: &[i64]) -> Result<i64, SumError> {
    checked(xs)
}

#[parallel_chunks(chunks = 4, backend = "serial", reduce = "sum")]
fn on_serial(xs: &[i64]) -> Result<i64, SumError> {
    checked(xs)
}

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "sum")]
fn on_processes(xs: &[i64]) -> Result<i64, SumError> {
    checked(xs)
}

#[test]
fn a_panicking_chunk_is_the_same_err_on_every_backend() {
    let input = [1, 2, 3, 4, 5, 13, 7, 8];
    let results = within(Duration::from_secs(60), "three backends", move || {
        [on_threads(&input), on_serial(&input), on_processes(&input)]
    });
    for (backend, r) in ["threads", "serial", "processes"].iter().zip(results) {
        let Err(SumError::Chunk(e)) = r else {
            panic!("{backend}: a ChunkError, got {r:?}")
        };
        assert_eq!((e.chunk, e.chunks), (2, 4), "{backend}");
        assert_eq!(
            e.cause,
            ChunkFailure::Panicked("unlucky 5".into()),
            "{backend}"
        );
        assert!(
            e.function.ends_with(&format!("on_{backend}")),
            "{backend}: {e}"
        );
    }
    assert_eq!(on_threads(&[1, 2, 3, 4]).unwrap(), 10);
    assert!(matches!(on_serial(&[1, -2]), Err(SumError::Negative)));
}

#[parallel_chunks(chunks = 2, workers = 2, timeout = "10ms", reduce = "sum")]
fn slow(xs: &[u64]) -> u64 {
    std::thread::sleep(Duration::from_millis(60));
    xs.iter().sum()
}

#[test]
fn a_timeout_on_threads_says_once_it_cannot_stop_a_chunk_and_reports_each_overrun() {
    let (sums, seen) = capture(|| (slow(&[1, 2]), slow(&[3, 4])));
    assert_eq!(sums, (3, 7), "the chunks ran to their end");
    let warnings: Vec<&String> = seen
        .events
        .iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .map(|e| &e.fields["message"])
        .collect();
    let cannot_stop = warnings
        .iter()
        .filter(|m| m.contains("cannot be stopped"))
        .count();
    let overruns = warnings
        .iter()
        .filter(|m| m.contains("over its timeout of 10.0ms"))
        .count();
    assert_eq!((cannot_stop, overruns), (1, 4), "{warnings:#?}");
}
