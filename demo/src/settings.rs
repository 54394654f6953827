//! Counts given on the command line, read by the decorated functions at each call
//! (`#[parallel_chunks(chunks = settings::chunks)]`).

use std::sync::atomic::{AtomicUsize, Ordering};

static CHUNKS: AtomicUsize = AtomicUsize::new(8);
static CHUNK_SIZE: AtomicUsize = AtomicUsize::new(150);
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// Chunks for the sum.
pub fn chunks() -> usize {
    CHUNKS.load(Ordering::Relaxed)
}

/// Characters per chunk for the LLM pipeline.
pub fn chunk_size() -> usize {
    CHUNK_SIZE.load(Ordering::Relaxed)
}

/// Workers; 0 (unset) means the machine's cores, asked once (the answer reads cgroup files).
pub fn workers() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    match WORKERS.load(Ordering::Relaxed) {
        0 => *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
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
