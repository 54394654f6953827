//! A plan for one parallel call: where chunks run, how the input is cut, how many workers.
//!
//! [`Plan`] is what `#[parallel_chunks]` builds from its options, and what you use to write the
//! same thing by hand:
//!
//! ```
//! use decor::{Backend, Plan};
//!
//! // #[parallel_chunks(chunks = 8, backend = "threads", reduce = "sum")]
//! // fn total(xs: &[u64]) -> u64 { xs.iter().sum() }
//! fn total(xs: &[u64]) -> u64 {
//!     let sums = Plan::new().named("my_app::total").chunks(8).backend(Backend::Threads)
//!         .map(xs, |chunk: &[u64]| chunk.iter().sum::<u64>());
//!     sums.into_iter().sum()
//! }
//! assert_eq!(total(&vec![1; 8_000]), 8_000);
//! ```
//!
//! `DECOR_BACKEND=serial|threads|processes|mpi` and `DECOR_WORKERS=N` in the environment override
//! the backend and the workers of every plan, so that one binary can be compared across backends.
//! A closure given to [`Plan::map`] cannot leave the process (it may capture anything), so there
//! it runs on threads, with one WARN; [`Plan::map_remote`] takes a plain `fn` that can.

use std::sync::OnceLock;
use std::time::Duration;

use crate::backends::{self, Begun, Body};
use crate::call::{Backend, Call, cores};
use crate::chunks::{Chunkable, Cut, CutAt};
use crate::error::ChunkError;
use crate::retry::{Backoff, Judged, Rate};

/// How to run one call: backend, cut, workers, and for processes timeout and retries.
///
/// Built with `const` methods so that it can live in a `static`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Plan {
    function: &'static str,
    backend: Backend,
    cut: Option<Cut>,
    cut_at: Option<CutAt>,
    workers: Option<usize>,
    timeout: Option<Duration>,
    retries: u32,
    backoff: Option<Backoff>,
    rate: Option<Rate>,
}

impl Default for Plan {
    fn default() -> Self {
        Self::new()
    }
}

impl Plan {
    /// Threads, one chunk per worker, as many workers as the machine has cores.
    pub const fn new() -> Self {
        Plan {
            function: "decor::Plan",
            backend: Backend::Threads,
            cut: None,
            cut_at: None,
            workers: None,
            timeout: None,
            retries: 0,
            backoff: None,
            rate: None,
        }
    }

    /// The function this plan runs, as named in spans and errors (`"module::path::name"`).
    pub const fn named(mut self, function: &'static str) -> Self {
        self.function = function;
        self
    }

    /// Where chunks run.
    pub const fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Cut the input into `n` chunks (at most one per element), lengths differing by at most one.
    pub const fn chunks(mut self, n: usize) -> Self {
        self.cut = Some(Cut::Chunks(n));
        self
    }

    /// Cut the input into chunks of `n` elements.
    pub const fn chunk_size(mut self, n: usize) -> Self {
        self.cut = Some(Cut::ChunkSize(n));
        self
    }

    /// A text is cut only just after a `\n` ([`CutAt::Line`]) or a whitespace character
    /// ([`CutAt::Whitespace`]), nearest the balanced cut, so no line or word is split; chunks are
    /// then balanced by bytes.
    pub const fn cut_at(mut self, at: CutAt) -> Self {
        self.cut_at = Some(at);
        self
    }

