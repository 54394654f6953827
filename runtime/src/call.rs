//! One parallel call, resolved: what every backend takes, and what they share.
//!
//! A [`Plan`](crate::Plan) says what the attribute asked for; [`Call`] is that plan after the
//! environment overrides, for one call: the function's name, the backend, the cut, the workers,
//! the timeout and the retries. Around it sit the pieces every backend needs, written once here:
//!
//! - the spans: `parallel_chunks` for the call ([`Call::open`]) and `chunk` for each chunk
//!   ([`chunk_span`]), so that threads, serial and processes trace alike;
//! - [`current_chunk`], set while a chunk body runs, wherever it runs;
//! - what became of each chunk ([`Outcome`]) and the assembly of those outcomes in chunk order
//!   into the call's result or its first failure ([`Call::settle`], [`Call::settle_try`]), with
//!   the [`ChunkError`] that names the function and the chunk ([`Call::error`]).
//!
//! The rule every backend keeps: chunks are claimed in ascending order; after a failure no
//! further chunk starts, so every chunk not run ([`Outcome::Skipped`]) comes after a failure in
//! chunk order or was stopped by one, and reading the outcomes in chunk order while passing over
//! the skipped ones finds the first failure.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::Span;

use crate::chunks::{Chunkable, Cut, CutAt};
use crate::error::{ChunkError, ChunkFailure, panic_message};

/// Where the chunks of a call run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One after another on the calling thread.
    Serial,
    /// On threads: a pool sized to the cores for CPU-bound work; when more workers are asked for
    /// than there are cores (I/O-bound work), on threads of the call's own.
    Threads,
    /// On worker processes running the same executable.
    Processes,
    /// On the ranks of an `mpirun` job, on one machine or many (cargo feature `mpi`); without
    /// `mpirun`, or without the feature, on processes with one WARN.
    Mpi,
}

impl Backend {
    /// Every backend, in the order their names are listed in messages.
    pub(crate) const ALL: [Backend; 4] = [
        Backend::Serial,
        Backend::Threads,
        Backend::Processes,
        Backend::Mpi,
    ];

    /// Whether the chunks run in other processes (worker processes or MPI ranks), which only an
    /// attribute's entry or a plain `fn` given to `Plan::map_remote` can do.
    pub(crate) fn leaves_process(self) -> bool {
        matches!(self, Backend::Processes | Backend::Mpi)
    }

    /// The name used in attributes and in `DECOR_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Serial => "serial",
            Backend::Threads => "threads",
            Backend::Processes => "processes",
            Backend::Mpi => "mpi",
        }
    }

    /// Parses a backend's [`name`](Self::name), ignoring case and surrounding spaces.
    pub fn parse(s: &str) -> Option<Backend> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
    }
}

/// The machine's cores, as `std` reports them.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One call, resolved from its plan and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The function, `"module::path::name"`.
    pub(crate) function: &'static str,
    pub(crate) backend: Backend,
    pub(crate) cut: Cut,
    /// Where a text may be cut, if only at line or word ends.
    pub(crate) cut_at: Option<CutAt>,
    /// At least 1.
    pub(crate) workers: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) backoff: crate::retry::Backoff,
    /// At most this many chunk starts of the function, across its calls at once.
    pub(crate) rate: Option<crate::retry::Rate>,
    /// The chunks run as concurrent futures on the caller's task (an `async` body), whatever the
    /// backend: spans say `backend = "futures"` and a chunk's `worker` is its in-flight slot.
    pub(crate) futures: bool,
}

/// What a chunk's span says of its call: a chunk's span may close on a thread where the call's
/// span is not current, and its log line must still say which call it belonged to and where it
/// ran.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallTag {
    pub(crate) function: &'static str,
    /// Numbers the calls of this process, so that a trace tells the chunks of two calls apart.
    pub(crate) number: u64,
    /// Where the chunks ran, as spans name it.
    pub(crate) backend: &'static str,
}

/// A call under way: the call, its span and the lengths of its chunks.
pub(crate) struct Opened {
    call: Call,
    /// The call's number, as its span and its chunks' spans say it.
    number: u64,
    pub(crate) span: Span,
    pub(crate) lengths: Vec<usize>,
    /// The workers that will run the chunks: never more than the chunks.
    pub(crate) workers: usize,
}

