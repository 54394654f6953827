//! Why a chunk produced no result.

use std::fmt;

/// A chunk that produced no result: which function, which chunk, and why.
///
/// A function decorated with `#[parallel_chunks]` whose error type implements
/// `From<ChunkError>` gets it as an `Err`; otherwise the failure is a panic whose message is this
/// error's `Display`. [`Plan::as_completed`](crate::Plan::as_completed) hands it to the caller
/// with the chunk's index.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkFailure {
    /// The chunk's body panicked, with this message.
    Panicked(String),
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