    /// At most `n` threads or processes in use for this call.
    pub const fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Processes: a chunk that runs longer than this fails.
    pub const fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// A chunk that failed is run again up to `n` times: on every backend one that returned an
    /// `Err` (through the `*_retrying` methods, which say which errors), on processes also one
    /// whose worker died or that timed out. A panic never is. See [`retry`](crate::retry).
    pub const fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// The wait before each retry: from `min`, doubling with each attempt up to `max`, with full
    /// jitter ([`Backoff`]); 100 ms to 10 s when not set.
    pub const fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Some(Backoff { min, max });
        self
    }

    /// Chunk starts of this function (every attempt, across its calls in this process at once)
    /// never exceed `rate`.
    pub const fn rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// [`rate`](Self::rate) when `rate` is `Some`, no limit when `None`: for a rate known at run
    /// time (`#[parallel_chunks(rate = path)]` calls this with the path's `fn() -> Option<Rate>`).
    pub const fn with_rate(mut self, rate: Option<Rate>) -> Self {
        self.rate = rate;
        self
    }

    /// This plan for one call: after `DECOR_BACKEND` and `DECOR_WORKERS`, the default cut being
    /// one chunk per worker.
    pub(crate) fn resolve(&self) -> Call {
        let env = overrides();
        let workers = env.workers.or(self.workers).unwrap_or_else(cores).max(1);
        let mut backend = env.backend.unwrap_or(self.backend);
        // In a worker, a processes function called from a chunk body runs here: a pool per
        // worker would multiply processes with every level of nesting.
        if backend.leaves_process()
            && (backends::processes::worker::is_worker() || backends::mpi_serving())
        {
            backend = Backend::Threads;
        }
        if backend == Backend::Mpi && !backends::mpi_ready(self.function) {
            backend = Backend::Processes;
        }
        Call {
            function: self.function,
            backend,
            cut: self.cut.unwrap_or(Cut::Chunks(workers)),
            cut_at: self.cut_at,
            workers,
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff.unwrap_or(Backoff::DEFAULT),
            rate: self.rate,
            futures: false,
        }
    }

    /// Runs `f` on every chunk of `input` and returns the results in chunk order.
    ///
    /// # Panics
    ///
    /// If a chunk panics, once the other chunks have stopped (chunks not started yet are not
    /// started), with a message naming the function and the chunk.
    pub fn map<I, R>(&self, input: I, f: impl Fn(I::Chunk) -> R + Sync) -> Vec<R>
    where
        I: Chunkable,
        R: Send,
    {
        self.map_with(input, || (), move |c, ()| f(c))
    }

    /// Runs the function `f` on every chunk of `input` on any backend, worker processes and MPI
    /// ranks included, and returns the results in chunk order: Python's
    /// `executor.map(fn, chunks)`.
    ///
    /// `f` is a function item or a closure that captures nothing: a worker runs the same
    /// executable and calls `f` at its address there. A closure that captures a value does not
    /// compile (it is not a `fn`): pass the value as data, in the input or with
    /// `#[parallel_chunks]`, whose other parameters cross. The input is a `&[T]` of serde values
    /// (numbers are read in place from shared memory: a [`SharedVec`](crate::shm::SharedVec) or
    /// the [`SharedHeap`](crate::shm::SharedHeap), else copied once into it; other values are
    /// encoded per chunk) or a `&str` (cut as the plan says, read in place); the result is serde.
    ///
    /// ```
    /// use decor::{Backend, Plan};
    ///
    /// let xs: Vec<u64> = (1..=1_000).collect();
    /// let plan = Plan::new().named("squares").chunks(4).workers(2).backend(Backend::Processes);
    /// let sums = plan.map_remote(&xs[..], |c: &[u64]| c.iter().map(|x| x * x).sum::<u64>());
    /// assert_eq!(sums.iter().sum::<u64>(), (1..=1_000u64).map(|x| x * x).sum::<u64>());
    ///
    /// fn words(text: &str) -> usize {
    ///     text.split_whitespace().count()
    /// }
    /// let cut = Plan::new().chunks(3).backend(Backend::Processes)
    ///     .cut_at(decor::chunks::CutAt::Whitespace);
    /// assert_eq!(cut.map_remote("one two three four", words).iter().sum::<usize>(), 4);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`map`](Self::map); on processes and MPI also when a worker dies or a chunk times out.
    pub fn map_remote<'a, I, R>(&self, input: I, f: fn(I::Chunk) -> R) -> Vec<R>
    where
        I: crate::remote::by_hand::RemoteInput<'a>,
        R: serde::Serialize + serde::de::DeserializeOwned + Send,
    {
        let call = self.resolve();
        if !crate::__private::remote::leaves_process(&call) {
            return self.map(input, f);
        }
        let remote = crate::remote::outgoing::Remote::new(self.function, I::__entry::<R>())
            .and_then(|r| r.calling(f as usize));
        let chunks = input.__prepare(&call);
        let args = crate::remote::outgoing::Args::new(&call);
        let outcomes = backends::run_remote(&call, remote, args, chunks);
        call.settle(outcomes).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`map`](Self::map), each chunk also getting a value made for it by `state` on the
    /// calling thread before the chunks start (this is how owned parameters are cloned per chunk).
    pub fn map_with<I, S, R>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: impl Fn(I::Chunk, S) -> R + Sync,
    ) -> Vec<R>
    where
        I: Chunkable,
        S: Send,
        R: Send,
    {
        self.map_with_checked(input, state, f)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`map_with`](Self::map_with), a failed chunk returned as a [`ChunkError`] instead of a
    /// panic.
    pub fn map_with_checked<I, S, R>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: impl Fn(I::Chunk, S) -> R + Sync,
    ) -> Result<Vec<R>, ChunkError>
    where
        I: Chunkable,
        S: Send,
        R: Send,
    {
        let call = self.resolve();
        let outcomes = backends::run(
            Begun::new(&call, input, state),
            Body {
                f: &f,
                judge: &|_: &R| Judged::Keep,
                copy: None,
            },
        );
        call.settle(outcomes)
    }

    /// Runs `f` on every chunk; the `Ok` values in chunk order, or the first `Err` in chunk order.
    ///
    /// After an `Err` in chunk `i`, chunks after `i` that have not started are not started; every
    /// chunk before `i` runs, so the `Err` returned is the first in chunk order.
    ///
    /// # Panics
    ///
    /// As [`map`](Self::map).
    pub fn try_map<I, T, E>(
        &self,
        input: I,
        f: impl Fn(I::Chunk) -> Result<T, E> + Sync,
    ) -> Result<Vec<T>, E>
    where
        I: Chunkable,
        T: Send,
        E: Send,
    {
        self.try_map_with(input, || (), move |c, ()| f(c))
    }

    /// [`try_map`](Self::try_map) with a value per chunk, as in [`map_with`](Self::map_with).
    pub fn try_map_with<I, S, T, E>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: impl Fn(I::Chunk, S) -> Result<T, E> + Sync,
    ) -> Result<Vec<T>, E>
    where
        I: Chunkable,
        S: Send,
        T: Send,
        E: Send,
    {
        self.try_map_with_checked(input, state, f)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`try_map_with`](Self::try_map_with), a failed chunk returned as the outer `Err` instead
    /// of a panic: whichever comes first in chunk order, an `Err` of a chunk (inner) or a failed
    /// chunk (outer). This is what `#[parallel_chunks]` calls for a `Result`, to give a failed
    /// chunk as `Err(E::from(chunk_error))` on every backend when `E: From<ChunkError>`.
    ///
    /// ```
    /// use decor::{ChunkError, Plan};
    /// let r = Plan::new().chunks(2).try_map_with_checked(&[1, 0][..], || (), |c: &[u8], ()| {
    ///     if c[0] == 0 { panic!("zero") }
    ///     Ok::<u8, String>(c[0])
    /// });
    /// let e: ChunkError = r.unwrap_err();
    /// assert_eq!(e.chunk, 1);
    /// ```
    pub fn try_map_with_checked<I, S, T, E>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: impl Fn(I::Chunk, S) -> Result<T, E> + Sync,
    ) -> Result<Result<Vec<T>, E>, ChunkError>
    where
        I: Chunkable,
        S: Send,
        T: Send,
        E: Send,
    {
        let call = self.resolve();
        let outcomes = backends::run(
            Begun::new(&call, input, state),
            Body {
                f: &f,
                judge: &stop_on_err,
                copy: None,
            },
        );
        call.settle_try(outcomes)
    }

    /// [`try_map_with_checked`](Self::try_map_with_checked) whose chunks that return an `Err`
    /// that `retry_if` accepts run again, up to [`retries`](Self::retries) times, after the
    /// plan's [`backoff`](Self::backoff) (another chunk runs on the thread meanwhile); the last
    /// attempt's `Err` is the one kept. Each retry is a WARN in the failed attempt's `chunk`
    /// span, whose `attempts` says which attempt it was. This is what `#[parallel_chunks]` with
    /// `retries` calls for a `Result`. A chunk and its state are cloned for each attempt that may
    /// fail.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use decor::Plan;
    ///
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// let plan = Plan::new().chunks(1).retries(2)
    ///     .backoff(Duration::from_millis(1), Duration::from_millis(5));
    /// let r = plan.try_map_retrying(&[7u8][..], || (), |c: &[u8], ()| {
    ///     match CALLS.fetch_add(1, Ordering::Relaxed) {
    ///         0 => Err(429),       // retried
    ///         _ => Ok(c[0]),
    ///     }
    /// }, &|status: &u16| *status == 429 || *status >= 500);
    /// assert_eq!(r, Ok(Ok(vec![7])));
    /// assert_eq!(CALLS.load(Ordering::Relaxed), 2);
    /// ```
    pub fn try_map_retrying<I, S, T, E>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: impl Fn(I::Chunk, S) -> Result<T, E> + Sync,
        retry_if: &(dyn Fn(&E) -> bool + Sync),
    ) -> Result<Result<Vec<T>, E>, ChunkError>
    where
        I: Chunkable,
        I::Chunk: Clone,
        S: Send + Clone,
        T: Send,
        E: Send + std::fmt::Debug,
    {
        let call = self.resolve();
        let judge = |r: &Result<T, E>| retry_judge(r, retry_if);
        let copy = |item: &(I::Chunk, S)| item.clone();
        let outcomes = backends::run(
            Begun::new(&call, input, state),
            Body {
                f: &f,
                judge: &judge,
                copy: Some(&copy),
            },
        );
        call.settle_try(outcomes)
    }

    /// For an async body: runs `f` on every chunk as a future on the caller's executor, at most
    /// `workers` in flight (one on serial), and gives the results in chunk order, or the first
    /// failed chunk in chunk order. This is what `#[parallel_chunks]` on an `async fn` calls.
    ///
    /// ```
    /// use decor::Plan;
    /// let lens = pollster::block_on(Plan::new().chunks(3).workers(3).map_async_checked(
    ///     "a bb ccc",
    ///     || (),
    ///     &|c: &str, ()| async move { c.len() },
    /// ));
    /// assert_eq!(lens.unwrap().iter().sum::<usize>(), 8);
    /// ```
    pub async fn map_async_checked<I, S, R, F, Fut>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: &F,
    ) -> Result<Vec<R>, ChunkError>
    where
        I: Chunkable,
        F: Fn(I::Chunk, S) -> Fut,
        Fut: std::future::Future<Output = R>,
    {
        let call = self.resolve();
        let keep = |_: &R| Judged::Keep;
        let outcomes = backends::concurrent::run(
            Begun::futures(&call, input, state),
            Body {
                f,
                judge: &keep,
                copy: None,
            },
        )
        .await;
        call.settle(outcomes)
    }

    /// [`map_async_checked`](Self::map_async_checked) for chunks returning `Result`: the `Ok`
    /// values, or whichever comes first in chunk order of an `Err` (inner) and a failed chunk
    /// (outer); after either, no further chunk starts.
    pub async fn try_map_async_checked<I, S, T, E, F, Fut>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: &F,
    ) -> Result<Result<Vec<T>, E>, ChunkError>
    where
        I: Chunkable,
        F: Fn(I::Chunk, S) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let call = self.resolve();
        let outcomes = backends::concurrent::run(
            Begun::futures(&call, input, state),
            Body {
                f,
                judge: &stop_on_err,
                copy: None,
            },
        )
        .await;
        call.settle_try(outcomes)
    }

    /// [`try_map_async_checked`](Self::try_map_async_checked) with retries, as
    /// [`try_map_retrying`](Self::try_map_retrying): a chunk waits out its backoff on a timer
    /// that wakes the call's task, never blocking the executor's thread, while other chunks run.
    pub async fn try_map_async_retrying<I, S, T, E, F, Fut>(
        &self,
        input: I,
        state: impl FnMut() -> S,
        f: &F,
        retry_if: &(dyn Fn(&E) -> bool + Sync),
    ) -> Result<Result<Vec<T>, E>, ChunkError>
    where
        I: Chunkable,
        I::Chunk: Clone,
        S: Clone,
        E: std::fmt::Debug,
        F: Fn(I::Chunk, S) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let call = self.resolve();
        let judge = |r: &Result<T, E>| retry_judge(r, retry_if);
        let copy = |item: &(I::Chunk, S)| item.clone();
        let outcomes = backends::concurrent::run(
            Begun::futures(&call, input, state),
            Body {
                f,
                judge: &judge,
                copy: Some(&copy),
            },
        )
        .await;
        call.settle_try(outcomes)
    }

    /// Runs `f` on every chunk and hands each outcome to `on_done` on the calling thread as soon as
    /// its chunk completes, with the chunk's index, like Python's `as_completed`.
    ///
    /// Every chunk runs; a chunk that panics is handed over as a [`ChunkError`] and the others go
    /// on, so nothing is lost.
    ///
    /// ```
    /// use decor::Plan;
    /// let text = "one two three four five six";
    /// let mut seen = Vec::new();
    /// Plan::new().chunks(3).workers(3).as_completed(text, |c: &str| c.len(), |i, r| seen.push((i, r.unwrap())));
    /// seen.sort();
    /// assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    /// assert_eq!(seen.iter().map(|(_, n)| n).sum::<usize>(), text.len());
    /// ```
    pub fn as_completed<I, R>(
        &self,
        input: I,
        f: impl Fn(I::Chunk) -> R + Sync,
        on_done: impl FnMut(usize, Result<R, ChunkError>),
    ) where
        I: Chunkable,
        R: Send,
    {
        backends::stream(&self.resolve(), input, &f, on_done);
    }

    /// Runs every chunk, whatever becomes of the others, and returns each chunk's outcome in
    /// chunk order: for work where one failure must not cost the rest (a fan-out of requests).
    ///
    /// ```
    /// use decor::Plan;
    /// let urls = ["a", "b", "boom", "d"];
    /// let outcomes = Plan::new().chunks(4).map_all(&urls[..], |u: &[&str]| {
    ///     if u[0] == "boom" { panic!("request failed") }
    ///     u[0].len()
    /// });
    /// assert_eq!(outcomes.len(), 4);
    /// assert!(outcomes[2].is_err() && outcomes[3].is_ok());
    /// ```
    pub fn map_all<I, R>(
        &self,
        input: I,
        f: impl Fn(I::Chunk) -> R + Sync,
    ) -> Vec<Result<R, ChunkError>>
    where
        I: Chunkable,
        R: Send,
    {
        let mut slots: Vec<Option<Result<R, ChunkError>>> = Vec::new();
        self.as_completed(input, f, |i, r| {
            if slots.len() <= i {
                slots.resize_with(i + 1, || None);
            }
            slots[i] = Some(r);
        });
        slots
            .into_iter()
            .map(|s| s.expect("every chunk runs and is handed over"))
            .collect()
    }
}

