//! `backend = "mpi"` against processes on this machine: `cargo bench -p decor --features mpi
//! --bench mpi`. The bench starts itself again as `mpirun -n 3` (2 serving ranks against 2
//! worker processes), so one run measures both, interleaved by divan's order.

use std::process::Command;

use decor::parallel_chunks;
use decor::shm::SharedVec;
use divan::{Bencher, black_box};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_time;

const N: usize = 8_000_000;

#[parallel_chunks(chunks = 8, backend = "mpi", reduce = "sum")]
fn sum_on_mpi(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", reduce = "sum")]
fn sum_on_processes(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "threads", reduce = "sum")]
fn sum_on_threads(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

/// Moves the bytes and nothing else: what a chunk's transfer costs.
#[parallel_chunks(chunks = 2, backend = "mpi", reduce = "sum")]
fn length_on_mpi(xs: &[u8]) -> usize {
    xs.len()
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "sum")]
fn length_on_processes(xs: &[u8]) -> usize {
    xs.len()
}

fn main() {
    if decor::mpi_serving_ranks() == 0 {
        let status = Command::new("mpirun")
            .args(["-n", "3", "--oversubscribe", "--allow-run-as-root"])
            .arg(std::env::current_exe().unwrap())
            .args(std::env::args().skip(1))
            .status()
            .expect("mpirun (OpenMPI) runs this bench");
        std::process::exit(status.code().unwrap_or(1));
    }
    idle_cpu();
    divan::main();
}

#[parallel_chunks(chunks = 2, backend = "mpi", reduce = "concat")]
fn rank_pids(xs: &[u8]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

/// What idle serving ranks cost: their CPU time over 10 s of nothing after a call.
fn idle_cpu() {
    let pids = rank_pids(&[0, 0]);
    let total = || -> std::time::Duration { pids.iter().map(|p| cpu_time(&p.to_string())).sum() };
    let before = total();
    std::thread::sleep(std::time::Duration::from_secs(10));
    println!(
        "idle 10 s after a call: the {} serving ranks used {:.0} ms of CPU (10 ms ticks)",
        pids.len(),
        (total() - before).as_secs_f64() * 1e3
    );
}

/// The seed's experiment: 8,000,000 ones in 8 chunks, 2 ranks against 2 workers.
mod sum_8m {
    use super::*;

    #[divan::bench(sample_count = 30)]
    fn mpi(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        assert_eq!(sum_on_mpi(&xs), N as u64);
        b.bench_local(|| sum_on_mpi(black_box(&xs)));
    }

    /// A plain `Vec`: copied into shared memory each call.
    #[divan::bench(sample_count = 30)]
    fn processes_vec(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        assert_eq!(sum_on_processes(&xs), N as u64);
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }

    #[divan::bench(sample_count = 30)]
    fn processes_shared_vec(b: Bencher<'_, '_>) {
        let xs = SharedVec::filled(N, 1u64).unwrap();
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }
}

/// Dispatch: 8 chunks of 8 elements.
mod dispatch_8x8 {
    use super::*;

    #[divan::bench(sample_count = 200, sample_size = 10)]
    fn mpi(b: Bencher<'_, '_>) {
        let xs = vec![1u64; 64];
        b.bench_local(|| sum_on_mpi(black_box(&xs)));
    }

    #[divan::bench(sample_count = 200, sample_size = 10)]
    fn processes(b: Bencher<'_, '_>) {
        let xs = vec![1u64; 64];
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }

    #[divan::bench(sample_count = 200, sample_size = 10)]
    fn threads(b: Bencher<'_, '_>) {
        let xs = vec![1u64; 64];
        b.bench_local(|| sum_on_threads(black_box(&xs)));
    }
}

/// Dispatch of 8 tiny chunks after everything sat idle (not timed): serving ranks and workers
/// asleep, as in a program that calls now and then.
mod dispatch_8x8_after_idle {
    use super::*;

    fn after(ms: u64) -> impl FnMut() {
        move || std::thread::sleep(std::time::Duration::from_millis(ms))
    }

    #[divan::bench(args = [100, 1000], sample_count = 10)]
    fn mpi(b: Bencher<'_, '_>, idle_ms: u64) {
        let xs = vec![1u64; 64];
        b.with_inputs(after(idle_ms))
            .bench_local_values(|()| sum_on_mpi(black_box(&xs)));
    }

    #[divan::bench(args = [100, 1000], sample_count = 10)]
    fn processes(b: Bencher<'_, '_>, idle_ms: u64) {
        let xs = vec![1u64; 64];
        b.with_inputs(after(idle_ms))
            .bench_local_values(|()| sum_on_processes(black_box(&xs)));
    }

    #[divan::bench(args = [100, 1000], sample_count = 10)]
    fn threads(b: Bencher<'_, '_>, idle_ms: u64) {
        let xs = vec![1u64; 64];
        b.with_inputs(after(idle_ms))
            .bench_local_values(|()| sum_on_threads(black_box(&xs)));
    }
}

/// Transfer: two chunks of `bytes / 2` each, bodies that only take the length.
mod transfer {
    use super::*;

    const SIZES: [usize; 4] = [1 << 10, 1 << 16, 1 << 20, 16 << 20];

    #[divan::bench(args = SIZES, sample_count = 30)]
    fn mpi(b: Bencher<'_, '_>, bytes: usize) {
        let xs = vec![1u8; bytes];
        b.bench_local(|| length_on_mpi(black_box(&xs)));
    }

    #[divan::bench(args = SIZES, sample_count = 30)]
    fn processes_vec(b: Bencher<'_, '_>, bytes: usize) {
        let xs = vec![1u8; bytes];
        b.bench_local(|| length_on_processes(black_box(&xs)));
    }
}
