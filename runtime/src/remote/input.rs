//! What a worker's entry reads: the pieces of one chunk's call (the cut chunk, the other
//! parameters), each either bytes in place (shared memory, a mapped file, an MPI buffer) or a
//! value encoded with serde, and the ways to turn a piece back into what the body takes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::primitive::{OnPrimitive, Same, same_as, with_primitive};
use super::strings;

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

    /// Text: borrowed in place when the bytes are raw, else decoded.
    ///
    /// Raw text is always a range of the caller's own `&str` or `String` of the same function
    /// (the entry is found by offset in the same build), cut at char boundaries, and the caller
    /// holds it borrowed until the call ends: it is UTF-8 already. Checking all of it again
    /// would cost each worker a pass at about 1 GB/s over mixed-script text (a 380 MB
    /// aggregation: 190 ms a call on 2 workers, more than the rest of the crossing), which
    /// threads never pay; so only its two ends are checked, which catches a range that does not
    /// fall on the text's char boundaries.
    pub fn text(self) -> Result<StrArg<'a>, String> {
        if self.raw {
            return utf8_cut(self.bytes).map(StrArg::Borrowed);
        }
        self.decode::<String>().map(StrArg::Owned)
    }

    /// A slice of serde values; numbers (the primitive types) borrowed in place when raw,
    /// `String`s made from their table (see `remote::strings`).
    pub fn values<T: DeserializeOwned + 'static>(self) -> Result<SliceArg<'a, T>, String> {
        if self.raw && same_as::<T, String>().is_none() {
            return with_primitive::<T, _>(PodTake(self))
                .unwrap_or_else(|| Err("raw bytes for values that are not plain numbers".into()));
        }
        self.serde_values().map(SliceArg::Owned)
    }

    /// A slice of serde values other than numbers: `String`s from their table when raw (see
    /// `remote::strings`), anything else decoded.
    pub fn serde_values<T: DeserializeOwned>(self) -> Result<Vec<T>, String> {
        match (self.raw, same_as::<T, String>()) {
            (true, Some(same)) => strings::read_table(self.bytes).map(|v| same.vec_to_t(v)),
            _ => self.decode::<Vec<T>>(),
        }
    }
}

/// How many bytes at each end of a raw text [`utf8_cut`] checks.
const TEXT_ENDS: usize = 64;

/// `bytes`, a range the sender cut from a `str` at char boundaries, as that `str`: its first
/// and last [`TEXT_ENDS`] bytes (widened to whole chars) are checked, the middle is not.
fn utf8_cut(bytes: &[u8]) -> Result<&str, String> {
    let boundary = |i: usize| bytes.get(i).is_none_or(|&b| (b as i8) >= -0x40);
    let head = (TEXT_ENDS.min(bytes.len())..=bytes.len())
        .find(|&i| boundary(i))
        .unwrap_or(bytes.len());
    let tail = (0..=bytes.len().saturating_sub(TEXT_ENDS))
        .rev()
        .find(|&i| boundary(i))
        .unwrap_or(0);
    for end in [&bytes[..head], &bytes[tail.max(head)..]] {
        std::str::from_utf8(end).map_err(|e| format!("text: {e}"))?;
    }
    // SAFETY: the bytes are a range of a `str` the caller holds borrowed for the whole call,
    // cut at char boundaries (see `Piece::text`); both ends were checked above.
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
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

/// Encodes a chunk's result for the parent: a `Vec<String>` as a table (see `remote::strings`),
/// anything else with serde; `decode_result` reads it back.
pub fn encode_result<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    strings::result_table(value).unwrap_or_else(|| encode(value))
}

/// A chunk's result as [`encode_result`] wrote it.
pub(crate) fn decode_result<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, String> {
    strings::from_result_table(bytes)
        .unwrap_or_else(|| postcard::from_bytes(bytes).map_err(|e| e.to_string()))
}

struct PodTake<'a>(Piece<'a>);

impl<'a, T: 'a> OnPrimitive<T> for PodTake<'a> {
    type Out = Result<SliceArg<'a, T>, String>;
    fn run<P: bytemuck::Pod>(self, same: Same<T, P>) -> Self::Out {
        Ok(match self.0.pod::<P>()? {
            SliceArg::Borrowed(s) => SliceArg::Borrowed(same.to_t(s)),
            SliceArg::Owned(v) => SliceArg::Owned(same.vec_to_t(v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> Result<String, String> {
        Piece { bytes, raw: true }.text().map(|t| t.into_string())
    }

    #[test]
    fn raw_text_cut_at_char_boundaries_reads_as_it_was() {
        let s = "São Paulo;12.3\nŘež;-4.0\n".repeat(40);
        for (from, to) in [(0, s.len()), (0, 0), (15, s.len()), (0, 3), (1, 4)] {
            if s.is_char_boundary(from) && s.is_char_boundary(to) {
                assert_eq!(text(&s.as_bytes()[from..to]).unwrap(), &s[from..to]);
            }
        }
    }

    #[test]
    fn raw_text_starting_or_ending_inside_a_char_is_an_error() {
        let s = "São Paulo;12.3\nŘež;-4.0\n".repeat(40);
        let inside = (1..s.len()).find(|&i| !s.is_char_boundary(i)).unwrap();
        let err = text(&s.as_bytes()[inside..]).unwrap_err();
        assert!(err.starts_with("text: "), "{err}");
        assert!(text(&s.as_bytes()[..inside]).is_err());
        let last = (1..s.len())
            .rev()
            .find(|&i| !s.is_char_boundary(i))
            .unwrap();
        assert!(text(&s.as_bytes()[..last]).is_err());
        assert!(text(&[0xff]).is_err());
    }
}
