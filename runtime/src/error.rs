//! Why a chunk produced no result.

use std::fmt;

/// A chunk that produced no result: which function, which chunk, and why.
///
/// A function decorated with `#[parallel_chunks]` whose error type implements
/// `From<ChunkError>` gets it as an `Err`; otherwise the failure is a panic whose message is this
/// error's `Display`. [`Plan::as_completed`](crate::Plan::as_completed) hands it to the caller
/// with the chunk's index.
///
/// It is `serde`, so an error type of yours that holds it can be the error of a function on
/// processes, whose results cross from the workers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkError {
    /// The function, `"module::path::name"` (or the name given to a hand-written plan).
    pub function: String,
    /// The chunk's index, from 0.
    pub chunk: usize,
    /// How many chunks the call had.
    pub chunks: usize,
    /// What happened.
    pub cause: ChunkFailure,
}

/// What happened to a chunk; see [`ChunkError`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ChunkFailure {
    /// The chunk's body panicked, with this message.
    Panicked(String),
    /// The worker process running the chunk died: it aborted, exited or was killed.
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// How it ended: `exited with code 3`, `killed by signal 9 (SIGKILL)`.
        status: String,
    },
    /// The chunk ran longer than the plan's `timeout`; its worker was killed.
    TimedOut {
        /// The worker's process id.
        pid: u32,
        /// The limit.
        limit: std::time::Duration,
    },
    /// The worker does not have the function's code where the parent sent it (another build).
    UnknownFunction,
    /// A worker process could not be started.
    WorkerStart(String),
    /// The chunk's data could not be encoded or decoded.
    BadData(String),
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: chunk {} of {} ",
            self.function, self.chunk, self.chunks
        )?;
        match &self.cause {
            ChunkFailure::Panicked(msg) => write!(f, "panicked: {msg}"),
            ChunkFailure::WorkerDied { pid, status } => {
                write!(f, "failed: its worker process {pid} {status}")
            }
            ChunkFailure::TimedOut { pid, limit } => write!(
                f,
                "timed out after {}; its worker process {pid} was killed",
                crate::fmt::HumanDuration(*limit)
            ),
            ChunkFailure::UnknownFunction => write!(
                f,
                "cannot run: the worker does not have `{}` where this program has it (is it another build of the program?)",
                self.function
            ),
            ChunkFailure::WorkerStart(e) => write!(f, "cannot run: no worker process: {e}"),
            ChunkFailure::BadData(e) => write!(f, "failed: bad data between processes: {e}"),
        }
    }
}

impl std::error::Error for ChunkError {}

/// The message of a panic payload, as the standard panic hook would print it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
