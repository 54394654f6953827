//! [`MappedFile`]: a file mapped read-only, whose bytes reach worker processes without a copy:
//! its mapping is a region like a [`SharedVec`](super::SharedVec)'s, and a worker maps the same
//! file through the descriptor the parent passes it (the page cache is shared, nothing is read
//! twice).

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use memmap2::Mmap;

use super::{Live, live, next_region_id};
use crate::chunks::{Chunkable, Cut, CutAt, cut_bytes_at};

/// Where some bytes lie in a mapped file.
pub(crate) struct FileRange {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) modified: Option<SystemTime>,
    pub(crate) offset: u64,
}

/// The files this process has mapped, to tell where some bytes come from.
struct OpenFile {
    id: u64,
    start: usize,
    size: u64,
    path: PathBuf,
    modified: Option<SystemTime>,
}

static FILES: Mutex<Vec<OpenFile>> = Mutex::new(Vec::new());

/// One file's mapping, shared by a [`MappedFile`] and its chunks.
struct FileMap {
    /// Kept: the bytes every view points into.
    _map: Option<Mmap>,
    /// Kept open: its descriptor is what workers are sent to map the file.
    _file: File,
    path: PathBuf,
    id: u64,
}

impl Drop for FileMap {
    fn drop(&mut self) {
        live()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|l| l.id != self.id);
        FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|f| f.id != self.id);
    }
}

/// A file mapped read-only: `Deref<Target = [u8]>`, [`text`](Self::text) for `&str`, and a cut
/// input of `#[parallel_chunks]` and [`Plan`](crate::Plan) (chunks are `&MappedFile` views of
/// its byte ranges, cut at lines or whitespace with `cut_at`). A chunk never crosses: worker
/// processes map the same file through its descriptor, and MPI ranks open the same path (a
/// shared filesystem, or a copy at the same path on each host) and map only their chunk's range,
/// after checking its length and modification time are the ones rank 0 opened; a rank whose
/// file differs fails the chunk with an error naming the rank, its host and the path. This holds
/// for a `&[u8]` or `&str` borrowed from it as well.
///
/// ```
/// use decor::shm::MappedFile;
///
/// let path = std::env::temp_dir().join(format!("decor-doc-{}.csv", std::process::id()));
/// std::fs::write(&path, "a;1\nb;2\nc;3\n").unwrap();
/// let file = MappedFile::open(&path).unwrap();
/// assert_eq!(file.len(), 12);
/// assert_eq!(file.text().unwrap().lines().count(), 3);
///
/// #[decor::parallel_chunks(chunks = 2, cut_at = "line", reduce = "sum")]
/// fn lines(file: &MappedFile) -> usize {
///     file.iter().filter(|&&b| b == b'\n').count()
/// }
/// assert_eq!(lines(&file), 3);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub struct MappedFile {
    /// `None` in a worker, where the bytes belong to the worker's mapping of the parent's file.
    map: Option<Arc<FileMap>>,
    ptr: *const u8,
    len: usize,
    /// Chunks lent out by reference, kept (by range) as long as this file; boxed, so that a
    /// view lent out does not move when the `Vec` grows.
    #[allow(clippy::vec_box)]
    views: Mutex<Vec<Box<MappedFile>>>,
}

// SAFETY: the bytes are a read-only mapping that lives as long as `map` (or, in a worker, as
// long as the chunk the value is lent for); nothing writes through `ptr`.
unsafe impl Send for MappedFile {}
// SAFETY: as above; `views` is behind a mutex.
unsafe impl Sync for MappedFile {}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path())
            .field("len", &self.len)
            .finish()
    }
}

