//! Running the chunks of one call: the threads and serial backends.
//!
//! **Who runs what.** A call with `w` workers and `n` chunks starts `min(w, n)` workers; each
//! takes the next chunk from a shared queue, in ascending order, until the queue is empty. The
//! calling thread is worker 0, so a call never waits on a pool that has no free thread (nested
//! calls are safe). Where the workers come from depends on `w`:
//!
//! - `w` up to the number of cores (CPU-bound work): the other workers are jobs on rayon's global
//!   pool, which is sized to the cores and already warm, so dispatch costs about what rayon's own
//!   does, and a chunk body may itself use rayon.
//! - `w` above the number of cores (I/O-bound work: bodies that block on the network or sleep):
//!   the other workers are threads of the call's own (`std::thread::scope`), so that blocking
//!   bodies really overlap and never hold the pool's threads away from CPU-bound work.
//!
//! **Failures.** Each chunk runs under `catch_unwind`. After a panic no further chunk starts; the
//! chunks running finish; then the call reports the panic of the lowest chunk index. After an
//! `Err` in chunk `i`, chunks after `i` that have not started are skipped, chunks before `i` all
//! run, so the first `Err` in chunk order is exact.
//!
//! **Tracing.** A call is a span `parallel_chunks` (`function`, `backend`, `chunks`, `workers`),
//! child of the caller's current span; each chunk is a span `chunk` (`index`, `len`, `worker`),
//! child of the call's span, entered on the thread that runs it, with the caller's subscriber.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};

use tracing::{Dispatch, Span};

use crate::chunks::{Chunkable, Cut};
use crate::error::{ChunkError, ChunkFailure, panic_message};
use crate::plan::Backend;

/// One call, as resolved from its plan and the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub(crate) function: &'static str,
    pub(crate) backend: Backend,
    pub(crate) cut: Cut,
    pub(crate) workers: usize,
}

/// The machine's cores, as `std` reports them.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

type Outcome<R> = Result<R, String>;

impl Call {
    fn span(&self, chunks: usize, workers: usize) -> Span {
        let workers = if self.backend == Backend::Serial {
            1
        } else {
            workers
        };
        tracing::info_span!(
            "parallel_chunks",
            function = self.function,
            backend = self.backend.name(),
            chunks,
            workers
        )
    }

    /// Cuts the input and opens the call's span: the chunks, what they share, the workers that
    /// will run them.
    fn begin<I: Chunkable>(&self, input: I) -> (Vec<I::Chunk>, Chunks, usize) {
        let lengths = self.cut.lengths(input.elements());
        let chunks = input.cut_lengths(&lengths);
        let workers = self.workers.min(chunks.len());
        let span = self.span(chunks.len(), workers);
        (chunks, Chunks { span, lengths }, workers)
    }

    fn error(&self, chunk: usize, chunks: usize, message: String) -> ChunkError {
        ChunkError {
            function: self.function.to_owned(),
            chunk,
            chunks,
            cause: ChunkFailure::Panicked(message),
        }
    }

    /// Threads or serial; processes need a registered function, closures run on threads.
    fn runs_serially(&self, workers: usize) -> bool {
        match self.backend {
            Backend::Serial => true,
            Backend::Threads => workers <= 1,
            Backend::Processes => {
                warn_processes_fallback(self.function);
                workers <= 1
            }
        }
    }
}

fn warn_processes_fallback(function: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            function,
            "the processes backend runs #[parallel_chunks] functions; a closure given to a Plan runs on threads"
        );
    }
}

/// Which chunk a body is running, as [`current_chunk`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    /// The chunk's index, from 0.
    pub index: usize,
    /// How many chunks the call has.
    pub chunks: usize,
}

thread_local!(static CURRENT: std::cell::Cell<Option<ChunkInfo>> = const { std::cell::Cell::new(None) });

/// The chunk the calling code runs in, when called from a `#[parallel_chunks]` body (on any
/// backend, worker processes included) or a [`Plan`](crate::Plan) closure; `None` elsewhere.
///
/// For output that must say which chunk it belongs to, such as
/// [`OrderedWriter::write`](crate::sink::OrderedWriter::write):
///
/// ```
/// #[decor::parallel_chunks(chunks = 3, reduce = "concat")]
/// fn tag(xs: &[u8]) -> Vec<String> {
///     let chunk = decor::current_chunk().unwrap();
///     vec![format!("{} of {}", chunk.index, chunk.chunks)]
/// }
/// assert_eq!(tag(&[1, 2, 3]), ["0 of 3", "1 of 3", "2 of 3"]);
/// assert_eq!(decor::current_chunk(), None);
/// ```
pub fn current_chunk() -> Option<ChunkInfo> {
    CURRENT.with(|c| c.get())
}

/// Runs `body` with [`current_chunk`] set to `info`.
pub(crate) fn in_chunk<R>(info: ChunkInfo, body: impl FnOnce() -> R) -> R {
    struct Restore(Option<ChunkInfo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(info))));
    body()
}

/// What every chunk of one call shares: the call's span, the chunks' lengths.
struct Chunks {
    span: Span,
    lengths: Vec<usize>,
}

impl Chunks {
    /// Runs chunk `index` on `worker` in its own span, catching a panic.
    fn run<R>(&self, index: usize, worker: usize, body: impl FnOnce() -> R) -> Outcome<R> {
        let info = ChunkInfo {
            index,
            chunks: self.lengths.len(),
        };
        let len = self.lengths[index];
        let span = tracing::info_span!(parent: &self.span, "chunk", index, len, worker);
        let _entered = span.enter();
        catch_unwind(AssertUnwindSafe(|| in_chunk(info, body))).map_err(|p| panic_message(&*p))
    }
}

