//! The processes backend: chunks run in a pool of worker processes of this same executable.
//!
//! **How a worker starts, with no code in `main`.** `#[parallel_chunks(backend = "processes")]`
//! registers the function under its path (`module::function`) from a constructor that runs before
//! `main` (an ELF `.init_array` entry in the user's own crate, so it is always linked), and puts a
//! second constructor after all registrations that calls [`worker_main`]. The pool starts
//! workers as `current_exe()` with one end of a socket pair on descriptor 3 and a random token in
//! `DECOR_WORKER_CHANNEL_<version>`. In a worker, that second constructor finds the variable, reads the
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
//! **Modules.** [`registry`]: the functions a worker can run; [`protocol`]: the messages and their
//! frames; [`shm`]: shared memory; [`heap`]: the shared heap allocator; [`pool`]: the slots that
//! schedule chunks onto workers; [`child`]: one worker process's life, seen from the parent;
//! [`worker`]: the worker's own loop; [`events`]: tracing events forwarded by a worker and
//! re-emitted by the parent.
//!
//! Linux only: the constructors are ELF sections and shared memory is `memfd`.

pub(crate) mod child;
pub(crate) mod events;
pub(crate) mod heap;
pub(crate) mod pool;
pub(crate) mod protocol;
pub(crate) mod registry;
pub(crate) mod shm;
pub(crate) mod worker;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::{Call, Outcome};
use crate::chunks::Chunkable;
use crate::error::ChunkFailure;
use pool::Job;
use protocol::ChunkData;
use registry::Entry;

/// The chunks of one call, ready to send, and what must live until the call ends; borrows the
/// input for as long, since chunks may still be copied from it while the call runs.
pub struct OutgoingChunks<'a> {
    pub(crate) data: Vec<ChunkData>,
    pub(crate) lengths: Vec<usize>,
    copy: Option<shm::PendingCopy>,
    _scratch: Option<shm::Scratch>,
    /// For MPI: the input's bytes and each chunk's byte length, sent as they are.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) raw: Option<(&'a [u8], Vec<usize>)>,
    _input: PhantomData<&'a [u8]>,
}

/// Cuts a slice of plain data and places it in shared memory.
pub fn prepare_pod<'a, T: bytemuck::Pod>(
    call: &Call,
    xs: &'a [T],
) -> Result<OutgoingChunks<'a>, String> {
    let lengths = call.lengths(xs.len());
    let byte_lengths: Vec<usize> = lengths.iter().map(|n| n * size_of::<T>()).collect();
    if call.backend == crate::Backend::Mpi {
        return Ok(OutgoingChunks {
            data: byte_lengths
                .iter()
                .map(|&len| ChunkData::Raw { len: len as u64 })
                .collect(),
            lengths,
            copy: None,
            _scratch: None,
            raw: Some((bytemuck::cast_slice(xs), byte_lengths)),
            _input: PhantomData,
        });
    }
    let (data, scratch, copy) = shm::share(bytemuck::cast_slice(xs), &byte_lengths)
        .map_err(|e| format!("shared memory: {e}"))?;
    Ok(OutgoingChunks {
        data,
        lengths,
        copy,
        _scratch: Some(scratch),
        raw: None,
        _input: PhantomData,
    })
}

/// Cuts any other input and encodes each chunk with serde.
pub fn prepare_serde<'a, I>(call: &Call, input: I) -> Result<OutgoingChunks<'a>, String>
where
    I: Chunkable,
    I::Chunk: Serialize,
{
    let (chunks, lengths) = call.cut_input(input);
    let data = chunks
        .iter()
        .map(|c| registry::encode(c).map(ChunkData::Inline))
        .collect::<Result<_, _>>()?;
    Ok(OutgoingChunks {
        data,
        lengths,
        copy: None,
        _scratch: None,
        raw: None,
        _input: PhantomData,
    })
}

/// Runs a prepared call of `entry` on the pool; every chunk's outcome in chunk order.
///
/// After a chunk fails, chunks not started yet are not started.
pub fn run<R: DeserializeOwned>(
    call: &Call,
    entry: &'static Entry,
    args: Result<Vec<u8>, String>,
    chunks: Result<OutgoingChunks<'_>, String>,
) -> Vec<Outcome<R>> {
    let (args, chunks) = match ready(entry, args, chunks) {
        Ok(ready) => ready,
        Err(failed) => return vec![Outcome::Failed(failed)],
    };
    let n = chunks.data.len();
    let opened = call.open(chunks.lengths);
    let _entered = opened.span.enter();
    let (tx, rx) = mpsc::channel();
    let job = Arc::new(Job {
        function: entry.lookup_key(),
        tag: opened.tag(),
        queue: Mutex::new(chunks.data.into_iter().enumerate().collect::<VecDeque<_>>()),
        lengths: opened.lengths.clone(),
        copy: chunks.copy,
        args,
        live: shm::live_ids(),
        timeout: call.timeout,
        retries: call.retries,
        workers: opened.workers,
        stop: AtomicBool::new(false),
        results: tx,
    });
    pool::submit(&job, opened.workers, &opened.span);
    // Only the slots hold the job now: if one ever stopped without answering, the channel closes
    // instead of this call waiting forever.
    drop(job);
    let mut out: Vec<Option<Outcome<Vec<u8>>>> = (0..n).map(|_| None).collect();
    for (i, r) in rx.iter().take(n) {
        out[i] = Some(r);
    }
    decode_results(out, || {
        Outcome::Failed(ChunkFailure::BadData(
            "no result: the pool thread serving it stopped".into(),
        ))
    })
}

/// The call's arguments and chunks, if both could be prepared and `entry` names one function;
/// else the failure that ends the call.
pub(crate) fn ready<'a>(
    entry: &'static Entry,
    args: Result<Vec<u8>, String>,
    chunks: Result<OutgoingChunks<'a>, String>,
) -> Result<(Vec<u8>, OutgoingChunks<'a>), ChunkFailure> {
    let (args, chunks) = match (args, chunks) {
        (Ok(a), Ok(c)) => (a, c),
        (Err(e), _) | (_, Err(e)) => return Err(ChunkFailure::BadData(e)),
    };
    if let Err(registry::LookupError::Ambiguous(key)) = registry::lookup(entry.lookup_key()) {
        return Err(ChunkFailure::BadData(format!(
            "two #[parallel_chunks] functions are registered as {key}; rename one"
        )));
    }
    Ok((args, chunks))
}

/// Each chunk's encoded result decoded as `R`; `missing` stands for a chunk with no outcome.
pub(crate) fn decode_results<R: DeserializeOwned>(
    out: Vec<Option<Outcome<Vec<u8>>>>,
    missing: impl Fn() -> Outcome<R>,
) -> Vec<Outcome<R>> {
    out.into_iter()
        .map(|r| match r {
            Some(Outcome::Done(bytes)) => match postcard::from_bytes::<R>(&bytes) {
                Ok(v) => Outcome::Done(v),
                Err(e) => Outcome::Failed(ChunkFailure::BadData(format!("result: {e}"))),
            },
            Some(Outcome::Failed(f)) => Outcome::Failed(f),
            Some(Outcome::Skipped) => Outcome::Skipped,
            None => missing(),
        })
        .collect()
}
