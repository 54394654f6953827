//! What `#[parallel_chunks]` expands into for a call that may leave the process (on processes or
//! MPI, asked for or moved there by `DECOR_BACKEND`): how each parameter crosses, chosen at the
//! expansion site by autoref on its type, the call itself, and the worker's side of the entry.
//!
//! Every choice has a last resort that compiles for any type and says why the call cannot leave
//! the process, so that a function whose types are not serde still compiles and stays on
//! threads under `DECOR_BACKEND` (with one WARN naming it and the type); `backend = "processes"`
//! written on the function instead makes that a compile error, through [`crosses`].

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::{Call, Outcome};
use crate::error::ChunkError;

pub use crate::backends::takeover::worker_main;
pub use crate::remote::entry::EntryFn;
pub use crate::remote::input::{ChunkInput, Piece, SliceArg, StrArg, encode, encode_result};
pub use crate::remote::outgoing::{
    Args, OutgoingChunks, Remote, prepare_bytes, prepare_file, prepare_pod, prepare_serde,
    prepare_serde_values, prepare_text,
};

/// For tests: workers start from `program` instead of this executable (`None`: this one again).
pub fn start_workers_from(program: Option<std::path::PathBuf>) {
    *crate::backends::processes::child::WORKER_PROGRAM
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = program;
}

/// This build's identity, as workers and ranks compare it.
pub fn build_id() -> &'static [u8] {
    crate::remote::entry::build_id()
}

/// Every chunk's outcome of a remote call, in chunk order.
pub struct Outcomes<R>(Vec<Outcome<R>>);

impl<R> std::fmt::Debug for Outcomes<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outcomes({})", self.0.len())
    }
}

/// The results in chunk order, or the first failed chunk in chunk order.
pub fn settle<R>(call: &Call, outcomes: Outcomes<R>) -> Result<Vec<R>, ChunkError> {
    call.settle(outcomes.0)
}

/// For chunks returning `Result`: the `Ok` values, or whichever comes first in chunk order of
/// an `Err` and a failed chunk.
pub fn settle_try<T, E>(
    call: &Call,
    outcomes: Outcomes<Result<T, E>>,
) -> Result<Result<Vec<T>, E>, ChunkError> {
    call.settle_try(outcomes.0)
}

/// Whether a resolved call leaves this process: processes or MPI. One that does wakes its
/// sleeping workers now, so that their wake-up overlaps the preparing of its chunks.
pub fn leaves_process(call: &Call) -> bool {
    let leaves = call.backend().leaves_process();
    if leaves {
        crate::backends::wake_ahead(call);
    }
    leaves
}

/// Says once, at WARN, that the function runs on threads and why; the attribute then runs the
/// call on threads.
pub fn stays_here(call: &Call, why: &str) {
    crate::backends::stays_here(call, why);
}

/// Picks, at the expansion site, how a value (a parameter, a chunk, the result) crosses:
/// `(&&Via::<T>::new()).__decor_…`.
pub struct Via<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> Via<T> {
    /// The marker.
    pub const fn new() -> Self {
        Via(PhantomData)
    }
}

impl<T: ?Sized> Default for Via<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// How a value crosses, both sides: what a crossing way trait's impl gives; no way (`None`) for
/// a type that cannot cross.
pub struct ValueWay<T> {
    arg: fn(&mut Args, &T),
    take: fn(Piece<'_>) -> Result<T, String>,
    encode: fn(&T) -> Result<Vec<u8>, String>,
    run: RunRemote<T>,
}

/// A call on the transport: what runs, its parameters and its chunks, to every chunk's outcome.
type RunRemote<T> =
    fn(&Call, Result<Remote, String>, Args, Result<OutgoingChunks<'_>, String>) -> Vec<Outcome<T>>;

macro_rules! value_way {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub trait $name<T> {
            /// How it crosses, if it can.
            fn __decor_way(&self) -> Option<ValueWay<T>>;
            /// Why it cannot cross, if it cannot.
            fn __decor_unfit(&self) -> Option<String> {
                self.__decor_way().is_none().then(not_serde::<T>)
            }
            /// The parent's side of a parameter.
            fn __decor_arg(&self, args: &mut Args, value: &T) {
                match self.__decor_way() {
                    Some(way) => (way.arg)(args, value),
                    None => args.unfit(not_serde::<T>()),
                }
            }
            /// The worker's side of a parameter or chunk.
            fn __decor_take(&self, piece: Piece<'_>) -> Result<T, String> {
                (self.__decor_way().ok_or_else(not_serde::<T>)?.take)(piece)
            }
            /// The worker's side of the result.
            fn __decor_encode(&self, value: &T) -> Result<Vec<u8>, String> {
                (self.__decor_way().ok_or_else(not_serde::<T>)?.encode)(value)
            }
            /// The call on the transport (never made without a way: the call stays on threads).
            fn __decor_run(
                &self,
                call: &Call,
                remote: Result<Remote, String>,
                args: Args,
                chunks: Result<OutgoingChunks<'_>, String>,
            ) -> Outcomes<T> {
                Outcomes(match self.__decor_way() {
                    Some(way) => (way.run)(call, remote, args, chunks),
                    None => vec![Outcome::Failed(crate::error::ChunkFailure::BadData(
                        not_serde::<T>(),
                    ))],
                })
            }
        }
    };
}

value_way!(
    /// Serde values: encoded.
    ViaSerde
);
value_way!(
    /// Anything else: cannot cross, and says so (never run: the call stays on threads).
    ViaNothing
);

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for &Via<T> {
    fn __decor_way(&self) -> Option<ValueWay<T>> {
        Some(ValueWay {
            arg: |args, value| args.value(value),
            take: |piece| piece.decode(),
            encode: |value| encode_result(value),
            run: |call, remote, args, chunks| {
                crate::backends::run_remote(call, remote, args, chunks)
            },
        })
    }
}

impl<T> ViaNothing<T> for Via<T> {
    fn __decor_way(&self) -> Option<ValueWay<T>> {
        None
    }
}

fn not_serde<T: ?Sized>() -> String {
    format!(
        "`{}` does not implement serde's `Serialize` and `DeserializeOwned` (with the bounds in scope), so it cannot cross to another process",
        std::any::type_name::<T>()
    )
}

/// Picks, at the expansion site, how a `&[T]` (cut or shared) crosses: through shared memory for
/// plain data (`bytemuck::Pod`), else encoded, else not at all:
/// `(&&&SliceOf::<T>::new()).__decor_…`.
pub struct SliceOf<T>(PhantomData<T>);

impl<T> SliceOf<T> {
    /// The marker.
    pub const fn new() -> Self {
        SliceOf(PhantomData)
    }
}

impl<T> Default for SliceOf<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// How a `&[T]` crosses, both sides: what a slice way trait's impl gives; no way (`None`) for
/// elements that cannot cross.
pub struct SliceWay<T> {
    prepare: for<'a> fn(&Call, &'a [T]) -> Result<OutgoingChunks<'a>, String>,
    arg: fn(&mut Args, &[T]),
    take: for<'a> fn(Piece<'a>) -> Result<SliceArg<'a, T>, String>,
    take_vec: fn(Piece<'_>) -> Result<Vec<T>, String>,
}

