//! The functions this executable can run in a worker: one [`Entry`] per `#[parallel_chunks]`
//! function on processes, registered before `main` by a constructor the attribute generates.

use std::sync::atomic::{AtomicPtr, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a worker calls to run one chunk: decode the input, run the body, encode the result.
/// `Err` is a message for input that could not be decoded.
pub type EntryFn = fn(&ChunkInput<'_>) -> Result<Vec<u8>, String>;

/// A function a worker can run, by its key.
#[derive(Debug)]
pub struct Entry {
    name: &'static str,
    /// What the parent and its workers find the entry by: the name, unless [`key`](Self::key)
    /// gave one that tells apart functions of one name in one module.
    key: &'static str,
    run: EntryFn,
    next: AtomicPtr<Entry>,
}

static HEAD: AtomicPtr<Entry> = AtomicPtr::new(std::ptr::null_mut());

impl Entry {
    /// An entry for `name` (`"module::path::function"`).
    pub const fn new(name: &'static str, run: EntryFn) -> Self {
        Entry {
            name,
            key: name,
            run,
            next: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Finds this entry by `key` instead of its name: the attribute gives the name and where the
    /// function is written (`"app::total@src/a.rs:10:1"`), as two functions of one module may
    /// share a name (associated functions of two types, helpers nested in two bodies).
    pub const fn key(mut self, key: &'static str) -> Self {
        self.key = key;
        self
    }

    /// The function's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What the entry is found by.
    pub(crate) fn lookup_key(&self) -> &'static str {
        self.key
    }

    pub(crate) fn call(&self, input: &ChunkInput<'_>) -> Result<Vec<u8>, String> {
        (self.run)(input)
    }
}

/// Adds `entry` to the registry; called once per entry by a constructor before `main`.
pub fn register(entry: &'static Entry) {
    let ptr = entry as *const Entry as *mut Entry;
    let mut head = HEAD.load(Ordering::Acquire);
    loop {
        if head == ptr {
            return;
        }
        entry.next.store(head, Ordering::Relaxed);
        match HEAD.compare_exchange_weak(head, ptr, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

fn entries() -> impl Iterator<Item = &'static Entry> {
    let mut p = HEAD.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: only `&'static Entry` are ever stored in the list, and never removed.
        let e = unsafe { p.as_ref() }?;
        p = e.next.load(Ordering::Relaxed);
        Some(e)
    })
}

/// Why no entry answers to a key.
#[derive(Debug)]
pub(crate) enum LookupError {
    /// This executable has no such function.
    Missing,
    /// Two functions answer to it (written by one macro at one place, say): running either
    /// could run the wrong body. The key, for the message.
    Ambiguous(String),
}

/// The one entry found by `key`.
pub(crate) fn lookup(key: &str) -> Result<&'static Entry, LookupError> {
    let mut found = entries().filter(|e| e.key == key);
    match (found.next(), found.next()) {
        (None, _) => Err(LookupError::Missing),
        (Some(e), None) => Ok(e),
        (Some(_), Some(_)) => Err(LookupError::Ambiguous(key.to_owned())),
    }
}

/// The keys of every registered entry.
pub(crate) fn keys() -> Vec<String> {
    entries().map(|e| e.key.to_owned()).collect()
}

/// The input of one chunk in a worker, as the generated entry reads it.
#[derive(Debug)]
pub struct ChunkInput<'a> {
    pub(crate) args: &'a [u8],
    pub(crate) chunk: &'a [u8],
    /// Whether `chunk` is raw bytes of plain data in shared memory rather than `postcard`.
    pub(crate) raw: bool,
}

impl<'a> ChunkInput<'a> {
    /// The parameters other than the cut one, as a tuple of their owned forms.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, String> {
        postcard::from_bytes(self.args).map_err(|e| format!("arguments: {e}"))
    }

    /// The cut parameter's chunk, decoded with serde.
    pub fn chunk<T: DeserializeOwned>(&self) -> Result<T, String> {
        if self.raw {
            return Err("chunk: expected encoded data, got shared memory".into());
        }
        postcard::from_bytes(self.chunk).map_err(|e| format!("chunk: {e}"))
    }

    /// The cut parameter's chunk of plain data: borrowed from shared memory when it is there and
    /// aligned, else decoded.
    pub fn chunk_pod<T: bytemuck::Pod>(&self) -> Result<SliceArg<'a, T>, String> {
        if !self.raw {
            return Err("chunk: expected shared memory, got encoded data".into());
        }
        match bytemuck::try_cast_slice::<u8, T>(self.chunk) {
            Ok(s) => Ok(SliceArg::Borrowed(s)),
            Err(bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned) => {
                Ok(SliceArg::Owned(bytemuck::pod_collect_to_vec(self.chunk)))
            }
            Err(e) => Err(format!("chunk: {e:?}")),
        }
    }
}

/// A chunk of a slice in a worker: borrowed from shared memory, or decoded.
#[derive(Debug)]
pub enum SliceArg<'a, T> {
    /// Straight from shared memory.
    Borrowed(&'a [T]),
    /// Decoded from the message.
    Owned(Vec<T>),
}

impl<T> SliceArg<'_, T> {
    /// The chunk.
    pub fn as_slice(&self) -> &[T] {
        match self {
            SliceArg::Borrowed(s) => s,
            SliceArg::Owned(v) => v,
        }
    }
}

/// Encodes a value for the other process.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| e.to_string())
}
