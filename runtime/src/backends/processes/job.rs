//! One call's work as the workers are sent it: what every chunk's message carries besides its
//! own data.

use std::time::Duration;

use crate::call::CallTag;
use crate::remote::outgoing::Remote;
use crate::remote::protocol::ChunkData;

/// One call's work, the same for every chunk.
pub(crate) struct Job {
    pub(crate) remote: Remote,
    /// The call, as its chunks' spans name it.
    pub(crate) tag: CallTag,
    pub(crate) lengths: Vec<usize>,
    /// Chunks still to copy into shared memory, each just before it is sent.
    pub(crate) copy: Option<crate::shm::PendingCopy>,
    /// The parameters other than the cut one, sent with every chunk.
    pub(crate) args: Vec<ChunkData>,
    /// The shared-memory regions the parent has at the call's start: workers keep only these.
    pub(crate) live: Vec<u64>,
    pub(crate) timeout: Option<Duration>,
    /// Attempts after the first, the wait before each, and the function's rate.
    pub(crate) policy: crate::retry::Policy,
}
