//! `#[parallel_chunks]` on threads against rayon and a single core, side by side in one run.
//!
//! `cargo bench -p decor --bench chunks`. Compare the rows of one group.

use std::time::Duration;

use decor::parallel_chunks;
use divan::{Bencher, black_box};
use rayon::prelude::*;

fn main() {
    divan::main();
}

const N: usize = 8_000_000;

#[parallel_chunks(chunks = 8, backend = "threads", reduce = "sum")]
fn decor_sum(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

/// The same sum returning `Result`, never failing: the cost `retries` and `rate` add is read
/// against this one.
#[parallel_chunks(chunks = 8, backend = "threads", reduce = "sum")]
fn decor_sum_ok(xs: &[u64]) -> Result<u64, String> {
    Ok(xs.iter().sum())
}

/// With `retries` and a `rate` that never binds (a start every microsecond): the retry
/// bookkeeping, a copy of each chunk's input kept for a retry, and one limiter take a chunk.
#[parallel_chunks(
    chunks = 8,
    backend = "threads",
    reduce = "sum",
    retries = 3,
    rate = "1000000/s"
)]
fn decor_sum_retrying(xs: &[u64]) -> Result<u64, String> {
    Ok(xs.iter().sum())
}

/// The seed's experiment: 8,000,000 ones in 8 chunks.
mod sum_8m {
    use super::*;

    #[divan::bench(sample_count = 60)]
    fn decor_threads_result(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.bench_local(|| decor_sum_ok(black_box(&xs)));
    }

    #[divan::bench(sample_count = 60)]
    fn decor_threads_result_retries_and_rate(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.bench_local(|| decor_sum_retrying(black_box(&xs)));
    }

    #[divan::bench(sample_count = 60)]
    fn decor_threads_8_chunks(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.bench_local(|| decor_sum(black_box(&xs)));
    }

    #[divan::bench(sample_count = 60)]
    fn rayon_par_chunks(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.bench_local(|| {
            black_box(&xs)
                .par_chunks(N / 8)
                .map(|c| c.iter().sum::<u64>())
                .sum::<u64>()
        });
    }

    #[divan::bench(sample_count = 60)]
    fn single_core_iter_sum(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.bench_local(|| black_box(&xs).iter().sum::<u64>());
    }
}

#[parallel_chunks(chunks = 8, backend = "threads", reduce = "sum")]
fn decor_tiny(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

/// Dispatch overhead: 8 chunks of 8 elements, the work itself negligible.
mod dispatch_8x8 {
    use super::*;

    #[divan::bench(sample_count = 500, sample_size = 20)]
    fn decor_threads(b: Bencher<'_, '_>) {
        let xs = vec![1u64; 64];
        b.bench_local(|| decor_tiny(black_box(&xs)));
    }

    #[divan::bench(sample_count = 500, sample_size = 20)]
    fn rayon_par_chunks(b: Bencher<'_, '_>) {
        let xs = vec![1u64; 64];
        b.bench_local(|| {
            black_box(&xs)
                .par_chunks(8)
                .map(|c| c.iter().sum::<u64>())
                .sum::<u64>()
        });
    }
}

#[parallel_chunks(chunks = 32, workers = 16)]
fn sleepy(xs: &[u8]) {
    let _ = xs;
    std::thread::sleep(Duration::from_millis(50));
}

/// I/O-bound: 32 chunks that each sleep 50 ms on 16 workers; the ideal is two rounds, 100 ms.
mod io_32x50ms_on_16 {
    use super::*;

    #[divan::bench(sample_count = 15, sample_size = 1)]
    fn decor_threads(b: Bencher<'_, '_>) {
        let xs = [0u8; 32];
        b.bench_local(|| sleepy(black_box(&xs)));
    }

    #[divan::bench(sample_count = 15, sample_size = 1)]
    fn ideal_two_sleeps(b: Bencher<'_, '_>) {
        b.bench_local(|| {
            std::thread::sleep(Duration::from_millis(50));
            std::thread::sleep(Duration::from_millis(50));
        });
    }
}

/// Cutting a 200 MB text into 64 chunks: by characters (counts every character) against
/// `cut_at` (a search near each of the 63 cuts), the work the caller does before any chunk runs.
mod cut_200mb_text {
    use super::*;
    use decor::chunks::{Chunkable, Cut, CutAt, cut_str_at};

    fn text() -> String {
        "the quick brown fox jumps over the lazy dog\n".repeat(200_000_000 / 44)
    }

    #[divan::bench(sample_count = 10)]
    fn by_characters(b: Bencher<'_, '_>) {
        let text = text();
        b.bench_local(|| black_box(text.as_str()).cut(Cut::Chunks(64)).len());
    }

    #[divan::bench(sample_count = 10)]
    fn cut_at_whitespace(b: Bencher<'_, '_>) {
        let text = text();
        b.bench_local(|| cut_str_at(black_box(&text), Cut::Chunks(64), CutAt::Whitespace).len());
    }

    #[divan::bench(sample_count = 10)]
    fn cut_at_line(b: Bencher<'_, '_>) {
        let text = text();
        b.bench_local(|| cut_str_at(black_box(&text), Cut::Chunks(64), CutAt::Line).len());
    }
}