/// Starts `workers` workers, `work(k)` for k in 0..workers, the caller being worker 0.
fn spawn_workers(workers: usize, dispatch: &Dispatch, work: &(dyn Fn(usize) + Sync)) {
    let run = |k: usize| tracing::dispatcher::with_default(dispatch, || work(k));
    if workers <= 1 {
        run(0);
    } else if workers <= rayon::current_num_threads() {
        rayon::in_place_scope(|s| {
            for k in 1..workers {
                s.spawn(move |_| run(k));
            }
            run(0);
        });
    } else {
        std::thread::scope(|s| {
            for k in 1..workers {
                std::thread::Builder::new()
                    .name(format!("decor-worker-{k}"))
                    .spawn_scoped(s, move || run(k))
                    .expect("cannot start a worker thread");
            }
            run(0);
        });
    }
}

/// Runs every chunk and returns the results in chunk order, stopping early after a failure
/// (`failed`) or a panic (reported as the error).
pub(crate) fn collect<I, S, R, F>(
    call: &Call,
    input: I,
    mut state: impl FnMut() -> S,
    f: &F,
    failed: &(dyn Fn(&R) -> bool + Sync),
) -> Result<Vec<R>, ChunkError>
where
    I: Chunkable,
    S: Send,
    R: Send,
    F: Fn(I::Chunk, S) -> R + Sync,
{
    let (chunks, chunks_ctx, workers) = call.begin(input);
    let n = chunks.len();
    let _entered = chunks_ctx.span.enter();
    let items: Vec<(usize, I::Chunk, S)> = chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i, c, state()))
        .collect();

    if call.runs_serially(workers) {
        let mut out = Vec::with_capacity(n);
        for (i, c, s) in items {
            match chunks_ctx.run(i, 0, || f(c, s)) {
                Ok(r) => {
                    let stop = failed(&r);
                    out.push(r);
                    if stop {
                        break;
                    }
                }
                Err(msg) => return Err(call.error(i, n, msg)),
            }
        }
        return Ok(out);
    }

    let queue = Mutex::new(items.into_iter());
    let slots: Vec<Mutex<Option<Outcome<R>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let panicked = AtomicBool::new(false);
    let stop_after = AtomicUsize::new(usize::MAX);
    let work = |k: usize| {
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some((i, c, s)) = next else { break };
            if panicked.load(Ordering::Relaxed) || i > stop_after.load(Ordering::Relaxed) {
                continue;
            }
            let outcome = chunks_ctx.run(i, k, || f(c, s));
            match &outcome {
                Err(_) => panicked.store(true, Ordering::Relaxed),
                Ok(r) if failed(r) => {
                    stop_after.fetch_min(i, Ordering::Relaxed);
                }
                Ok(_) => {}
            }
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        }
    };
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    spawn_workers(workers, &dispatch, &work);

    let outcomes: Vec<Option<Outcome<R>>> = slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    if let Some((i, msg)) = outcomes.iter().enumerate().find_map(|(i, o)| match o {
        Some(Err(msg)) => Some((i, msg.clone())),
        _ => None,
    }) {
        return Err(call.error(i, n, msg));
    }
    // Skipped chunks only follow a failure, so the prefix of results is complete.
    Ok(outcomes
        .into_iter()
        .map_while(|o| o.and_then(Result::ok))
        .collect())
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
    let (chunks, chunks_ctx, workers) = call.begin(input);
    let n = chunks.len();
    let _entered = chunks_ctx.span.enter();

    if call.runs_serially(workers) {
        for (i, c) in chunks.into_iter().enumerate() {
            let outcome = chunks_ctx.run(i, 0, || f(c));
            on_done(i, outcome.map_err(|msg| call.error(i, n, msg)));
        }
        return;
    }

    let queue = Mutex::new(chunks.into_iter().enumerate());
    let (tx, rx) = mpsc::channel::<(usize, Outcome<R>)>();
    let work = |k: usize| {
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some((i, c)) = next else { break };
            let outcome = chunks_ctx.run(i, k, || f(c));
            if tx.send((i, outcome)).is_err() {
                break;
            }
        }
    };
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    let run = |k: usize| tracing::dispatcher::with_default(&dispatch, || work(k));
    // The caller receives while every worker runs elsewhere: on the pool when it has room and
    // the caller is not one of its threads (which would then wait without stealing), else on
    // threads of this call.
    let on_pool =
        workers <= rayon::current_num_threads() && rayon::current_thread_index().is_none();
    let mut receive = || {
        for _ in 0..n {
            match rx.recv() {
                Ok((i, outcome)) => on_done(i, outcome.map_err(|msg| call.error(i, n, msg))),
                Err(_) => break,
            }
        }
    };
    if on_pool {
        rayon::in_place_scope(|s| {
            for k in 0..workers {
                let run = &run;
                s.spawn(move |_| run(k));
            }
            receive();
        });
    } else {
        std::thread::scope(|s| {
            for k in 0..workers {
                let run = &run;
                std::thread::Builder::new()
                    .name(format!("decor-worker-{k}"))
                    .spawn_scoped(s, move || run(k))
                    .expect("cannot start a worker thread");
            }
            receive();
        });
    }
}
