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

/// Where a `&str` may be cut, besides between any two characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutAt {
    /// Just after a `\n`: no line is split.
    Line,
    /// Just after a whitespace character: no word is split.
    Whitespace,
}

impl CutAt {
    fn is_boundary(self, c: char) -> bool {
        match self {
            CutAt::Line => c == '\n',
            CutAt::Whitespace => c.is_whitespace(),
        }
    }
}

/// Cuts `s` into chunks that end just after a boundary character, balanced by bytes as `cut`
/// asks: each cut goes to the boundary nearest the balanced position, so the work is the number
/// of chunks times the distance to a boundary, not the length of the text. A cut with no
/// boundary near enough is dropped (fewer, longer chunks), never placed inside a line or word.
///
/// ```
/// use decor::chunks::{Cut, CutAt, cut_str_at};
///
/// let text = "one two\nthree four\nfive six\nseven\n";
/// let lines = cut_str_at(text, Cut::Chunks(2), CutAt::Line);
/// assert_eq!(lines, ["one two\nthree four\n", "five six\nseven\n"]);
/// let words = cut_str_at("alpha beta gamma", Cut::ChunkSize(6), CutAt::Whitespace);
/// assert_eq!(words, ["alpha ", "beta ", "gamma"]);
/// ```
pub fn cut_str_at(s: &str, cut: Cut, at: CutAt) -> Vec<&str> {
    let ends = ends_near_boundaries(
        s.len(),
        cut,
        |mut target| {
            while !s.is_char_boundary(target) {
                target += 1; // at most three bytes: the rest of one character
            }
            target
        },
        |target| {
            s[target..]
                .char_indices()
                .find(|&(_, c)| at.is_boundary(c))
                .map(|(i, c)| target + i + c.len_utf8())
        },
        |last, target| {
            s[last..target]
                .char_indices()
                .rev()
                .find(|&(_, c)| at.is_boundary(c))
                .map(|(i, c)| last + i + c.len_utf8())
        },
    );
    split_at_ends(ends).map(|r| &s[r]).collect()
}

/// The ends of the chunks of an input of `len` bytes: each balanced cut `cut` asks for, moved
/// by `align` to a place a cut may go, then to the nearest position just after a boundary,
/// `after` searching forward from it and `before` back to the previous cut. A cut with no
/// boundary near enough is dropped (fewer, longer chunks). The last end is `len`.
fn ends_near_boundaries(
    len: usize,
    cut: Cut,
    align: impl Fn(usize) -> usize,
    after: impl Fn(usize) -> Option<usize>,
    before: impl Fn(usize, usize) -> Option<usize>,
) -> Vec<usize> {
    let targets: Vec<usize> = match cut {
        Cut::Chunks(n) => {
            let n = n.clamp(1, len.max(1));
            (1..n).map(|i| i * len / n).collect()
        }
        Cut::ChunkSize(size) => {
            let size = size.max(1);
            (1..len.div_ceil(size)).map(|i| i * size).collect()
        }
    };
    let mut ends = Vec::with_capacity(targets.len() + 1);
    let mut last = 0;
    for target in targets {
        let target = align(target);
        if target <= last || target >= len {
            continue;
        }
        let end = match (before(last, target), after(target)) {
            (Some(b), Some(a)) if target - b <= a - target => b,
            (_, Some(a)) => a,
            (Some(b), None) => b,
            (None, None) => continue,
        };
        if end > last && end < len {
            ends.push(end);
            last = end;
        }
    }
    ends.push(len);
    ends
}

/// The ranges between consecutive `ends`, from 0.
fn split_at_ends(ends: Vec<usize>) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    ends.into_iter().map(move |end| {
        let r = start..end;
        start = end;
        r
    })
}

impl CutAt {
    fn is_boundary_byte(self, b: u8) -> bool {
        match self {
            CutAt::Line => b == b'\n',
            CutAt::Whitespace => b.is_ascii_whitespace(),
        }
    }
}

