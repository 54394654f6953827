//! Writing the results of chunks to one output, in chunk order, while the work goes on.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// Takes `(chunk_index, bytes)` from any thread and writes them to an [`io::Write`] strictly in
/// chunk order, as soon as each prefix is complete.
///
/// Chunk 0 is written as soon as it arrives; chunk 5, arriving before chunk 4, waits in memory
/// until 4 is written. So the file grows while work goes on, in order, never interleaved, and on a
/// failure everything before the first missing chunk is already written. [`finish`](Self::finish)
/// says which chunk is missing and hands back the ones that were waiting behind it.
///
/// ```
/// use decor::sink::OrderedWriter;
///
/// let out = OrderedWriter::new(Vec::new());
/// std::thread::scope(|s| {
///     for i in (0..4).rev() {
///         let out = &out;
///         s.spawn(move || out.write(i, format!("chunk {i}\n")).unwrap());
///     }
/// });
/// let bytes = out.finish(4).unwrap();
/// assert_eq!(String::from_utf8(bytes).unwrap(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
/// ```
pub struct OrderedWriter<W: Write> {
    state: Mutex<State<W>>,
}

struct State<W> {
    out: W,
    /// The index of the next chunk to write.
    next: usize,
    /// Chunks that arrived before their turn.
    waiting: BTreeMap<usize, Vec<u8>>,
    /// Chunks reported failed, with why.
    failed: BTreeMap<usize, String>,
}

impl<W: Write> fmt::Debug for OrderedWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("OrderedWriter")
            .field("next", &s.next)
            .field("waiting", &s.waiting.keys().collect::<Vec<_>>())
            .field("failed", &s.failed)
            .finish_non_exhaustive()
    }
}

/// What went wrong in an [`OrderedWriter`].
#[derive(Debug)]
pub enum OrderError {
    /// The same chunk was given twice; the second copy was not written.
    Duplicate {
        /// The chunk.
        chunk: usize,
    },
    /// At [`finish`](OrderedWriter::finish), a chunk never arrived: everything before it is
    /// written, `waiting` holds the chunks that came after it, unwritten, nothing is lost.
    Missing {
        /// The first chunk that never arrived.
        chunk: usize,
        /// How many chunks were expected.
        expected: usize,
        /// Why, if the chunk was reported failed with [`OrderedWriter::fail`].
        reason: Option<String>,
        /// Chunks after the missing one, in order, with their bytes.
        waiting: Vec<(usize, Vec<u8>)>,
    },
    /// More chunks arrived than [`finish`](OrderedWriter::finish) expected.
    Unexpected {
        /// The first chunk past the expected count.
        chunk: usize,
        /// How many chunks were expected.
        expected: usize,
    },
    /// The underlying writer failed.
    Io(io::Error),
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Duplicate { chunk } => write!(f, "chunk {chunk} was written twice"),
            OrderError::Missing {
                chunk,
                expected,
                reason,
                waiting,
            } => {
                write!(
                    f,
                    "chunk {chunk} of {expected} is missing: chunks 0..{chunk} are written"
                )?;
                if let Some(r) = reason {
                    write!(f, "; chunk {chunk} failed: {r}")?;
                }
                if !waiting.is_empty() {
                    write!(f, "; {} later chunks are held back", waiting.len())?;
                }
                Ok(())
            }
            OrderError::Unexpected { chunk, expected } => {
                write!(f, "chunk {chunk} arrived but only {expected} were expected")
            }
            OrderError::Io(e) => write!(f, "writing chunks failed: {e}"),
        }
    }
}

impl std::error::Error for OrderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OrderError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// So that `?` works in functions returning `io::Result`; the message is kept.
impl From<OrderError> for io::Error {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

impl From<io::Error> for OrderError {
    fn from(e: io::Error) -> Self {
        OrderError::Io(e)
    }
}

impl<W: Write> OrderedWriter<W> {
    /// Writes to `out`, starting with chunk 0.
    pub fn new(out: W) -> Self {
        OrderedWriter {
            state: Mutex::new(State {
                out,
                next: 0,
                waiting: BTreeMap::new(),
                failed: BTreeMap::new(),
            }),
        }
    }

    /// Hands over chunk `index`: written now if every chunk before it is, else kept until then.
    ///
    /// Errors: the chunk was already given ([`OrderError::Duplicate`]), or the writer failed
    /// while writing this chunk or chunks it released.
    pub fn write(&self, index: usize, bytes: impl Into<Vec<u8>>) -> Result<(), OrderError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if index < s.next || s.waiting.contains_key(&index) {
            return Err(OrderError::Duplicate { chunk: index });
        }
        s.waiting.insert(index, bytes.into());
        let state = &mut *s;
        while let Some(bytes) = state.waiting.remove(&state.next) {
            if let Err(e) = state.out.write_all(&bytes) {
                // Keep the chunk so that nothing is lost; the caller sees the error.
                state.waiting.insert(state.next, bytes);
                return Err(e.into());
            }
            state.next += 1;
        }
        if state.waiting.is_empty() {
            state.out.flush()?;
        }
        Ok(())
    }

    /// Records that chunk `index` failed, so that [`finish`](Self::finish) can say why it is
    /// missing.
    pub fn fail(&self, index: usize, reason: impl fmt::Display) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.failed.insert(index, reason.to_string());
    }

    /// How many chunks, from 0, are written.
    pub fn written(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).next
    }

    /// Flushes and returns the writer if chunks `0..expected` were all written.
    ///
    /// Otherwise [`OrderError::Missing`] names the first missing chunk (with its failure, if it was
    /// reported) and returns the chunks held back behind it; what was complete is already written.
    pub fn finish(self, expected: usize) -> Result<W, OrderError> {
        let mut s = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        s.out.flush()?;
        if s.next < expected {
            let chunk = s.next;
            return Err(OrderError::Missing {
                chunk,
                expected,
                reason: s.failed.remove(&chunk),
                waiting: s.waiting.into_iter().collect(),
            });
        }
        if let Some(&chunk) = s.waiting.keys().next() {
            return Err(OrderError::Unexpected { chunk, expected });
        }
        if s.next > expected {
            return Err(OrderError::Unexpected {
                chunk: expected,
                expected,
            });
        }
        Ok(s.out)
    }
}
