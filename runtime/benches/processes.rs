//! `#[parallel_chunks(backend = "processes")]` against threads, warm pool, side by side.
//!
//! `cargo bench -p decor --bench processes`. Before the table it prints the cost of the pool's
//! first start, measured in fresh child processes of this same binary.

use std::process::Command;
use std::time::Instant;

use decor::parallel_chunks;
use decor::shm::SharedVec;
use divan::{Bencher, black_box};

const N: usize = 8_000_000;

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", reduce = "sum")]
fn sum_on_processes(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "threads", reduce = "sum")]
fn sum_on_threads(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

fn main() {
    if std::env::var_os("DECOR_BENCH_FIRST_CALL").is_some() {
        let xs = vec![1u64; 64];
        let start = Instant::now();
        assert_eq!(sum_on_processes(&xs), 64);
        let first = start.elapsed();
        let start = Instant::now();
        assert_eq!(sum_on_processes(&xs), 64);
        println!("{} {}", first.as_nanos(), start.elapsed().as_nanos());
        return;
    }
    let mut firsts = Vec::new();
    let mut seconds = Vec::new();
    for _ in 0..7 {
        let out = Command::new(std::env::current_exe().unwrap())
            .env("DECOR_BENCH_FIRST_CALL", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|n| n.parse::<u128>().unwrap());
        firsts.push(it.next().unwrap());
        seconds.push(it.next().unwrap());
    }
    firsts.sort();
    seconds.sort();
    println!(
        "pool start (2 workers), median of 7 fresh processes: first call {:.2} ms, second call {:.1} µs",
        firsts[3] as f64 / 1e6,
        seconds[3] as f64 / 1e3
    );
    divan::main();
}

/// The seed's experiment: 8,000,000 ones in 8 chunks on 2 workers.
mod sum_8m {
    use super::*;

    #[divan::bench(sample_count = 40)]
    fn threads(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.bench_local(|| sum_on_threads(black_box(&xs)));
    }

    /// Input in a `SharedVec`: chunks reach the workers without a copy.
    #[divan::bench(sample_count = 40)]
    fn processes_shared_vec(b: Bencher<'_, '_>) {
        let xs = SharedVec::filled(N, 1u64).unwrap();
        assert_eq!(sum_on_processes(&xs), N as u64);
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }

    /// Input in an ordinary `Vec`: one copy into reused shared memory per call.
    #[divan::bench(sample_count = 40)]
    fn processes_vec(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        assert_eq!(sum_on_processes(&xs), N as u64);
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }
}

/// The parts of a processes call on an ordinary `Vec`: the transfer alone, the compute alone.
mod breakdown_8m {
    use super::*;

    /// Transfer: copying the 64 MB input into warm shared memory, on one thread (the pool
    /// threads split this copy and overlap it with the work; a `SharedVec` saves it).
    #[divan::bench(sample_count = 40)]
    fn transfer_copy_into_shared_memory(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        let mut dst = SharedVec::<u64>::zeroed(N).unwrap();
        b.bench_local(|| dst.copy_from_slice(black_box(&xs)));
    }

    /// Compute: the same sum in this process on one core (each worker does half of it).
    #[divan::bench(sample_count = 40)]
    fn compute_single_core(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.bench_local(|| black_box(&xs).iter().sum::<u64>());
    }
}

/// Dispatch: 8 chunks of 8 elements.
mod dispatch_8x8 {
    use super::*;

    #[divan::bench(sample_count = 300, sample_size = 10)]
    fn threads(b: Bencher<'_, '_>) {
        let xs = vec![1u64; 64];
        b.bench_local(|| sum_on_threads(black_box(&xs)));
    }

    #[divan::bench(sample_count = 300, sample_size = 10)]
    fn processes(b: Bencher<'_, '_>) {
        let xs = SharedVec::filled(64, 1u64).unwrap();
        assert_eq!(sum_on_processes(&xs), 64);
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }
}

/// Calls after 5 ms of idle (not timed), as in a program that does other work in between, or
/// `decor-demo`, which interleaves the ways: sleeping threads and worker processes must wake.
mod sum_8m_after_idle {
    use super::*;

    #[divan::bench(sample_count = 40)]
    fn threads(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        b.with_inputs(|| std::thread::sleep(std::time::Duration::from_millis(5)))
            .bench_local_values(|()| sum_on_threads(black_box(&xs)));
    }

    #[divan::bench(sample_count = 40)]
    fn processes_shared_vec(b: Bencher<'_, '_>) {
        let xs = SharedVec::filled(N, 1u64).unwrap();
        assert_eq!(sum_on_processes(&xs), N as u64);
        b.with_inputs(|| std::thread::sleep(std::time::Duration::from_millis(5)))
            .bench_local_values(|()| sum_on_processes(black_box(&xs)));
    }
}