/// [`cut_str_at`] for bytes (a log or CSV file read as `&[u8]`): chunks end just after a `\n`
/// ([`CutAt::Line`]) or an ASCII whitespace byte ([`CutAt::Whitespace`]) nearest each balanced
/// position, in time proportional to the number of chunks times the distance to a boundary.
///
/// ```
/// use decor::chunks::{Cut, CutAt, cut_bytes_at};
///
/// let data = b"one;1\ntwo;2\nthree;3\nfour;4\n";
/// let lines = cut_bytes_at(data, Cut::Chunks(2), CutAt::Line);
/// assert_eq!(lines, [&b"one;1\ntwo;2\n"[..], &b"three;3\nfour;4\n"[..]]);
/// ```
pub fn cut_bytes_at(bytes: &[u8], cut: Cut, at: CutAt) -> Vec<&[u8]> {
    let ends = ends_near_boundaries(
        bytes.len(),
        cut,
        |target| target,
        |target| {
            bytes[target..]
                .iter()
                .position(|&b| at.is_boundary_byte(b))
                .map(|i| target + i + 1)
        },
        |last, target| {
            bytes[last..target]
                .iter()
                .rposition(|&b| at.is_boundary_byte(b))
                .map(|i| last + i + 1)
        },
    );
    split_at_ends(ends).map(|r| &bytes[r]).collect()
}

/// Bytes to cut as text is cut: with a plan's [`CutAt`], chunks end at line ends or whitespace
/// ([`cut_bytes_at`]); without, anywhere, as a `&[u8]`. What `#[parallel_chunks(cut_at = …)]`
/// hands a `&[u8]` parameter to; the chunks are `&[u8]`.
///
/// ```
/// use decor::chunks::{ByteText, CutAt};
/// use decor::Plan;
///
/// let data = b"a;1\nb;2\nc;3\nd;4\n".repeat(100);
/// let counts = Plan::new().chunks(7).cut_at(CutAt::Line)
///     .map(ByteText(&data), |c: &[u8]| c.iter().filter(|&&b| b == b'\n').count());
/// assert_eq!(counts.iter().sum::<usize>(), 400);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ByteText<'a>(pub &'a [u8]);

impl<'a> Chunkable for ByteText<'a> {
    type Chunk = &'a [u8];

    fn elements(&self) -> usize {
        self.0.len()
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<&'a [u8]> {
        self.0.cut_lengths(lengths)
    }

    fn cut_at(self, cut: Cut, at: Option<CutAt>) -> (Vec<&'a [u8]>, Vec<usize>) {
        match at {
            Some(at) => {
                let chunks = cut_bytes_at(self.0, cut, at);
                let lengths = chunks.iter().map(|c| c.len()).collect();
                (chunks, lengths)
            }
            None => self.0.cut_at(cut, None),
        }
    }
}

/// [`ByteText`] for an owned `Vec<u8>`: the chunks are `Vec<u8>`.
#[derive(Debug, Clone)]
pub struct ByteTextVec(pub Vec<u8>);

impl Chunkable for ByteTextVec {
    type Chunk = Vec<u8>;