macro_rules! slice_way {
    ($(#[$doc:meta])* $name:ident $(where $bound:ident)?) => {
        $(#[$doc])*
        pub trait $name<T> {
            /// How the slice crosses, if it can.
            fn __decor_way(&self) -> Option<SliceWay<T>>;
            /// Why it cannot cross, if it cannot.
            fn __decor_unfit(&self) -> Option<String> {
                self.__decor_way().is_none().then(not_serde::<T>)
            }
            /// The parent's side of a cut slice.
            fn __decor_prepare<'a>(
                &self,
                call: &Call,
                xs: &'a [T],
            ) -> Result<OutgoingChunks<'a>, String> {
                (self.__decor_way().ok_or_else(not_serde::<T>)?.prepare)(call, xs)
            }
            /// The parent's side of a shared slice.
            fn __decor_arg(&self, args: &mut Args, xs: &[T]) {
                match self.__decor_way() {
                    Some(way) => (way.arg)(args, xs),
                    None => args.unfit(not_serde::<T>()),
                }
            }
            /// The worker's side.
            fn __decor_take<'a>(&self, piece: Piece<'a>) -> Result<SliceArg<'a, T>, String> {
                (self.__decor_way().ok_or_else(not_serde::<T>)?.take)(piece)
            }
            /// The worker's side of a `Vec<T>`.
            fn __decor_take_vec(&self, piece: Piece<'_>) -> Result<Vec<T>, String> {
                (self.__decor_way().ok_or_else(not_serde::<T>)?.take_vec)(piece)
            }
            /// On `backend = "processes"` or `"mpi"` written in the attribute: a compile error
            /// unless the elements can cross.
            fn __decor_must_cross(&self)
            $(where
                T: $bound)?
            {
            }
        }
    };
}

slice_way!(
    /// Plain data: shared memory.
    SliceViaSharedMemory
);
slice_way!(
    /// Serde values: encoded.
    SliceViaSerde
);
slice_way!(
    /// Anything else: cannot cross.
    SliceViaNothing where Crosses
);

impl<T: bytemuck::Pod> SliceViaSharedMemory<T> for &&SliceOf<T> {
    fn __decor_way(&self) -> Option<SliceWay<T>> {
        Some(SliceWay {
            prepare: |call, xs| prepare_pod(call, xs),
            arg: |args, xs| args.pod(xs),
            take: |piece| piece.pod(),
            take_vec: |piece| piece.pod().map(SliceArg::into_vec),
        })
    }
}

impl<T: Serialize + DeserializeOwned + Sync> SliceViaSerde<T> for &SliceOf<T> {
    fn __decor_way(&self) -> Option<SliceWay<T>> {
        Some(SliceWay {
            prepare: |call, xs| prepare_serde_values(call, xs),
            arg: |args, xs| args.value(xs),
            take: |piece| piece.serde_values().map(SliceArg::Owned),
            take_vec: |piece| piece.serde_values(),
        })
    }
}

impl<T> SliceViaNothing<T> for SliceOf<T> {
    fn __decor_way(&self) -> Option<SliceWay<T>> {
        None
    }
}

/// A value crossing between processes must be serde-serializable both ways.
#[diagnostic::on_unimplemented(
    message = "on `backend = \"processes\"`, `{Self}` crosses between processes, so it must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "sent to or from a worker process",
    note = "derive `Serialize` and `Deserialize` for it, or use `backend = \"threads\"`, where nothing is serialized"
)]
pub trait Crosses {}
impl<T: Serialize + DeserializeOwned> Crosses for T {}

/// Checks, at the parameter's own tokens, that its owned form can cross.
#[inline(always)]
pub fn crosses<T: Crosses>(_: PhantomData<T>) {}
