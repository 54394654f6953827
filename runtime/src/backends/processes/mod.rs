//! The processes backend: chunks run in a pool of worker processes of this same executable.
//!
//! **How a worker starts, with no code in `main`.** Every `#[parallel_chunks]` function that can
//! run remotely puts a constructor in the user's own crate (an ELF `.init_array` entry, so it is
//! always linked) that calls [`worker_main`](crate::backends::takeover::worker_main). The pool
//! starts workers as `/proc/self/exe` with one end of a socket pair on descriptor 3, a random
//! token in `DECOR_WORKER_CHANNEL_<version>`, and its message rings' memory file on descriptor 4.
//! In a worker, the constructor finds the variable, reads the `Hello` the parent sends on the
//! socket, checks magic, version, token and build identity, and serves chunks until the socket
//! closes, never reaching `main`. In every other process it returns at once. A chunk names its
//! function by the offset of its entry in the executable
//! ([`remote::entry`](crate::remote::entry)), so there is nothing to register.
//!
//! **What crosses.** See [`remote::outgoing`](crate::remote::outgoing): plain data and text by
//! shared memory (a region's descriptor goes to each worker once, by `SCM_RIGHTS`), the rest
//! encoded with serde.
//!
//! **Faults.** A panic in a body is caught in the worker, which lives on. A worker that aborts,
//! exits or is killed fails its chunk with [`ChunkFailure::WorkerDied`](crate::ChunkFailure)
//! (exit code or signal); `retries` reruns the chunk at once on a fresh worker; `timeout` kills a
//! worker whose chunk runs too long, and `retries` reruns that chunk, as it does one whose body
//! returned an `Err` that `retry_if` accepts (the worker judges the `Err` and says so in its
//! reply), after the backoff. The slot starts a new worker for the next chunk, so the pool heals.
//! Workers die with the parent (`PR_SET_PDEATHSIG`, and the socket's end).
//!
//! **Modules.** [`job`]: what every chunk of a call carries; [`pool`]: the slots, and the calling
//! thread driving a call's chunks onto their workers; [`child`]: one worker process's life, seen
//! from the parent; [`outbox`]: the frames the parent queues for a worker's socket; [`ring`](super::ring): the shared-memory rings small messages take both ways;
//! [`worker`]: the worker's own loop.
//!
//! Linux only: the constructors are ELF sections and shared memory is `memfd`.

pub(crate) mod child;
pub(crate) mod job;
pub(crate) mod outbox;
pub(crate) mod pool;
pub(crate) mod worker;

use crate::call::Call;
use crate::remote::outgoing::{Land, Ready};
use job::Job;

/// Runs a prepared call on the pool, landing each chunk's outcome as it arrives (none for chunks
/// not started after a failure).
pub(crate) fn run(call: &Call, ready: Ready<'_>, landed: &mut dyn Land) {
    let chunks = ready.chunks;
    let opened = call.open(chunks.lengths);
    let _entered = opened.span.enter();
    let job = Job {
        remote: ready.remote,
        tag: opened.tag(),
        lengths: opened.lengths.clone(),
        copy: chunks.copy,
        args: ready.args,
        live: crate::shm::live_ids(),
        timeout: call.timeout,
        policy: call.policy(),
    };
    pool::drive(&job, chunks.data, opened.workers, &opened.span, landed);
}
