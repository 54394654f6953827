//! Where chunks run: one module per backend, each taking a resolved [`Call`].
//!
//! [`run`] and [`stream`] serve calls whose body is a closure (a [`Plan`](crate::Plan) written by
//! hand, or a `#[parallel_chunks]` function on threads or serial): they cut the input, open the
//! call's span and hand the chunks to [`serial`] or [`threads`]. A closure that captures cannot
//! cross to another process, so `processes` is served there by threads, with one WARN saying
//! why. Calls that can cross (an attribute's entry, `Plan::map_remote`) go through
//! [`run_remote`] to one of the two transports, [`processes`] and `mpi`, siblings over the one
//! remote path in [`remote`](crate::remote); [`takeover`] is where a worker or a rank starts.

pub(crate) mod concurrent;
pub(crate) mod descriptor;
#[cfg(feature = "mpi")]
pub(crate) mod mpi;
pub(crate) mod processes;
pub(crate) mod ring;
pub(crate) mod spin;
pub(crate) mod takeover;

mod queue;
mod serial;
mod threads;

use std::sync::Mutex;

use serde::de::DeserializeOwned;

use crate::call::{Backend, Call, Opened, Outcome};
use crate::chunks::Chunkable;
use crate::error::ChunkError;
use crate::remote::outgoing::{Args, Landed, OutgoingChunks, Remote, ready};
use crate::retry::Judge;

/// Runs a prepared remote call on the transport the call was resolved to.
pub(crate) fn run_remote<R: DeserializeOwned>(
    call: &Call,
    remote: Result<Remote, String>,
    args: Args,
    chunks: Result<OutgoingChunks<'_>, String>,
) -> Vec<Outcome<R>> {
    let ready = match ready(remote, args, chunks) {
        Ok(ready) => ready,
        Err(failed) => return vec![Outcome::Failed(failed)],
    };
    let mut landed = Landed::new(ready.chunks.lengths.len());
    #[cfg(feature = "mpi")]
    if call.backend == Backend::Mpi {
        mpi::run(call, ready, &mut landed);
    } else {
        processes::run(call, ready, &mut landed);
    }
    #[cfg(not(feature = "mpi"))]
    processes::run(call, ready, &mut landed);
    // A chunk with no outcome was never sent: an earlier one failed.
    landed.outcomes(|| Outcome::Skipped)
}

/// Wakes what will serve a call that leaves the process before its chunks are prepared: the
/// workers of a processes call (MPI ranks are woken by their first message).
pub(crate) fn wake_ahead(call: &Call) {
    if call.backend == Backend::Processes {
        processes::pool::wake_ahead(call.workers);
    }
}

/// The call on threads where it was resolved to processes or MPI but cannot leave the process,
/// with one WARN per function naming it and `why`.
pub(crate) fn stays_here(call: &Call, why: &str) -> Call {
    if !call.backend.leaves_process() {
        return *call;
    }
    if first_time(&STAYS_WARNED, call.function) {
        tracing::warn!(
            function = call.function,
            "{} runs on threads, not {}: {why}",
            call.function,
            call.backend.name()
        );
    }
    Call {
        backend: Backend::Threads,
        ..*call
    }
}

static STAYS_WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Whether this process is a rank serving chunks (never true without the `mpi` feature).
pub(crate) fn mpi_serving() -> bool {
    #[cfg(feature = "mpi")]
    return mpi::is_serving();
    #[cfg(not(feature = "mpi"))]
    return false;
}

/// Whether `backend = "mpi"` can run here; if not, says why once per function (a WARN), and
/// the call goes to processes.
pub(crate) fn mpi_ready(function: &'static str) -> bool {
    #[cfg(feature = "mpi")]
    let why = match mpi::serving_ranks() {
        0 => "this program was not started by mpirun with more than one rank",
        _ => return true,
    };
    #[cfg(not(feature = "mpi"))]
    let why = "decor was built without its `mpi` feature";
    static WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    if first_time(&WARNED, function) {
        tracing::warn!(function, "{function} runs on processes, not mpi: {why}");
    }
    false
}

pub(crate) use queue::Copier;

/// A call with a closure body, begun: the call as closures run it (see [`begin`]), its span,
/// and each chunk of the input with its own value of `state`.
pub(crate) struct Begun<T> {
    pub(crate) call: Call,
    pub(crate) opened: Opened,
    pub(crate) items: Vec<T>,
}

impl<C, S> Begun<(C, S)> {
    /// Begins a call of `input`, each chunk given a value from `state`.
    pub(crate) fn new<I>(call: &Call, input: I, mut state: impl FnMut() -> S) -> Self
    where
        I: Chunkable<Chunk = C>,
    {
        let (call, chunks, opened) = begin(call, input);
        let items = opened
            .span
            .in_scope(|| chunks.into_iter().map(|c| (c, state())).collect());
        Begun {
            call,
            opened,
            items,
        }
    }