impl Call {
    /// Where the chunks of this call run.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the chunks run, as spans say it: the backend's name, or `futures` for an async
    /// body's chunks.
    pub(crate) fn runs_on(&self) -> &'static str {
        if self.futures {
            "futures"
        } else {
            self.backend.name()
        }
    }

    /// How this call retries and paces its chunks.
    pub(crate) fn policy(&self) -> crate::retry::Policy {
        crate::retry::Policy {
            retries: self.retries,
            backoff: self.backoff,
            rate: self.rate.map(|r| crate::retry::limiter(self.function, r)),
        }
    }

    /// The lengths of the chunks of an input of `elements` elements.
    pub(crate) fn lengths(&self, elements: usize) -> Vec<usize> {
        self.cut.lengths(elements)
    }

    /// The chunks of `input` and their lengths, cut as this call says.
    pub(crate) fn cut_input<I: Chunkable>(&self, input: I) -> (Vec<I::Chunk>, Vec<usize>) {
        input.cut_at(self.cut, self.cut_at)
    }

    /// A new call's number and span, its number of chunks and workers still to record.
    fn span(&self) -> (u64, Span) {
        static CALLS: AtomicU64 = AtomicU64::new(1);
        let number = CALLS.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "parallel_chunks",
            function = self.function,
            call = number,
            backend = self.runs_on(),
            chunks = tracing::field::Empty,
            workers = tracing::field::Empty
        );
        (number, span)
    }

    /// The call under way in `span`, for chunks of these lengths.
    fn opened(&self, (number, span): (u64, Span), lengths: Vec<usize>) -> Opened {
        let chunks = lengths.len();
        let workers = match self.backend {
            Backend::Serial => 1,
            _ => self.workers.min(chunks),
        };
        span.record("chunks", chunks);
        span.record("workers", workers);
        Opened {
            call: *self,
            number,
            span,
            lengths,
            workers,
        }
    }

    /// Opens the call's span for chunks of these lengths (cut already).
    pub(crate) fn open(&self, lengths: Vec<usize>) -> Opened {
        self.opened(self.span(), lengths)
    }

    /// Opens the call's span and cuts `input` inside it, so that a trace shows the cut's cost.
    pub(crate) fn cut<I: Chunkable>(&self, input: I) -> (Vec<I::Chunk>, Opened) {
        let (number, span) = self.span();
        let (chunks, lengths) = span.in_scope(|| self.cut_input(input));
        (chunks, self.opened((number, span), lengths))
    }

    /// The error of chunk `chunk` of `chunks`.
    pub(crate) fn error(&self, chunk: usize, chunks: usize, cause: ChunkFailure) -> ChunkError {
        ChunkError {
            function: self.function.to_owned(),
            chunk,
            chunks,
            cause,
        }
    }

    /// The results in chunk order, or the first failure in chunk order.
    pub(crate) fn settle<R>(&self, outcomes: Vec<Outcome<R>>) -> Result<Vec<R>, ChunkError> {
        let n = outcomes.len();
        let mut out = Vec::with_capacity(n);
        for (i, o) in outcomes.into_iter().enumerate() {
            match o {
                Outcome::Done(r) => out.push(r),
                Outcome::Failed(f) => return Err(self.error(i, n, f)),
                // Only a failure stops a call, and it is further on.
                Outcome::Skipped => {}
            }
        }
        Ok(out)
    }

    /// For chunks returning `Result`: the `Ok` values in chunk order, or whichever comes first
    /// in chunk order of an `Err` (the inner `Err`) and a failed chunk (the outer `Err`).
    pub(crate) fn settle_try<T, E>(
        &self,
        outcomes: Vec<Outcome<Result<T, E>>>,
    ) -> Result<Result<Vec<T>, E>, ChunkError> {
        let n = outcomes.len();
        let mut out = Vec::with_capacity(n);
        for (i, o) in outcomes.into_iter().enumerate() {
            match o {
                Outcome::Done(Ok(v)) => out.push(v),
                Outcome::Done(Err(e)) => return Ok(Err(e)),
                Outcome::Failed(f) => return Err(self.error(i, n, f)),
                Outcome::Skipped => {}
            }
        }
        Ok(Ok(out))
    }
}

impl Opened {
    /// Runs chunk `index` on `worker` in its span, with [`current_chunk`] set, catching a panic,
    /// and reports it if it ran over the call's `timeout`.
    pub(crate) fn run<R>(
        &self,
        index: usize,
        worker: usize,
        body: impl FnOnce() -> R,
    ) -> Outcome<R> {
        self.attempt(index, worker, 0, body).0
    }

    /// [`run`](Self::run) for attempt `attempt` of the chunk (0 the first), which its span
    /// records as `attempts` from the second on; the span is returned to report a retry in.
    pub(crate) fn attempt<R>(
        &self,
        index: usize,
        worker: usize,
        attempt: u32,
        body: impl FnOnce() -> R,
    ) -> (Outcome<R>, Span) {
        let span = self.chunk_span(index, worker as u64);
        if attempt > 0 {
            span.record("attempts", attempt + 1);
        }
        let start = self.call.timeout.map(|_| std::time::Instant::now());
        let outcome = match self.guarded(&span, index, attempt, body) {
            Ok(r) => Outcome::Done(r),
            Err(f) => Outcome::Failed(f),
        };
        if let Some(start) = start {
            self.report_overrun(index, start.elapsed());
        }
        (outcome, span)
    }

