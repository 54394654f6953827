//! What a worker's entry reads: the pieces of one chunk's call (the cut chunk, the other
//! parameters), each either bytes in place (shared memory, a mapped file, an MPI buffer) or a
//! value encoded with serde, and the ways to turn a piece back into what the body takes.

use std::any::TypeId;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One parameter's or the chunk's bytes in a worker.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    pub(crate) bytes: &'a [u8],
    /// The bytes are the data itself (plain data or UTF-8 in place), not `postcard`.
    pub(crate) raw: bool,
}

impl<'a> Piece<'a> {
    /// The bytes as they arrived.
    pub fn bytes(self) -> &'a [u8] {
        self.bytes
    }

    /// The value, decoded with serde.
    pub fn decode<T: DeserializeOwned>(self) -> Result<T, String> {
        if self.raw {
            return Err("expected encoded data, got raw bytes".into());
        }
        postcard::from_bytes(self.bytes).map_err(|e| e.to_string())
    }

    /// A slice of plain data: borrowed in place when the bytes are raw and aligned, else copied
    /// or decoded.
    pub fn pod<T: bytemuck::Pod>(self) -> Result<SliceArg<'a, T>, String> {
        if !self.raw {
            return Err("expected raw bytes, got encoded data".into());
        }
        match bytemuck::try_cast_slice::<u8, T>(self.bytes) {
            Ok(s) => Ok(SliceArg::Borrowed(s)),
            Err(bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned) => {
                Ok(SliceArg::Owned(bytemuck::pod_collect_to_vec(self.bytes)))
            }
            Err(e) => Err(format!("{e:?}")),
        }
    }

    /// Text: borrowed in place when the bytes are raw (after a UTF-8 check), else decoded.
    pub fn text(self) -> Result<StrArg<'a>, String> {
        if self.raw {
            return std::str::from_utf8(self.bytes)
                .map(StrArg::Borrowed)
                .map_err(|e| format!("text: {e}"));
        }
        self.decode::<String>().map(StrArg::Owned)
    }

    /// A slice of serde values; numbers (the primitive types) borrowed in place when raw.
    pub fn values<T: DeserializeOwned + 'static>(self) -> Result<SliceArg<'a, T>, String> {
        if self.raw {
            return with_primitive::<T, _>(PodTake(self))
                .unwrap_or_else(|| Err("raw bytes for values that are not plain numbers".into()));
        }
        self.decode::<Vec<T>>().map(SliceArg::Owned)
    }
}

/// The input of one chunk in a worker, as the entry reads it.
#[derive(Debug)]
pub struct ChunkInput<'a> {
    pub(crate) args: Vec<Piece<'a>>,
    pub(crate) chunk: Piece<'a>,
    /// The user's function of `map_remote`, at its address here; 0 for an attribute's entry.
    pub(crate) body: usize,
    /// Set by the entry when the body's `Err` is one `retry_if` accepts: how it reads.
    pub(crate) retry: std::cell::RefCell<Option<String>>,
}

impl<'a> ChunkInput<'a> {
    /// The cut parameter's chunk.
    pub fn chunk(&self) -> Piece<'a> {
        self.chunk
    }

    /// The `k`-th parameter other than the cut one.
    pub fn arg(&self, k: usize) -> Result<Piece<'a>, String> {
        self.args
            .get(k)
            .copied()
            .ok_or_else(|| format!("argument {k}: not sent"))
    }

    /// Says that the body returned an `Err` worth another attempt (`retry_if` accepts it), as
    /// `error` reads in a log: the caller runs the chunk again while `retries` lasts.
    pub fn ask_retry(&self, error: String) {
        *self.retry.borrow_mut() = Some(error);
    }
}

/// A slice in a worker: borrowed in place, or decoded.
#[derive(Debug)]
pub enum SliceArg<'a, T> {
    /// Straight from shared memory.
    Borrowed(&'a [T]),
    /// Decoded from the message.
    Owned(Vec<T>),
}

impl<T> SliceArg<'_, T> {
    /// The slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            SliceArg::Borrowed(s) => s,
            SliceArg::Owned(v) => v,
        }
    }
}

impl<T: Clone> SliceArg<'_, T> {
    /// The elements as a `Vec` (a copy when borrowed).
    pub fn into_vec(self) -> Vec<T> {
        match self {
            SliceArg::Borrowed(s) => s.to_vec(),
            SliceArg::Owned(v) => v,
        }
    }
}

/// Text in a worker: borrowed in place, or decoded.
#[derive(Debug)]
pub enum StrArg<'a> {
    /// Straight from shared memory.
    Borrowed(&'a str),
    /// Decoded from the message.
    Owned(String),
}

impl StrArg<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            StrArg::Borrowed(s) => s,
            StrArg::Owned(s) => s,
        }
    }

    /// The text as a `String` (a copy when borrowed).
    pub fn into_string(self) -> String {
        match self {
            StrArg::Borrowed(s) => s.to_owned(),
            StrArg::Owned(s) => s,
        }
    }
}

/// Encodes a value for the other process.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| e.to_string())
}

/// Something to do with a slice of `T` once `T` is known to be one primitive number type `P`.
pub(crate) trait OnPrimitive<T> {
    type Out;
    fn run<P: bytemuck::Pod>(self) -> Self::Out;
}

/// Runs `op` with `P = T` when `T` is a primitive number type (whose slices are plain bytes), by
/// its `TypeId`; `None` for any other type.
pub(crate) fn with_primitive<T: 'static, O: OnPrimitive<T>>(op: O) -> Option<O::Out> {
    macro_rules! each {
        ($($p:ty),*) => {$(
            if TypeId::of::<T>() == TypeId::of::<$p>() {
                return Some(op.run::<$p>());
            }
        )*};
    }
    each!(
        u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
    );
    None
}

struct PodTake<'a>(Piece<'a>);

impl<'a, T: 'static> OnPrimitive<T> for PodTake<'a> {
    type Out = Result<SliceArg<'a, T>, String>;
    fn run<P: bytemuck::Pod>(self) -> Self::Out {
        let taken: SliceArg<'a, P> = self.0.pod::<P>()?;
        // SAFETY: `with_primitive` calls this only with `P` = `T` (their `TypeId`s are equal), so
        // this changes the type's name only.
        Ok(unsafe {
            std::mem::transmute_copy::<SliceArg<'a, P>, SliceArg<'a, T>>(
                &std::mem::ManuallyDrop::new(taken),
            )
        })
    }
}