    /// Begins a call whose chunks run as futures on the caller's task (see [`concurrent`]).
    pub(crate) fn futures<I>(call: &Call, input: I, state: impl FnMut() -> S) -> Self
    where
        I: Chunkable<Chunk = C>,
    {
        let call = Call {
            futures: true,
            ..*call
        };
        Self::new(&call, input, state)
    }
}

/// What runs on each chunk: the body, how its result is judged (kept, stopping the call, or run
/// again), and how an item is copied for another attempt (`None`: none is ever run again).
pub(crate) struct Body<'a, F, R, T> {
    pub(crate) f: &'a F,
    pub(crate) judge: Judge<'a, R>,
    pub(crate) copy: Copier<'a, T>,
}

/// Runs every chunk of a begun call on threads (serial with one worker) and returns every
/// chunk's outcome in chunk order; after a failure or a kept `Err` (as the body's judge says),
/// chunks not started are skipped; an `Err` to retry runs again (on a copy of its item).
pub(crate) fn run<C, S, R, F>(begun: Begun<(C, S)>, body: Body<'_, F, R, (C, S)>) -> Vec<Outcome<R>>
where
    C: Send,
    S: Send,
    R: Send,
    F: Fn(C, S) -> R + Sync,
{
    let Begun {
        call,
        opened,
        items,
    } = begun;
    let _entered = opened.span.enter();
    let n = items.len();
    let f = body.f;
    let runner = queue::Runner {
        opened: &opened,
        queue: queue::Queue::new(items),
        body: &|(c, s): (C, S)| f(c, s),
        judge: body.judge,
        policy: call.policy(),
        copy: body.copy,
    };
    if runs_serially(&call, &opened) {
        serial::run(&runner, n)
    } else {
        threads::run(&runner, n)
    }
}

/// Runs every chunk and hands each outcome to `on_done` on the calling thread as it completes.
pub(crate) fn stream<I, R, F>(
    call: &Call,
    input: I,
    f: &F,
    mut on_done: impl FnMut(usize, Result<R, ChunkError>),
) where
    I: Chunkable,
    R: Send,
    F: Fn(I::Chunk) -> R + Sync,
{
    let (call, chunks, opened) = begin(call, input);
    let n = chunks.len();
    let _entered = opened.span.enter();
    let mut done = |i: usize, outcome: Outcome<R>| {
        let result = match outcome {
            Outcome::Done(r) => Ok(r),
            Outcome::Failed(cause) => Err(call.error(i, n, cause)),
            Outcome::Skipped => unreachable!("a stream runs every chunk"),
        };
        on_done(i, result);
    };
    if runs_serially(&call, &opened) {
        serial::stream(&opened, chunks, f, &mut done);
    } else {
        threads::stream(&opened, chunks, f, &mut done);
    }
}

/// What every call with a closure body does first: the call as closures can run it, the WARN a
/// `timeout` needs there, and the input cut inside the call's span.
pub(crate) fn begin<I: Chunkable>(call: &Call, input: I) -> (Call, Vec<I::Chunk>, Opened) {
    let call = for_closures(call);
    warn_timeout_cannot_stop(&call);
    let (chunks, opened) = call.cut(input);
    (call, chunks, opened)
}

fn runs_serially(call: &Call, opened: &Opened) -> bool {
    call.backend == Backend::Serial || opened.workers <= 1
}

/// `timeout` on threads or serial: said once per function, since a chunk there borrows the input
/// and cannot be stopped; each overrun is reported when its chunk ends.
fn warn_timeout_cannot_stop(call: &Call) {
    if call.timeout.is_some() && first_time(&TIMEOUT_WARNED, call.function) {
        tracing::warn!(
            function = call.function,
            "{} has a timeout, which stops a chunk only on processes: on {} a running chunk cannot be stopped (it borrows the input); a chunk that runs over is reported when it ends",
            call.function,
            call.backend.name()
        );
    }
}

static TIMEOUT_WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Whether `function` is not in `seen` yet; adds it.
fn first_time(seen: &Mutex<Vec<&'static str>>, function: &'static str) -> bool {
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let first = !seen.contains(&function);
    if first {
        seen.push(function);
    }
    first
}

/// The call as closures can run it: on threads where processes were asked for, with one WARN
/// per function saying so (unless the attribute already said why).
fn for_closures(call: &Call) -> Call {
    stays_here(
        call,
        "its body cannot cross to another process (a closure given to Plan::map, or a function whose signature cannot cross: see #[parallel_chunks]); Plan::map_remote takes a function that can",
    )
}
