//! Running one chunk where it was sent: find the entry by its offset, run it on the chunk's
//! pieces with panics caught, and say what came of it. The same for a worker process and an MPI
//! rank, so results, errors and panics read the same on both.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::entry;
use super::input::{ChunkInput, Piece};
use super::protocol::{self, Message, Ran};
use crate::error::panic_message;

/// One chunk to run, as a transport received it: the pieces resolved to bytes.
pub(crate) struct Request<'a> {
    pub(crate) function: &'a str,
    pub(crate) entry: u64,
    pub(crate) body: u64,
    pub(crate) args: Result<Vec<Piece<'a>>, String>,
    pub(crate) chunk: Result<Piece<'a>, String>,
    pub(crate) index: u32,
    pub(crate) chunks: u32,
    /// Which attempt this is (0 for the first), and the attempts after the first allowed.
    pub(crate) attempt: u32,
    pub(crate) retries: u32,
}

/// Runs the chunk and gives the reply to send back.
pub(crate) fn answer(req: Request<'_>) -> Message {
    let unknown = || Message::Unknown {
        function: req.function.to_owned(),
    };
    let Some(run) = entry::entry_at(req.entry) else {
        return unknown();
    };
    let body = match req.body {
        0 => 0,
        offset => match entry::body_at(offset) {
            Some(addr) => addr,
            None => return unknown(),
        },
    };
    let (args, chunk) = match (req.args, req.chunk) {
        (Ok(a), Ok(c)) => (a, c),
        (Err(message), _) | (_, Err(message)) => return Message::BadInput { message },
    };
    let input = ChunkInput {
        args,
        chunk,
        body,
        retry: Default::default(),
    };
    let info = crate::call::ChunkInfo {
        index: req.index as usize,
        chunks: req.chunks as usize,
        attempt: req.attempt,
        retries: req.retries,
    };
    let call = || crate::call::in_chunk(info, || run(&input));
    let (outcome, ran) = Ran::time(|| catch_unwind(AssertUnwindSafe(call)));
    match outcome {
        Ok(Ok(result)) if result.len() > protocol::MAX_PAYLOAD => Message::BadInput {
            message: format!(
                "the result is {} bytes, over the {} bytes a message may carry",
                result.len(),
                protocol::MAX_PAYLOAD
            ),
        },
        Ok(Ok(result)) => Message::Done {
            result,
            ran,
            retry: input.retry.take(),
        },
        Ok(Err(message)) => Message::BadInput { message },
        Err(payload) => Message::Panicked {
            message: panic_message(&*payload),
            ran,
        },
    }
}
