//! What `#[parallel_chunks]` expands into on every backend: the parameter checks, resolving the
//! plan for one call, and the function's result from the chunks' outcomes.

use crate::call::Call;
use crate::error::ChunkError;
use crate::plan::Plan;

/// A parameter of a `#[parallel_chunks]` function shared by reference with every chunk.
#[diagnostic::on_unimplemented(
    message = "`#[parallel_chunks]` shares this parameter with every chunk, on other threads, so `{Self}` must be `Sync`",
    label = "shared with every chunk",
    note = "wrap what it holds in a `Mutex` or use atomics, or pass an owned `Clone + Send` value instead, which is cloned for each chunk"
)]
pub trait SharedParam {}
impl<T: ?Sized + Sync> SharedParam for T {}

/// A parameter of a `#[parallel_chunks]` function cloned for every chunk.
#[diagnostic::on_unimplemented(
    message = "`#[parallel_chunks]` clones this parameter for every chunk and sends it to another thread, so `{Self}` must be `Clone + Send`",
    label = "cloned for every chunk",
    note = "derive `Clone`, or pass a shared reference `&T` (with `T: Sync`) instead"
)]
pub trait OwnedParam {}
impl<T: Clone + Send> OwnedParam for T {}

/// Checks a shared parameter at its own tokens.
#[inline(always)]
pub fn shared_param<T: SharedParam + ?Sized>(_: &T) {}

/// Checks an owned parameter at its own tokens.
#[inline(always)]
pub fn owned_param<T: OwnedParam>(_: &T) {}

/// Checks the environment overrides before `main`; see the constructor `#[parallel_chunks]`
/// generates.
pub fn check_environment() {
    crate::plan::check_overrides_or_exit();
}

/// The plan for this call, after the environment overrides.
#[inline]
pub fn resolve(plan: &Plan) -> Call {
    plan.resolve()
}

/// The results, or a panic with the failed chunk's message (the function cannot return it).
pub fn or_panic<R>(results: Result<R, ChunkError>) -> R {
    results.unwrap_or_else(|e| panic!("{e}"))
}

/// The function's `Result` (`R = Result<T, E>`): a failed chunk converted with `convert`
/// (`E: From<ChunkError>`), or a panic when the error type has no such conversion.
pub fn or_convert<V, T, E>(
    results: Result<Result<V, E>, ChunkError>,
    convert: fn(ChunkError) -> Option<Result<T, E>>,
) -> Result<V, E> {
    results.unwrap_or_else(|chunk_error| {
        let message = chunk_error.to_string();
        match convert(chunk_error) {
            Some(Err(e)) => Err(e),
            _ => panic!("{message}"),
        }
    })
}

/// Picks, at the expansion site, how a failed chunk becomes the function's error, for a return
/// type `R = Result<T, E>`: `(&&ErrorOf::<R>::new()).__decor_from_chunk_error()`.
pub struct ErrorOf<R>(std::marker::PhantomData<R>);

impl<R> ErrorOf<R> {
    /// The marker.
    pub const fn new() -> Self {
        ErrorOf(std::marker::PhantomData)
    }
}

impl<R> Default for ErrorOf<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// `E: From<ChunkError>`: a failed chunk is returned as `Err`.
pub trait ConvertChunkError<R> {
    /// The conversion.
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<R>;
}

impl<T, E: From<ChunkError>> ConvertChunkError<Result<T, E>> for &ErrorOf<Result<T, E>> {
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<Result<T, E>> {
        |e| Some(Err(E::from(e)))
    }
}

/// Otherwise a failed chunk is a panic.
pub trait PanicOnChunkError<R> {
    /// No conversion.
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<R>;
}

impl<R> PanicOnChunkError<R> for ErrorOf<R> {
    fn __decor_from_chunk_error(&self) -> fn(ChunkError) -> Option<R> {
        |_| None
    }
}

/// What `retry_if = f` must be: a `fn(&E) -> bool` for the function's error type `E`.
#[diagnostic::on_unimplemented(
    message = "`retry_if` must be a `fn(&{E}) -> bool`: it is given each error the function's chunks return, and says whether to run the chunk again",
    label = "not a `fn(&{E}) -> bool`",
    note = "e.g. `fn is_transient(e: &{E}) -> bool {{ … }}` and `retry_if = is_transient`"
)]
pub trait RetryIf<E> {
    /// Whether `e` is worth another attempt.
    fn retry(&self, e: &E) -> bool;
}

impl<E, F: Fn(&E) -> bool> RetryIf<E> for F {
    fn retry(&self, e: &E) -> bool {
        self(e)
    }
}

/// Applies `retry_if = f` to one error, checking `f`'s signature at its own tokens.
#[inline]
pub fn retry_if<E, F: RetryIf<E>>(f: F, e: &E) -> bool {
    f.retry(e)
}
