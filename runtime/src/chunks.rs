//! Cutting an input into contiguous chunks: the inputs `#[parallel_chunks]` can split.
//!
//! A [`Chunkable`] input is cut by a [`Cut`]: a number of chunks (lengths differ by at most one)
//! or a chunk size (every chunk that long but the last). There are never more chunks than
//! elements, and an empty input gives one empty chunk, so the body runs once. A `&str` is measured
//! and cut in characters, never inside one.
//!
//! ```
//! use decor::chunks::{Chunkable, Cut};
//!
//! let xs = [1, 2, 3, 4, 5, 6, 7];
//! let parts = xs.as_slice().cut(Cut::Chunks(3));
//! assert_eq!(parts, [&[1, 2, 3][..], &[4, 5], &[6, 7]]);
//!
//! let text = "añb語c";
//! assert_eq!(text.cut(Cut::ChunkSize(2)), ["añ", "b語", "c"]);
//! assert_eq!(Vec::<u8>::new().cut(Cut::Chunks(4)), [Vec::<u8>::new()]);
//! ```

/// How an input is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// This many chunks (at most one per element), lengths differing by at most one.
    Chunks(usize),
    /// Chunks of this many elements, the last one shorter if need be.
    ChunkSize(usize),
}

impl Cut {
    /// The lengths of the chunks of an input of `len` elements; they add up to `len`.
    ///
    /// ```
    /// use decor::chunks::Cut;
    /// assert_eq!(Cut::Chunks(3).lengths(8), [3, 3, 2]);
    /// assert_eq!(Cut::Chunks(5).lengths(2), [1, 1]);
    /// assert_eq!(Cut::ChunkSize(3).lengths(8), [3, 3, 2]);
    /// assert_eq!(Cut::Chunks(4).lengths(0), [0]);
    /// ```
    pub fn lengths(self, len: usize) -> Vec<usize> {
        if len == 0 {
            return vec![0];
        }
        match self {
            Cut::Chunks(n) => {
                let n = n.clamp(1, len);
                let (base, extra) = (len / n, len % n);
                (0..n).map(|i| base + usize::from(i < extra)).collect()
            }
            Cut::ChunkSize(size) => {
                let size = size.max(1);
                let mut out = vec![size; len / size];
                if !len.is_multiple_of(size) {
                    out.push(len % size);
                }
                out
            }
        }
    }
}

/// An input that can be cut into contiguous chunks of its own kind.
pub trait Chunkable: Sized {
    /// One chunk.
    type Chunk: Send;

    /// The number of elements (characters for a `&str`).
    fn elements(&self) -> usize;

    /// The chunks of the given lengths, in order; the lengths add up to [`elements`](Self::elements).
    fn cut_lengths(self, lengths: &[usize]) -> Vec<Self::Chunk>;

    /// The chunks `cut` makes, in order.
    fn cut(self, cut: Cut) -> Vec<Self::Chunk> {
        let lengths = cut.lengths(self.elements());
        self.cut_lengths(&lengths)
    }
}

impl<'a, T: Sync> Chunkable for &'a [T] {
    type Chunk = &'a [T];

    fn elements(&self) -> usize {
        self.len()
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<&'a [T]> {
        let mut rest = self;
        lengths
            .iter()
            .map(|&n| {
                let (head, tail) = rest.split_at(n);
                rest = tail;
                head
            })
            .collect()
    }
}

impl<'a, T: Send> Chunkable for &'a mut [T] {
    type Chunk = &'a mut [T];

    fn elements(&self) -> usize {
        self.len()
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<&'a mut [T]> {
        let mut rest = self;
        let mut out = Vec::with_capacity(lengths.len());
        for &n in lengths {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            out.push(head);
        }
        out
    }
}

impl<T: Send> Chunkable for Vec<T> {
    type Chunk = Vec<T>;

    fn elements(&self) -> usize {
        self.len()
    }

    fn cut_lengths(mut self, lengths: &[usize]) -> Vec<Vec<T>> {
        let mut out = Vec::with_capacity(lengths.len());
        // From the back, so that each split moves only the tail it keeps.
        for &n in lengths.iter().rev() {
            let tail = self.split_off(self.len() - n);
            out.push(tail);
        }
        out.reverse();
        out
    }
}

impl<'a> Chunkable for &'a str {
    type Chunk = &'a str;

    fn elements(&self) -> usize {
        self.chars().count()
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<&'a str> {
        let mut out = Vec::with_capacity(lengths.len());
        let mut chars = self.char_indices().map(|(i, _)| i).chain([self.len()]);
        let mut start = chars.next().unwrap_or(0);
        for &n in lengths {
            // `n` characters further; `nth(n - 1)` is the index just past them.
            let end = if n == 0 {
                start
            } else {
                chars.nth(n - 1).unwrap_or(self.len())
            };
            out.push(&self[start..end]);
            start = end;
        }
        out
    }
}

impl<'a> Chunkable for &'a String {
    type Chunk = &'a str;

    fn elements(&self) -> usize {
        self.as_str().elements()
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<&'a str> {
        self.as_str().cut_lengths(lengths)
    }
}

impl<'a, T: Sync> Chunkable for &'a Vec<T> {
    type Chunk = &'a [T];

    fn elements(&self) -> usize {
        self.len()
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<&'a [T]> {
        self.as_slice().cut_lengths(lengths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_counts_are_balanced_and_never_exceed_elements() {
        for len in 0..40 {
            for n in 1..12 {
                let l = Cut::Chunks(n).lengths(len);
                assert_eq!(l.iter().sum::<usize>(), len);
                assert_eq!(l.len(), n.min(len).max(1));
                let (min, max) = (l.iter().min().unwrap(), l.iter().max().unwrap());
                assert!(max - min <= 1, "{len} in {n}: {l:?}");
            }
        }
    }

    #[test]
    fn strings_are_cut_on_char_boundaries() {
        let s = "日本語のテキスト、そしてEnglish too";
        for n in 1..30 {
            let parts = s.cut(Cut::Chunks(n));
            assert_eq!(parts.concat(), s);
            let counts: Vec<usize> = parts.iter().map(|p| p.chars().count()).collect();
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{counts:?}");
        }
        assert_eq!("".cut(Cut::Chunks(3)), [""]);
    }

    #[test]
    fn mutable_slices_and_vectors_keep_order() {
        let mut xs: Vec<u32> = (0..10).collect();
        let parts = xs.as_mut_slice().cut(Cut::ChunkSize(4));
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 4, 2]);
        for p in parts {
            p.reverse();
        }
        assert_eq!(xs, [3, 2, 1, 0, 7, 6, 5, 4, 9, 8]);
        let v: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        assert_eq!(v.cut(Cut::Chunks(2)), [vec!["0", "1", "2"], vec!["3", "4"]]);
    }
}