    /// Says, at WARN in the failed attempt's `span`, that chunk `index` runs again after `wait`:
    /// the function, the chunk, the attempt to come (`2/4`), the error and the wait.
    pub(crate) fn report_retry(
        &self,
        span: &Span,
        index: usize,
        next: u32,
        error: &str,
        wait: Duration,
    ) {
        report_retry(
            span,
            self.call.function,
            index,
            next,
            self.call.retries,
            error,
            wait,
        );
    }

    /// The span of chunk `index` run by `worker`.
    pub(crate) fn chunk_span(&self, index: usize, worker: u64) -> Span {
        chunk_span(&self.span, &self.tag(), index, self.lengths[index], worker)
    }

    /// What the chunks' spans say of this call.
    pub(crate) fn tag(&self) -> CallTag {
        CallTag {
            function: self.call.function,
            number: self.number,
            backend: self.call.runs_on(),
        }
    }

    /// Runs `body`, a chunk's work or one step of it, in the chunk's `span` with
    /// [`current_chunk`] set; a panic becomes the chunk's failure.
    pub(crate) fn guarded<T>(
        &self,
        span: &Span,
        index: usize,
        attempt: u32,
        body: impl FnOnce() -> T,
    ) -> Result<T, ChunkFailure> {
        let info = ChunkInfo {
            index,
            chunks: self.lengths.len(),
            attempt,
            retries: self.call.retries,
        };
        let _entered = span.enter();
        catch_unwind(AssertUnwindSafe(|| in_chunk(info, body)))
            .map_err(|p| ChunkFailure::Panicked(panic_message(&*p)))
    }

    /// Reports, at WARN, a chunk that ran longer than the call's `timeout`: where it cannot be
    /// stopped, the overrun is said when it ends.
    pub(crate) fn report_overrun(&self, index: usize, took: Duration) {
        let Some(limit) = self.call.timeout.filter(|&limit| took > limit) else {
            return;
        };
        let function = self.call.function;
        tracing::warn!(
            function,
            chunk = index,
            elapsed_ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            "{function} chunk {index} ran {}, over its timeout of {}",
            crate::fmt::HumanDuration(took),
            crate::fmt::HumanDuration(limit)
        );
    }
}

/// Says, at WARN in `span`, that chunk `index` of `function` runs again after `wait`, as attempt
/// `next` (0 the first) of `1 + retries`, because of `error`; counted in [`stats`](crate::stats).
pub(crate) fn report_retry(
    span: &Span,
    function: &'static str,
    index: usize,
    next: u32,
    retries: u32,
    error: &str,
    wait: Duration,
) {
    crate::stats::count_retry(function);
    let attempt = format!("{}/{}", next + 1, retries + 1);
    tracing::warn!(
        parent: span,
        function,
        chunk = index,
        attempt = attempt.as_str(),
        error,
        wait_ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
        "{function} chunk {index} failed ({error}); attempt {attempt} in {}",
        crate::fmt::HumanDuration(wait)
    );
}

/// The span of one chunk, child of its call's span; `worker` is a thread's number or a worker
/// process's id. It names its call's function, number and backend too (see [`CallTag`]).
///
/// On processes the span lives in the parent, around the wait for the chunk's reply; the worker's
/// own timing of the body is recorded in it as `run.start_unix_ns` (wall clock) and `run.busy_ns`,
/// which is what timelines draw.
pub(crate) fn chunk_span(
    parent: &Span,
    tag: &CallTag,
    index: usize,
    len: usize,
    worker: u64,
) -> Span {
    tracing::info_span!(
        parent: parent,
        "chunk",
        index,
        len,
        worker,
        backend = tag.backend,
        function = tag.function,
        call = tag.number,
        attempts = tracing::field::Empty,
        run.start_unix_ns = tracing::field::Empty,
        run.busy_ns = tracing::field::Empty,
        rank = tracing::field::Empty,
        host = tracing::field::Empty
    )
}

/// What became of one chunk.
#[derive(Debug)]
pub(crate) enum Outcome<R> {
    /// It ran and returned this.
    Done(R),
    /// It produced no result.
    Failed(ChunkFailure),
    /// It was not run: a failure stopped the call first.
    Skipped,
}

/// Which chunk a body is running, as [`current_chunk`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkInfo {
    /// The chunk's index, from 0.
    pub index: usize,
    /// How many chunks the call has.
    pub chunks: usize,
    /// Which attempt at the chunk this is: 0 for the first run, then one more for each retry.
    pub attempt: u32,
    /// The attempts after the first that the call allows (`retries`).
    pub retries: u32,
}

impl ChunkInfo {
    /// Whether this attempt is the chunk's last: an `Err` now is what the call returns. A body
    /// that would rather keep a failure as a value than fail the call turns it into one here.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.retries
    }
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