/// An `Err` stops the call.
fn stop_on_err<T, E>(r: &Result<T, E>) -> Judged {
    match r {
        Ok(_) => Judged::Keep,
        Err(_) => Judged::Stop,
    }
}

/// An `Err` that `retry_if` accepts is worth another attempt; another stops the call.
fn retry_judge<T, E: std::fmt::Debug>(r: &Result<T, E>, retry_if: &dyn Fn(&E) -> bool) -> Judged {
    match r {
        Ok(_) => Judged::Keep,
        Err(e) if retry_if(e) => Judged::Retry(format!("{e:?}")),
        Err(_) => Judged::Stop,
    }
}

struct Overrides {
    backend: Option<Backend>,
    workers: Option<usize>,
}

/// `DECOR_BACKEND` and `DECOR_WORKERS`, read once per process: the values, or what is wrong.
fn read_once() -> &'static Result<Overrides, String> {
    static OVERRIDES: OnceLock<Result<Overrides, String>> = OnceLock::new();
    OVERRIDES.get_or_init(read_overrides)
}

fn overrides() -> &'static Overrides {
    match read_once() {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

fn read_overrides() -> Result<Overrides, String> {
    let backend = match std::env::var("DECOR_BACKEND") {
        Ok(v) => Some(Backend::parse(&v).ok_or_else(|| {
            format!(
                "DECOR_BACKEND={v:?}: expected \"serial\", \"threads\", \"processes\" or \"mpi\""
            )
        })?),
        Err(_) => None,
    };
    let workers = match std::env::var("DECOR_WORKERS") {
        Ok(v) => match v.trim().parse() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(format!(
                    "DECOR_WORKERS={v:?}: expected a whole number of at least 1"
                ));
            }
        },
        Err(_) => None,
    };
    Ok(Overrides { backend, workers })
}

/// Checks `DECOR_BACKEND` and `DECOR_WORKERS` before `main` (the attribute registers a
/// constructor that calls this): a bad value ends the program at once with a message naming the
/// variable and what it accepts, before any work is done.
pub(crate) fn check_overrides_or_exit() {
    if let Err(e) = read_once() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
