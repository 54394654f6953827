//! One call's work on the pool: what the slots serving it share, and where its results go.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use crate::call::{CallTag, Outcome};
use crate::remote::outgoing::Remote;
use crate::remote::protocol::ChunkData;

/// One call's work, shared by the slots that serve it.
pub(crate) struct Job {
    pub(crate) remote: Remote,
    /// The call, as its chunks' spans name it.
    pub(crate) tag: CallTag,
    pub(crate) queue: Mutex<VecDeque<(usize, ChunkData)>>,
    pub(crate) lengths: Vec<usize>,
    /// Chunks still to copy into shared memory, by the thread that sends each.
    pub(crate) copy: Option<crate::shm::PendingCopy>,
    /// The parameters other than the cut one, sent with every chunk.
    pub(crate) args: Vec<ChunkData>,
    /// The shared-memory regions the parent has at the call's start: workers keep only these.
    pub(crate) live: Vec<u64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    /// How many slots serve the job.
    pub(crate) workers: usize,
    pub(crate) stop: AtomicBool,
    pub(crate) results: mpsc::Sender<(usize, Outcome<Vec<u8>>)>,
}