impl MappedFile {
    /// Maps the file at `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> io::Result<MappedFile> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let meta = file.metadata()?;
        // SAFETY: read-only; a file changed on disk while mapped shows its new bytes (or a
        // SIGBUS if truncated), as with any mapped file: the same contract as `memmap2`.
        let map = if meta.len() == 0 {
            None
        } else {
            Some(unsafe { Mmap::map(&file)? })
        };
        let (ptr, len) = map.as_ref().map_or(
            (std::ptr::NonNull::<u8>::dangling().as_ptr() as *const u8, 0),
            |m| (m.as_ptr(), m.len()),
        );
        let id = next_region_id();
        if map.is_some() {
            live().lock().unwrap_or_else(|e| e.into_inner()).push(Live {
                start: ptr as usize,
                size: len,
                fd: file.as_raw_fd(),
                id,
            });
        }
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        if map.is_some() {
            FILES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(OpenFile {
                    id,
                    start: ptr as usize,
                    size: len as u64,
                    path: path.clone(),
                    modified: meta.modified().ok(),
                });
        }
        let shared = Arc::new(FileMap {
            _map: map,
            _file: file,
            path,
            id,
        });
        Ok(MappedFile {
            map: Some(shared),
            ptr,
            len,
            views: Mutex::new(Vec::new()),
        })
    }

    /// The file's bytes as text, after checking they are UTF-8.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(self)
    }

    /// The file's path (absolute when it could be resolved); `None` for a chunk in a worker.
    pub fn path(&self) -> Option<&Path> {
        self.map.as_ref().map(|m| m.path.as_path())
    }

    /// Where `bytes` lie in a file mapped by this process: its path, length, modification
    /// time and the offset of `bytes` in it.
    pub(crate) fn locate(bytes: &[u8]) -> Option<FileRange> {
        let start = bytes.as_ptr() as usize;
        FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|f| start >= f.start && start + bytes.len() <= f.start + f.size as usize)
            .map(|f| FileRange {
                path: f.path.clone(),
                size: f.size,
                modified: f.modified,
                offset: (start - f.start) as u64,
            })
    }

    /// The bytes a worker was sent, lent to a chunk's body as a `MappedFile`; the value must
    /// not outlive them (the attribute drops it when the chunk ends).
    #[doc(hidden)]
    pub fn lent(bytes: &[u8]) -> MappedFile {
        MappedFile {
            map: None,
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            views: Mutex::new(Vec::new()),
        }
    }

    /// The view of `start..start + len`, lent for as long as `self`.
    fn view(&self, start: usize, len: usize) -> &MappedFile {
        assert!(start + len <= self.len);
        let ptr = self.ptr.wrapping_add(start);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        let at = match views.iter().position(|v| v.ptr == ptr && v.len == len) {
            Some(i) => i,
            None => {
                views.push(Box::new(MappedFile {
                    map: self.map.clone(),
                    ptr,
                    len,
                    views: Mutex::new(Vec::new()),
                }));
                views.len() - 1
            }
        };
        let view: *const MappedFile = &*views[at];
        // SAFETY: each view is boxed, so its address does not move when `views` grows, and no
        // view is removed before `self` is dropped: the reference lives as long as `&self`.
        unsafe { &*view }
    }
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is inside a live read-only mapping (see the `Send` impl).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl<'a> Chunkable for &'a MappedFile {
    type Chunk = &'a MappedFile;

    fn elements(&self) -> usize {
        self.len
    }

    fn cut_lengths(self, lengths: &[usize]) -> Vec<&'a MappedFile> {
        let mut start = 0;
        lengths
            .iter()
            .map(|&n| {
                let v = self.view(start, n);
                start += n;
                v
            })
            .collect()
    }

    /// At lines or whitespace as bytes are ([`cut_bytes_at`]), else anywhere.
    fn cut_at(self, cut: Cut, at: Option<CutAt>) -> (Vec<&'a MappedFile>, Vec<usize>) {
        let lengths: Vec<usize> = match at {
            Some(at) => cut_bytes_at(self, cut, at)
                .iter()
                .map(|c| c.len())
                .collect(),
            None => cut.lengths(self.len),
        };
        (self.cut_lengths(&lengths), lengths)
    }
}
