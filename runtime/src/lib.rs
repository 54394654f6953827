//! # decor: attribute decorators for Rust functions
//!
//! Put an attribute on a function and get timing, structured logs or parallelism, without
//! touching its body:
//!
//! ```
//! use decor::{logged, timed};
//!
//! #[timed(warn_over = "250ms")]
//! #[logged(skip(password), max_len = 64)]
//! fn login(user: &str, password: &str) -> Result<u64, String> {
//!     if password == "hunter2" { Ok(42) } else { Err(format!("wrong password for {user}")) }
//! }
//!
//! let _guard = decor::trace::init(); // readable lines on stderr, filtered by RUST_LOG
//! assert_eq!(login("ana", "hunter2"), Ok(42));
//! assert!(login("bob", "1234").is_err());
//! println!("{}", decor::stats::report());
//! ```
//!
//! - [`#[timed]`](macro@timed): one event per call (`login took 1.23ms`), and per-function statistics in
//!   [`stats`], with or without a subscriber.
//! - [`#[logged]`](macro@logged): a span per call with the arguments, an event with the return value or
//!   the error, a report of panics; values are cut at `max_len` characters while formatting.
//! - [`#[parallel_chunks]`](macro@parallel_chunks): the input cut into chunks, the body run on each
//!   on threads, on worker processes of the same executable, or serially; the results combined in
//!   chunk order. By hand with [`Plan`]; results as they complete with [`Plan::as_completed`],
//!   written in order with [`sink::OrderedWriter`]; inputs shared with workers without a copy in
//!   [`shm::SharedVec`]; a failed chunk as a [`ChunkError`].
//! - [`trace`]: subscribers for stderr, JSON lines and Chrome trace files.
//!
//! The attributes are thin: each expands into a few calls of this crate ([`timed::TimedSite`],
//! [`logged::LoggedSite`], [`Plan`]), which you can also write by hand; the docs show both forms.
//! Generated code names `::decor::…` only, so `decor` is the one dependency you need.
//!
//! # How a call flows
//!
//! For a newcomer to the code, a `#[parallel_chunks]` call in the order it runs, one file each:
//!
//! 1. **Attribute** (`decor-macros`, `macros/src/parallel/`): reads the options, classifies the
//!    signature once (which parameter is cut, which are shared or owned), checks every rule, then
//!    generates a `static` [`Plan`] and a call on it.
//! 2. **Plan** (`plan.rs`): the builder the attribute filled in, and the environment overrides
//!    (`DECOR_BACKEND`, `DECOR_WORKERS`); at each call it resolves into a `Call`.
//! 3. **Resolved call** (`call.rs`): function, backend, cut, workers, timeout, retries; the
//!    `parallel_chunks` and `chunk` spans, [`current_chunk`], each chunk's outcome, and the
//!    assembly of the outcomes in chunk order into the result or the first [`ChunkError`].
//! 4. **Backend** (`backends/`): `serial.rs`, `threads.rs`, `concurrent.rs`, and the two
//!    transports that leave the process, `processes/` and `mpi.rs`, each take the resolved call
//!    and return every chunk's outcome; `backends/mod.rs` picks one. The transports share one
//!    remote path (`remote/`: the wire protocol, entries by address, the parameters and chunks as
//!    they cross, the worker's answer), and shared memory is `shm/`, below both.
//! 5. **Result**: back in `call.rs`, the outcomes become the function's `Vec` (or `Result`),
//!    which the attribute's reduction ([`reduce`]) combines.
//!
//! A new backend is one module in `backends/` and one arm where the backend is chosen.

pub mod chunks;
pub mod fmt;
pub mod logged;
pub mod progress;
pub mod reduce;
pub mod retry;
pub mod sink;

pub mod shm;
pub mod stats;
pub mod timed;
pub mod trace;

mod backends;
mod call;
mod callsite;
mod clock;
mod error;
mod plan;
mod preview;
mod recorded;
mod remote;

#[doc(hidden)]
pub mod __private;

pub use call::{Backend, ChunkInfo, current_chunk};
pub use error::{ChunkError, ChunkFailure};
pub use plan::Plan;
pub use remote::by_hand::RemoteInput;
pub use tracing_core::Level;

/// How many MPI ranks serve the chunks of `backend = "mpi"` functions: `K - 1` on rank 0 of
/// `mpirun -n K` (K > 1), else 0, also when decor is built without its `mpi` feature.
///
/// ```
/// // Not started by mpirun: `backend = "mpi"` functions run on processes.
/// assert_eq!(decor::mpi_serving_ranks(), 0);
/// ```
pub fn mpi_serving_ranks() -> usize {
    #[cfg(feature = "mpi")]
    return backends::mpi::serving_ranks();
    #[cfg(not(feature = "mpi"))]
    return 0;
}

/// The `tracing` crate, so that a body can log without a dependency of its own:
/// `decor::tracing::info!(rows, "loaded")`. Events from chunk bodies on worker processes reach
/// the parent's subscriber.
///
/// ```
/// #[decor::parallel_chunks(chunks = 2, reduce = "sum")]
/// fn count(xs: &[u8]) -> usize {
///     decor::tracing::debug!(len = xs.len(), "counting");
///     xs.len()
/// }
/// assert_eq!(count(&[1, 2, 3]), 3);
/// ```
pub use tracing;

/// The `serde` crate, so that types crossing to worker processes derive its traits without a
/// dependency of their own; point the derive at it with `#[serde(crate = "decor::serde")]`.
///
/// ```
/// use decor::serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// #[serde(crate = "decor::serde")]
/// struct Settings {
///     factor: u64,
/// }
///
/// #[decor::parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
/// fn scaled(xs: &[u64], settings: &Settings) -> u64 {
///     xs.iter().map(|x| x * settings.factor).sum()
/// }
///
/// assert_eq!(scaled(&[1, 2, 3], &Settings { factor: 3 }), 18);
/// ```
pub use serde;

#[doc = include_str!("../doc/timed.md")]
pub use decor_macros::timed;

#[doc = include_str!("../doc/logged.md")]
pub use decor_macros::logged;

#[doc = include_str!("../doc/parallel_chunks.md")]
pub use decor_macros::parallel_chunks;