    fn elements(&self) -> usize {
        self.0.len()
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<Vec<u8>> {
        self.0.cut_lengths(lengths)
    }

    fn cut_at(self, cut: Cut, at: Option<CutAt>) -> (Vec<Vec<u8>>, Vec<usize>) {
        let lengths: Vec<usize> = match at {
            Some(at) => cut_bytes_at(&self.0, cut, at)
                .iter()
                .map(|c| c.len())
                .collect(),
            None => cut.lengths(self.0.len()),
        };
        (self.0.cut_lengths(&lengths), lengths)
    }
}

/// An input that can be cut into contiguous chunks of its own kind.
#[diagnostic::on_unimplemented(
    message = "`#[parallel_chunks]` cannot cut a `{Self}`",
    label = "the parameter to cut",
    note = "cut a `&[T]`, `&mut [T]`, `&str`, `Vec<T>`, or implement `decor::chunks::Chunkable` for your type"
)]
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

    /// The chunks `cut` makes, each ending at a boundary `at` where this input has such
    /// boundaries (text), and their lengths. Inputs without boundaries cut as [`cut`](Self::cut)
    /// does.
    fn cut_at(self, cut: Cut, at: Option<CutAt>) -> (Vec<Self::Chunk>, Vec<usize>) {
        let _ = at;
        let lengths = cut.lengths(self.elements());
        (self.cut_lengths(&lengths), lengths)
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

    /// With a boundary, balanced by bytes and cut in time proportional to the number of chunks
    /// ([`cut_str_at`]); the lengths are then in bytes.
    fn cut_at(self, cut: Cut, at: Option<CutAt>) -> (Vec<&'a str>, Vec<usize>) {
        match at {
            Some(at) => {
                let chunks = cut_str_at(self, cut, at);
                let lengths = chunks.iter().map(|c| c.len()).collect();
                (chunks, lengths)
            }
            None => {
                let lengths = cut.lengths(self.elements());
                (self.cut_lengths(&lengths), lengths)
            }
        }
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

    fn cut_at(self, cut: Cut, at: Option<CutAt>) -> (Vec<&'a str>, Vec<usize>) {
        self.as_str().cut_at(cut, at)
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

#[cfg(test)]
mod cut_at_tests {
    use super::*;
    use proptest::prelude::*;

    /// Either kind of cut: into 1 to 63 chunks, or chunks of 1 to 39 elements.
    fn any_cut() -> impl Strategy<Value = Cut> {
        prop_oneof![
            (1usize..64).prop_map(Cut::Chunks),
            (1usize..40).prop_map(Cut::ChunkSize),
        ]
    }

    proptest! {
        /// Whatever the text and the cut, the chunks put back together are the text, every chunk
        /// but the last ends at a boundary, and no chunk is empty unless the text is.
        #[test]
        fn chunks_end_at_boundaries_and_lose_nothing(
            text in "[a-c \n語]{0,200}",
            cut in any_cut(),
            whitespace in any::<bool>(),
        ) {
            let at = if whitespace { CutAt::Whitespace } else { CutAt::Line };
            let chunks = cut_str_at(&text, cut, at);
            prop_assert_eq!(chunks.concat(), text.clone());
            for c in &chunks[..chunks.len() - 1] {
                prop_assert!(c.chars().last().is_some_and(|ch| at.is_boundary(ch)), "{:?}", chunks);
            }
            prop_assert!(chunks.iter().all(|c| !c.is_empty()) || text.is_empty());
            if let Cut::Chunks(n) = cut {
                prop_assert!(chunks.len() <= n);
            }
        }

        /// Bytes cut as text is: the same chunks as the same text cut at lines, nothing lost.
        #[test]
        fn bytes_are_cut_as_text_is(text in "[a-c ;0-9\n]{0,300}", cut in any_cut()) {
            let bytes = cut_bytes_at(text.as_bytes(), cut, CutAt::Line);
            let strs = cut_str_at(&text, cut, CutAt::Line);
            let as_bytes: Vec<&[u8]> = strs.iter().map(|s| s.as_bytes()).collect();
            prop_assert_eq!(bytes, as_bytes);
        }
    }

    #[test]
    fn sixty_four_chunks_of_bytes_count_the_lines_a_single_pass_does() {
        let data: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("key{};{}\n", i % 37, i).into_bytes())
            .collect();
        let single = data.iter().filter(|&&b| b == b'\n').count();
        let (chunks, lengths) = ByteText(&data).cut_at(Cut::Chunks(64), Some(CutAt::Line));
        assert_eq!(chunks.len(), 64);
        assert_eq!(lengths.iter().sum::<usize>(), data.len());
        assert!(chunks.iter().all(|c| c.ends_with(b"\n")));
        let counted: usize = chunks
            .iter()
            .map(|c| c.iter().filter(|&&b| b == b'\n').count())
            .sum();
        assert_eq!(counted, single);
    }

    #[test]
    fn cuts_go_to_the_boundary_nearest_the_balanced_position() {
        let text = "aaaa\nbb\ncccccccc\n";
        // Balanced at byte 8 of 17: the nearest line end is after "bb\n" (byte 8).
        assert_eq!(
            cut_str_at(text, Cut::Chunks(2), CutAt::Line),
            ["aaaa\nbb\n", "cccccccc\n"]
        );
        assert_eq!(
            cut_str_at("no boundary here", Cut::Chunks(4), CutAt::Line),
            ["no boundary here"]
        );
    }
}
