//! The processes backend: chunks run in a pool of worker processes of this same executable.
//!
//! **How a worker starts, with no code in `main`.** `#[parallel_chunks(backend = "processes")]`
//! registers the function under its path (`module::function`) from a constructor that runs before
//! `main` (an ELF `.init_array` entry in the user's own crate, so it is always linked), and puts a
//! second constructor after all registrations that calls [`worker_main`]. The pool starts
//! workers as `current_exe()` with one end of a socket pair on descriptor 3 and a random token in
//! `DECOR_WORKER_CHANNEL`. In a worker, that second constructor finds the variable, reads the
//! `Hello` the parent sends on the socket, checks magic, version and token, and serves chunks
//! until the socket closes, never reaching `main`. In every other process it returns at once.
//! This works the same in a binary, an example and a `cargo test` integration test, and the
//! worker always has the parent's code: it is the same file.
//!
//! **What crosses.** The other parameters once per call and the result per chunk are encoded with
//! serde (`postcard`); a cut `&[T]` of plain data (`bytemuck::Pod`) goes through shared memory (see
//! [`shm`](crate::shm)); other cut inputs are encoded per chunk.
//!
//! **Faults.** A panic in a body is caught in the worker, which lives on. A worker that aborts,
//! exits or is killed fails its chunk with [`ChunkFailure::WorkerDied`](crate::ChunkFailure)
//! (exit code or signal); `retries` reruns the chunk on a fresh worker; `timeout` kills a worker
//! whose chunk runs too long. The slot starts a new worker for the next chunk, so the pool heals.
//! Workers die with the parent (`PR_SET_PDEATHSIG`, and end of input on the socket).
//!
//! Linux only: the constructors are ELF sections and shared memory is `memfd`.

pub(crate) mod pool;
pub(crate) mod protocol;
pub(crate) mod registry;
pub(crate) mod relay;
pub(crate) mod shm;
pub(crate) mod worker;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use registry::{ChunkInput, Entry, SliceArg, encode, register};
pub use worker::worker_main;

use crate::chunks::{Chunkable, Cut};
use crate::error::{ChunkError, ChunkFailure};
use crate::plan::Plan;
use pool::{ChunkResult, Job};
use protocol::Split;

/// The chunks of one call, ready to send, and what must live until the call ends; borrows the
/// input for as long, since chunks may still be copied from it while the call runs.
pub struct Prepared<'a> {
    splits: Vec<Split>,
    lengths: Vec<usize>,
    copy: Option<shm::PendingCopy>,
    _scratch: Option<shm::Scratch>,
    _input: PhantomData<&'a [u8]>,
}

impl Prepared<'_> {
    fn inline<I: Chunkable>(
        input: I,
        cut: Cut,
        enc: impl Fn(&I::Chunk) -> Result<Vec<u8>, String>,
    ) -> Result<Self, String> {
        let lengths = cut.lengths(input.elements());
        let splits = input
            .cut_lengths(&lengths)
            .iter()
            .map(|c| enc(c).map(Split::Inline))
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            splits,
            lengths,
            copy: None,
            _scratch: None,
            _input: PhantomData,
        })
    }
}

/// Cuts a slice of plain data and places it in shared memory.
pub fn prepare_pod<'a, T: bytemuck::Pod>(plan: &Plan, xs: &'a [T]) -> Result<Prepared<'a>, String> {
    let cut = plan.cut_for_call();
    let lengths = cut.lengths(xs.len());
    let byte_lengths: Vec<usize> = lengths.iter().map(|n| n * size_of::<T>()).collect();
    let (splits, scratch, copy) = shm::share(bytemuck::cast_slice(xs), &byte_lengths)
        .map_err(|e| format!("shared memory: {e}"))?;
    Ok(Prepared {
        splits,
        lengths,
        copy,
        _scratch: Some(scratch),
        _input: PhantomData,
    })
}

/// Cuts any other input and encodes each chunk with serde.
pub fn prepare_serde<'a, I>(plan: &Plan, input: I) -> Result<Prepared<'a>, String>
where
    I: Chunkable,
    I::Chunk: Serialize,
{
    Prepared::inline(input, plan.cut_for_call(), encode)
}

/// Runs a prepared call on the pool and returns every chunk's outcome in chunk order.
///
/// After a chunk fails, chunks not started yet are not started ([`ChunkFailure`] of those is the
/// first failure's, repeated, so that reading in chunk order finds the real one first).
pub fn run<R: DeserializeOwned>(
    plan: &Plan,
    entry: &'static Entry,
    args: Result<Vec<u8>, String>,
    prepared: Result<Prepared<'_>, String>,
) -> Vec<Result<R, ChunkError>> {
    let function = plan.function();
    let error = |chunk: usize, chunks: usize, cause: ChunkFailure| ChunkError {
        function: function.to_owned(),
        chunk,
        chunks,
        cause,
    };
    let (args, prepared) = match (args, prepared) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => return vec![Err(error(0, 1, ChunkFailure::BadData(e)))],
    };
    let n = prepared.splits.len();
    let workers = plan.effective_workers().min(n);
    let span = tracing::info_span!(
        "parallel_chunks",
        function,
        backend = "processes",
        chunks = n,
        workers
    );
    let _entered = span.enter();
    let (tx, rx) = mpsc::channel();
    let job = Arc::new(Job {
        function: entry.name(),
        queue: Mutex::new(
            prepared
                .splits
                .into_iter()
                .enumerate()
                .collect::<VecDeque<_>>(),
        ),
        lengths: prepared.lengths,
        copy: prepared.copy,
        args,
        timeout: plan.timeout_limit(),
        retries: plan.retry_count(),
        workers,
        stop: AtomicBool::new(false),
        results: tx,
    });
    pool::submit(&job, workers, &span);
    // Only the slots hold the job now: if one ever stopped without answering, the channel closes
    // instead of this call waiting forever.
    drop(job);
    let mut out: Vec<Option<ChunkResult>> = (0..n).map(|_| None).collect();
    for (i, r) in rx.iter().take(n) {
        out[i] = Some(r);
    }
    let mut first_failure: Option<ChunkFailure> = None;
    out.into_iter()
        .enumerate()
        .map(|(i, r)| match r.unwrap_or(ChunkResult::Lost) {
            ChunkResult::Done(bytes) => postcard::from_bytes::<R>(&bytes)
                .map_err(|e| error(i, n, ChunkFailure::BadData(format!("result: {e}")))),
            ChunkResult::Failed(f) => {
                first_failure.get_or_insert_with(|| f.clone());
                Err(error(i, n, f))
            }
            ChunkResult::Lost => Err(error(
                i,
                n,
                ChunkFailure::BadData("no result: the pool thread serving it stopped".into()),
            )),
            ChunkResult::Skipped => Err(error(
                i,
                n,
                first_failure
                    .clone()
                    .unwrap_or(ChunkFailure::BadData("skipped".into())),
            )),
        })
        .collect()
}

