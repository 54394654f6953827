//! Counts given on the command line, read by the decorated functions at each call
//! (`#[parallel_chunks(chunks = settings::chunks)]`).

use std::sync::atomic::{AtomicUsize, Ordering};

static CHUNKS: AtomicUsize = AtomicUsize::new(8);
static CHUNK_SIZE: AtomicUsize = AtomicUsize::new(150);
static WORKERS: AtomicUsize = AtomicUsize::new(1);

/// Chunks for the sum.
pub fn chunks() -> usize {
    CHUNKS.load(Ordering::Relaxed)
}

/// Characters per chunk for the LLM pipeline.
pub fn chunk_size() -> usize {
    CHUNK_SIZE.load(Ordering::Relaxed)
}

/// Workers, as resolved from the command line when it was read.
pub fn workers() -> usize {
    WORKERS.load(Ordering::Relaxed).max(1)
}

pub fn set(chunks: Option<usize>, chunk_size: Option<usize>, workers: Option<usize>) {
    if let Some(c) = chunks {
        CHUNKS.store(c, Ordering::Relaxed);
    }
    if let Some(c) = chunk_size {
        CHUNK_SIZE.store(c, Ordering::Relaxed);
    }
    if let Some(w) = workers {
        WORKERS.store(w, Ordering::Relaxed);
    }
}
