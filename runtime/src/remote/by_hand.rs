//! [`Plan::map_remote`](crate::Plan::map_remote): a plain function over the chunks of an input,
//! on any backend. The worker runs an entry monomorphized for the input's and result's types,
//! which calls the user's function at the address the parent sent: both are offsets within the
//! executable, checked like any entry (see [`entry`](super::entry)).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::entry::EntryFn;
use super::input::{ChunkInput, encode_result};
use super::outgoing::{OutgoingChunks, prepare_file, prepare_text, prepare_values};
use crate::call::Call;
use crate::chunks::Chunkable;
use crate::shm::MappedFile;

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for &[T] {}
    impl<T> Sealed for &Vec<T> {}
    impl Sealed for &str {}
    impl Sealed for &String {}
    impl Sealed for &crate::shm::MappedFile {}
}

/// An input [`Plan::map_remote`](crate::Plan::map_remote) can send to worker processes and MPI
/// ranks: a `&[T]` or `&Vec<T>` of serde values (numbers read in place from shared memory, other
/// values encoded per chunk), a `&str` or `&String` (read in place), or a
/// [`&MappedFile`](crate::shm::MappedFile) (mapped by the workers).
pub trait RemoteInput<'a>: Chunkable + sealed::Sealed {
    #[doc(hidden)]
    fn __prepare(self, call: &Call) -> Result<OutgoingChunks<'a>, String>;
    #[doc(hidden)]
    fn __entry<R: Serialize>() -> EntryFn;
}

impl<'a, T> RemoteInput<'a> for &'a [T]
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn __prepare(self, call: &Call) -> Result<OutgoingChunks<'a>, String> {
        prepare_values(call, self)
    }
    fn __entry<R: Serialize>() -> EntryFn {
        slice_entry::<T, R>
    }
}

impl<'a, T> RemoteInput<'a> for &'a Vec<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn __prepare(self, call: &Call) -> Result<OutgoingChunks<'a>, String> {
        prepare_values(call, self.as_slice())
    }
    fn __entry<R: Serialize>() -> EntryFn {
        slice_entry::<T, R>
    }
}

impl<'a> RemoteInput<'a> for &'a String {
    fn __prepare(self, call: &Call) -> Result<OutgoingChunks<'a>, String> {
        prepare_text(call, self)
    }
    fn __entry<R: Serialize>() -> EntryFn {
        text_entry::<R>
    }
}

impl<'a> RemoteInput<'a> for &'a MappedFile {
    fn __prepare(self, call: &Call) -> Result<OutgoingChunks<'a>, String> {
        prepare_file(call, self)
    }
    fn __entry<R: Serialize>() -> EntryFn {
        file_entry::<R>
    }
}

impl<'a> RemoteInput<'a> for &'a str {
    fn __prepare(self, call: &Call) -> Result<OutgoingChunks<'a>, String> {
        prepare_text(call, self)
    }
    fn __entry<R: Serialize>() -> EntryFn {
        text_entry::<R>
    }
}

fn slice_entry<T, R>(input: &ChunkInput<'_>) -> Result<Vec<u8>, String>
where
    T: DeserializeOwned + Clone + 'static,
    R: Serialize,
{
    if input.body == 0 {
        return Err("no function to run".into());
    }
    // SAFETY: `body` is the address of the `fn(&[T]) -> R` the parent passed to `map_remote`
    // together with this entry, which it monomorphized for the same `T` and `R` (one build,
    // checked at the handshake; inside the executable's code, checked by `answer`). Lifetimes
    // are erased: the function is called with a shorter-lived slice than it was typed for, and
    // its result owns its data (`DeserializeOwned` on the parent's side).
    let f = unsafe { std::mem::transmute_copy::<usize, for<'x> fn(&'x [T]) -> R>(&input.body) };
    let xs = input.chunk().values::<T>()?;
    encode_result(&f(xs.as_slice()))
}

fn text_entry<R: Serialize>(input: &ChunkInput<'_>) -> Result<Vec<u8>, String> {
    if input.body == 0 {
        return Err("no function to run".into());
    }
    // SAFETY: as in `slice_entry`, for a `fn(&str) -> R`.
    let f = unsafe { std::mem::transmute_copy::<usize, for<'x> fn(&'x str) -> R>(&input.body) };
    let text = input.chunk().text()?;
    encode_result(&f(text.as_str()))
}

fn file_entry<R: Serialize>(input: &ChunkInput<'_>) -> Result<Vec<u8>, String> {
    if input.body == 0 {
        return Err("no function to run".into());
    }
    // SAFETY: as in `slice_entry`, for a `fn(&MappedFile) -> R`.
    let f =
        unsafe { std::mem::transmute_copy::<usize, for<'x> fn(&'x MappedFile) -> R>(&input.body) };
    let file = MappedFile::lent(input.chunk().bytes());
    encode_result(&f(&file))
}
