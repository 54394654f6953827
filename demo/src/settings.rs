//! Counts given on the command line, read by the decorated functions at each call
//! (`#[parallel_chunks(chunks = settings::chunks)]`).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

static CHUNKS: AtomicUsize = AtomicUsize::new(8);
static CHUNK_SIZE: AtomicUsize = AtomicUsize::new(150);
static WORKERS: AtomicUsize = AtomicUsize::new(1);
static RETRIES: AtomicU32 = AtomicU32::new(0);
/// Chunk starts a minute; 0: no limit.
static RATE_PER_MINUTE: AtomicU32 = AtomicU32::new(0);

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

/// Retries of a request that failed on the way or was refused for now (`--retries`).
pub fn retries() -> u32 {
    RETRIES.load(Ordering::Relaxed)
}

/// The most requests a minute (`--rate`), if limited.
pub fn rate() -> Option<decor::retry::Rate> {
    match RATE_PER_MINUTE.load(Ordering::Relaxed) {
        0 => None,
        n => Some(decor::retry::Rate::per_minute(n)),
    }
}

/// Sets `--retries` and `--rate` (requests a minute, `None` for no limit).
pub fn set_retries(retries: u32, per_minute: Option<u32>) {
    RETRIES.store(retries, Ordering::Relaxed);
    RATE_PER_MINUTE.store(per_minute.unwrap_or(0), Ordering::Relaxed);
}
