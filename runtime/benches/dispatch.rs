//! The dispatch targets, each judged against the machine's own floor measured in the same run
//! (`common/wake_floor.rs`: two forked processes woken by futex, no decor code):
//!
//! - warm: a processes call of 8 tiny chunks on 2 workers ≤ 2 × (4 × the floor, warm);
//! - after 100 ms idle: that call ≤ 1.5 × (the floor after 100 ms idle + the warm call);
//! - MPI (built with the `mpi` feature; the bench starts itself under `mpirun -n 3`): the same
//!   call on the 2 serving ranks ≤ 1.25 × processes, as the median of per-run ratios.
//!
//! ```text
//! cargo bench -p decor --bench dispatch [-- --runs N]
//! cargo bench -p decor --features mpi --bench dispatch
//! ```
//!
//! Each of the runs (5 by default) measures every way, interleaved, and prints its ratios; the
//! last lines give each ratio's median over the runs and whether it meets its target.

use std::time::{Duration, Instant};

use decor::parallel_chunks;
use decor::shm::SharedVec;

#[path = "common/wake_floor.rs"]
mod floor;

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", reduce = "sum")]
fn sum_on_processes(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[parallel_chunks(chunks = 8, backend = "mpi", reduce = "sum")]
fn sum_on_mpi(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

/// Calls timed back to back in batches of 10: per call, the median batch.
const WARM_SAMPLES: usize = 300;
/// Calls timed one at a time, each after 100 ms of idle.
const IDLE_SAMPLES: usize = 15;
const IDLE: Duration = Duration::from_millis(100);

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Per call, in µs: the median of batches of 10 back-to-back calls of `f`.
fn warm(f: &mut dyn FnMut()) -> f64 {
    f();
    let batches = (0..WARM_SAMPLES).map(|_| {
        let start = Instant::now();
        for _ in 0..10 {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / 10.0
    });
    median(batches.collect())
}

/// One run's figures, in µs.
struct Run {
    floor_warm: f64,
    processes_warm: f64,
    floor_idle: f64,
    processes_idle: f64,
    mpi_warm: Option<f64>,
}

fn one_run(xs: &SharedVec<u64>, mpi: bool) -> Run {
    let mut call = || assert_eq!(sum_on_processes(xs), 64);
    let floor_warm = warm(&mut floor::round);
    let processes_warm = warm(&mut call);
    let mpi_warm = mpi.then(|| warm(&mut || assert_eq!(sum_on_mpi(xs), 64)));
    // Idle samples alternate: the floor, then the call, each after its own sleep.
    let (mut floor_idle, mut processes_idle) = (Vec::new(), Vec::new());
    for _ in 0..IDLE_SAMPLES {
        std::thread::sleep(IDLE);
        let start = Instant::now();
        floor::round();
        floor_idle.push(start.elapsed().as_secs_f64() * 1e6);
        std::thread::sleep(IDLE);
        let start = Instant::now();
        call();
        processes_idle.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Run {
        floor_warm,
        processes_warm,
        floor_idle: median(floor_idle),
        processes_idle: median(processes_idle),
        mpi_warm,
    }
}

/// Under `mpirun` when built with the `mpi` feature and not started by it.
fn under_mpirun() {
    if !cfg!(feature = "mpi") || decor::mpi_serving_ranks() > 0 {
        return;
    }
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        return; // started by mpirun with one rank: no MPI rows
    }
    let status = std::process::Command::new("mpirun")
        .args(["-n", "3", "--oversubscribe", "--allow-run-as-root"])
        .arg(std::env::current_exe().expect("this bench's path"))
        .args(std::env::args().skip(1))
        .status()
        .expect("mpirun (OpenMPI) runs this bench");
    std::process::exit(status.code().unwrap_or(1));
}

fn main() {
    under_mpirun();
    let mut args = std::env::args().skip(1);
    let mut runs = 5usize;
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N");
        }
    }
    let mpi = decor::mpi_serving_ranks() > 0;
    let xs = SharedVec::filled(64, 1u64).expect("shared memory");
    println!(
        "8 chunks of 8 u64 on 2 workers{}; {runs} runs, {} cores",
        if mpi { " / 2 serving MPI ranks" } else { "" },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>4} {:>11} {:>11} {:>8} {:>11} {:>11} {:>8} {:>10} {:>8}",
        "run",
        "floor warm",
        "proc warm",
        "ratio",
        "floor idle",
        "proc idle",
        "ratio",
        "mpi warm",
        "ratio"
    );
    let (mut warm_ratios, mut idle_ratios, mut mpi_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for k in 1..=runs {
        let r = one_run(&xs, mpi);
        let warm_ratio = r.processes_warm / (4.0 * r.floor_warm);
        let idle_ratio = r.processes_idle / (r.floor_idle + r.processes_warm);
        let mpi_ratio = r.mpi_warm.map(|m| m / r.processes_warm);
        println!(
            "{k:>4} {:>8.1} µs {:>8.1} µs {warm_ratio:>8.2} {:>8.1} µs {:>8.1} µs {idle_ratio:>8.2} {:>10} {:>8}",
            r.floor_warm,
            r.processes_warm,
            r.floor_idle,
            r.processes_idle,
            r.mpi_warm.map_or("-".into(), |m| format!("{m:.1} µs")),
            mpi_ratio.map_or("-".into(), |m| format!("{m:.2}")),
        );
        warm_ratios.push(warm_ratio);
        idle_ratios.push(idle_ratio);
        mpi_ratios.extend(mpi_ratio);
    }
    let verdict = |median: f64, target: f64| if median <= target { "met" } else { "NOT met" };
    let w = median(warm_ratios);
    println!(
        "warm: processes / (4 x floor warm), median {w:.2}, target <= 2: {}",
        verdict(w, 2.0)
    );
    let i = median(idle_ratios);
    println!(
        "after 100 ms idle: processes / (floor after idle + processes warm), median {i:.2}, target <= 1.5: {}",
        verdict(i, 1.5)
    );
    if !mpi_ratios.is_empty() {
        let m = median(mpi_ratios);
        println!(
            "mpi / processes, warm, median of per-run ratios {m:.2}, target <= 1.25: {}",
            verdict(m, 1.25)
        );
    }
}
