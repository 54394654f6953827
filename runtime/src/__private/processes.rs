//! What `#[parallel_chunks]` expands into for processes: the worker entry and its registration,
//! how the cut parameter crosses, and the call itself.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backends::processes;
use crate::call::Call;
use crate::error::ChunkError;

pub use crate::backends::processes::registry::{ChunkInput, Entry, SliceArg, encode, register};
pub use crate::backends::processes::worker::worker_main;
pub use crate::backends::processes::{OutgoingChunks, prepare_pod, prepare_serde};

/// Runs a prepared call of `entry` on the pool: the results in chunk order, or the first failed
/// chunk in chunk order.
pub fn run<R: DeserializeOwned>(
    call: &Call,
    entry: &'static Entry,
    args: Result<Vec<u8>, String>,
    chunks: Result<OutgoingChunks<'_>, String>,
) -> Result<Vec<R>, ChunkError> {
    call.settle(dispatch(call, entry, args, chunks))
}

/// To the ranks of an MPI job or to the process pool, as the call was resolved.
fn dispatch<R: DeserializeOwned>(
    call: &Call,
    entry: &'static Entry,
    args: Result<Vec<u8>, String>,
    chunks: Result<OutgoingChunks<'_>, String>,
) -> Vec<crate::call::Outcome<R>> {
    #[cfg(feature = "mpi")]
    if call.backend() == crate::Backend::Mpi {
        return crate::backends::mpi::run(call, entry, args, chunks);
    }
    processes::run(call, entry, args, chunks)
}

/// Whether a resolved call leaves this process: processes or MPI.
pub fn leaves_process(call: &Call) -> bool {
    call.backend().leaves_process()
}

/// [`run`] for chunks returning `Result`: the `Ok` values, or whichever comes first in chunk
/// order of an `Err` and a failed chunk.
pub fn run_try<T: DeserializeOwned, E: DeserializeOwned>(
    call: &Call,
    entry: &'static Entry,
    args: Result<Vec<u8>, String>,
    chunks: Result<OutgoingChunks<'_>, String>,
) -> Result<Result<Vec<T>, E>, ChunkError> {
    call.settle_try(dispatch(call, entry, args, chunks))
}

/// Picks, at the expansion site, how a cut `&[T]` crosses: through shared memory for plain data
/// (`bytemuck::Pod`), else encoded: `(&&SliceOf::<T>::new()).__decor_prepare(call, xs)`.
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
    fn __decor_prepare<'a>(&self, call: &Call, xs: &'a [T]) -> Result<OutgoingChunks<'a>, String>;
    /// The worker's side.
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String>;
}

impl<T: bytemuck::Pod> SliceViaSharedMemory<T> for &SliceOf<T> {
    fn __decor_prepare<'a>(&self, call: &Call, xs: &'a [T]) -> Result<OutgoingChunks<'a>, String> {
        prepare_pod(call, xs)
    }
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String> {
        input.chunk_pod()
    }
}

/// Anything serde can carry: encoded per chunk.
pub trait SliceViaSerde<T> {
    /// The parent's side.
    fn __decor_prepare<'a>(&self, call: &Call, xs: &'a [T]) -> Result<OutgoingChunks<'a>, String>;
    /// The worker's side.
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String>;
}

impl<T: Serialize + DeserializeOwned + Sync> SliceViaSerde<T> for SliceOf<T> {
    fn __decor_prepare<'a>(&self, call: &Call, xs: &'a [T]) -> Result<OutgoingChunks<'a>, String> {
        prepare_serde(call, xs)
    }
    fn __decor_decode<'a>(&self, input: &ChunkInput<'a>) -> Result<SliceArg<'a, T>, String> {
        input.chunk::<Vec<T>>().map(SliceArg::Owned)
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