/// The results in chunk order, or a panic with the first failure's message.
pub fn settle<R>(results: Vec<Result<R, ChunkError>>) -> Vec<R> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// For a `Result` return: the `Ok` values in chunk order, or the first `Err` in chunk order, a
/// failed chunk being converted with `convert` (`From<ChunkError>`) or, if it cannot be, a panic.
pub fn settle_result<T, E>(
    results: Vec<Result<Result<T, E>, ChunkError>>,
    convert: fn(ChunkError) -> Option<Result<T, E>>,
) -> Result<Vec<T>, E> {
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => return Err(e),
            Err(chunk_error) => {
                let msg = chunk_error.to_string();
                match convert(chunk_error) {
                    Some(Err(e)) => return Err(e),
                    _ => panic!("{msg}"),
                }
            }
        }
    }
    Ok(out)
}

/// Picks, at the expansion site, how a failed chunk becomes the function's error, for a return
/// type `R = Result<T, E>`: `(&&ErrorOf::<R>::new()).__decor_from_chunk_error()`.
pub struct ErrorOf<E>(PhantomData<E>);

impl<E> ErrorOf<E> {
    /// The marker.
    pub const fn new() -> Self {
        ErrorOf(PhantomData)
    }
}

impl<E> Default for ErrorOf<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// `E: From<ChunkError>`: a failed chunk is returned as `Err`.
pub trait ConvertChunkError<R> {
    /// The conversion.
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<R>;
}

impl<T, E: From<ChunkError>> ConvertChunkError<Result<T, E>> for &ErrorOf<Result<T, E>> {
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<Result<T, E>> {
        |e| Some(Err(E::from(e)))
    }
}

/// Otherwise a failed chunk is a panic.
pub trait PanicOnChunkError<R> {
    /// No conversion.
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<R>;
}

impl<R> PanicOnChunkError<R> for ErrorOf<R> {
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<R> {
        |_| None
    }
}

/// Picks, at the expansion site, how a cut `&[T]` crosses: through shared memory for plain data
/// (`bytemuck::Pod`), else encoded: `(&&SliceOf::<T>::new()).__decor_prepare(plan, xs)`.
pub struct SliceOf<T>(PhantomData<T>);

impl<T> SliceOf<T> {
    /// The marker.
    pub const fn new() -> Self {
        SliceOf(PhantomData)
    }
}

impl<T> Default for SliceOf<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Plain data: shared memory.
pub trait SliceViaSharedMemory<T> {
    /// The parent's side.
    fn __decor_prepare<'a>(&self, plan: &Plan, xs: &'a [T]) -> Result<Prepared<'a>, String>;
    /// The worker's side.
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String>;
}

impl<T: bytemuck::Pod> SliceViaSharedMemory<T> for &SliceOf<T> {
    fn __decor_prepare<'a>(&self, plan: &Plan, xs: &'a [T]) -> Result<Prepared<'a>, String> {
        prepare_pod(plan, xs)
    }
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String> {
        input.split_pod()
    }
}

/// Anything serde can carry: encoded per chunk.
pub trait SliceViaSerde<T> {
    /// The parent's side.
    fn __decor_prepare<'a>(&self, plan: &Plan, xs: &'a [T]) -> Result<Prepared<'a>, String>;
    /// The worker's side.
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String>;
}

impl<T: Serialize + DeserializeOwned + Sync> SliceViaSerde<T> for SliceOf<T> {
    fn __decor_prepare<'a>(&self, plan: &Plan, xs: &'a [T]) -> Result<Prepared<'a>, String> {
        prepare_serde(plan, xs)
    }
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String> {
        input.split::<Vec<T>>().map(SliceArg::Owned)
    }
}

/// A value crossing between processes must be serde-serializable both ways.
#[diagnostic::on_unimplemented(
    message = "on `backend = \"processes\"`, `{Self}` crosses between processes, so it must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "sent to or from a worker process",
    note = "derive `Serialize` and `Deserialize` for it, or use `backend = \"threads\"`, where nothing is serialized"
)]
pub trait Crosses {}
impl<T: Serialize + DeserializeOwned> Crosses for T {}

/// Checks, at the parameter's own tokens, that its owned form can cross.
#[inline(always)]
pub fn crosses<T: Crosses>(_: PhantomData<T>) {}
