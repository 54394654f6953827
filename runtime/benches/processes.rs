//! `#[parallel_chunks(backend = "processes")]` against threads, warm pool, side by side.
//!
//! `cargo bench -p decor --bench processes`. Before the table it prints the cost of the pool's
//! first start, measured in fresh child processes of this same binary.
//!
//! The global allocator is `decor::shm::SharedHeap` behind a switch, so that one run compares
//! plain `Vec`s inside and outside the shared heap, and small-allocation workloads on the heap
//! against the plain system allocator (both arms pay the switch's one branch).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use decor::parallel_chunks;
use decor::shm::{SharedHeap, SharedVec};
use divan::{Bencher, black_box};

#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/wake_floor.rs"]
mod floor;
use cpu::cpu_time;

static HEAP: SharedHeap = SharedHeap::new();
/// Which allocator serves: the shared heap, or `System` directly. Only flipped while no block of
/// the heap's threshold or more is live, so each block is freed by the allocator that made it.
static ON_HEAP: AtomicBool = AtomicBool::new(true);

struct Switch;

// SAFETY: every call goes to one of two allocators, each under its own contract; see `ON_HEAP`
// for why a block is always returned to the allocator that made it.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: passed on unchanged.
        unsafe {
            if ON_HEAP.load(Ordering::Relaxed) {
                HEAP.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: passed on unchanged.
        unsafe {
            if ON_HEAP.load(Ordering::Relaxed) {
                HEAP.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: passed on unchanged.
        unsafe {
            if ON_HEAP.load(Ordering::Relaxed) {
                HEAP.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: passed on unchanged.
        unsafe {
            if ON_HEAP.load(Ordering::Relaxed) {
                HEAP.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Switch = Switch;

/// A plain `Vec` of `n` ones allocated outside the shared heap.
fn outside_heap(n: usize) -> Vec<u64> {
    HEAP.set_threshold(usize::MAX);
    let xs = vec![1u64; n];
    HEAP.set_threshold(decor::shm::DEFAULT_THRESHOLD);
    assert!(!HEAP.holds(xs.as_ptr()));
    xs
}

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
    idle_cpu();
    divan::main();
}

#[parallel_chunks(chunks = 2, workers = 2, backend = "processes", reduce = "concat")]
fn worker_pids(xs: &[u8]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

/// What idle workers and the pool's spawner thread cost: CPU time over 10 s of nothing after a call.
fn idle_cpu() {
    let pids = worker_pids(&[0, 0]);
    let workers = || -> std::time::Duration { pids.iter().map(|p| cpu_time(&p.to_string())).sum() };
    let (w0, s0) = (workers(), cpu_time("self"));
    std::thread::sleep(std::time::Duration::from_secs(10));
    let (w1, s1) = (workers(), cpu_time("self"));
    println!(
        "idle 10 s after a call: the 2 workers used {:.1} ms of CPU, this process (the spawner thread; main sleeps) {:.1} ms",
        (w1 - w0).as_secs_f64() * 1e3,
        (s1 - s0).as_secs_f64() * 1e3
    );
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

    /// Input in a plain `Vec` under the shared heap: no copy, as a `SharedVec`.
    #[divan::bench(sample_count = 40)]
    fn processes_vec_on_shared_heap(b: Bencher<'_, '_>) {
        let xs = vec![1u64; N];
        assert!(HEAP.holds(xs.as_ptr()));
        let copied = decor::shm::copied_bytes();
        assert_eq!(sum_on_processes(&xs), N as u64);
        assert_eq!(decor::shm::copied_bytes(), copied);
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }

    /// Input in a plain `Vec` outside the shared heap: one copy into reused shared memory per
    /// call.
    #[divan::bench(sample_count = 40)]
    fn processes_vec(b: Bencher<'_, '_>) {
        let xs = outside_heap(N);
        assert_eq!(sum_on_processes(&xs), N as u64);
        b.bench_local(|| sum_on_processes(black_box(&xs)));
    }
}

/// Per-station min/mean/max over `name;value` lines (issue "processes for every function"): a
/// `&str` cut at lines, as a user writes it, against threads and a hand-written rayon version.
mod text_aggregation {
    use std::collections::BTreeMap;

    use decor::serde::{Deserialize, Serialize};
    use rayon::prelude::*;

    use super::*;

    /// Stations' statistics.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(crate = "decor::serde")]
    pub struct Stat {
        min: f64,
        max: f64,
        sum: f64,
        n: u64,
    }

    type Stats = BTreeMap<String, Stat>;

    fn merge(mut a: Stats, b: Stats) -> Stats {
        for (k, s) in b {
            a.entry(k)
                .and_modify(|t| {
                    t.min = t.min.min(s.min);
                    t.max = t.max.max(s.max);
                    t.sum += s.sum;
                    t.n += s.n;
                })
                .or_insert(s);
        }
        a
    }

    fn stats(text: &str) -> Stats {
        let mut out: Stats = BTreeMap::new();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(';') else {
                continue;
            };
            let v: f64 = value.parse().unwrap_or(0.0);
            match out.get_mut(name) {
                Some(t) => {
                    t.min = t.min.min(v);
                    t.max = t.max.max(v);
                    t.sum += v;
                    t.n += 1;
                }
                None => {
                    out.insert(
                        name.to_owned(),
                        Stat {
                            min: v,
                            max: v,
                            sum: v,
                            n: 1,
                        },
                    );
                }
            }
        }
        out
    }

    #[parallel_chunks(chunks = 8, workers = 2, backend = "processes", cut_at = "line", reduce = merge)]
    fn on_processes(text: &str) -> Stats {
        stats(text)
    }

    #[parallel_chunks(chunks = 8, workers = 2, backend = "threads", cut_at = "line", reduce = merge)]
    fn on_threads(text: &str) -> Stats {
        stats(text)
    }

    /// 2,000,000 lines, about 32 MB, of 400 stations.
    fn text() -> String {
        let mut s = String::with_capacity(34 << 20);
        for i in 0..2_000_000u64 {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            s.push_str(&format!("station{};{}.{}\n", x % 400, x % 100, x % 10));
        }
        s
    }

    #[divan::bench(sample_count = 10)]
    fn threads(b: Bencher<'_, '_>) {
        let text = text();
        b.bench_local(|| on_threads(black_box(&text)));
    }

    #[divan::bench(sample_count = 10)]
    fn rayon_by_hand(b: Bencher<'_, '_>) {
        let text = text();
        b.bench_local(|| {
            let bytes = black_box(&text).as_bytes();
            let step = bytes.len() / 8;
            let mut cuts = vec![0];
            for k in 1..8 {
                let at = k * step;
                let nl = bytes[at..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| at + p + 1);
                cuts.push(nl);
            }
            cuts.push(bytes.len());
            (0..8)
                .into_par_iter()
                .map(|k| stats(&text[cuts[k]..cuts[k + 1]]))
                .reduce(BTreeMap::new, merge)
        });
    }

    /// The text in a plain `String` under the shared heap: read in place by the workers.
    #[divan::bench(sample_count = 10)]
    fn processes_string_on_shared_heap(b: Bencher<'_, '_>) {
        let text = text();
        assert!(HEAP.holds(text.as_ptr()));
        let copied = decor::shm::copied_bytes();
        assert_eq!(on_processes(&text), on_threads(&text));
        assert!(
            decor::shm::copied_bytes() - copied < (1 << 20),
            "results only"
        );
        b.bench_local(|| on_processes(black_box(&text)));
    }

    /// The text outside the heap: one copy into shared memory per call.
    #[divan::bench(sample_count = 10)]
    fn processes_string_outside_heap(b: Bencher<'_, '_>) {
        HEAP.set_threshold(usize::MAX);
        let text = text();
        HEAP.set_threshold(decor::shm::DEFAULT_THRESHOLD);
        assert!(!HEAP.holds(text.as_ptr()));
        let copied = decor::shm::copied_bytes();
        assert_eq!(on_processes(&text), on_threads(&text));
        assert!(decor::shm::copied_bytes() - copied >= text.len() as u64);
        b.bench_local(|| on_processes(black_box(&text)));
    }
}

/// The parts of a processes call on an ordinary `Vec`: the transfer alone, the compute alone.
mod breakdown_8m {
    use super::*;

    /// Transfer: copying the 64 MB input into warm shared memory, on one thread (the pool
    /// threads split this copy and overlap it with the work; a `SharedVec` or the shared heap
    /// saves it).
    #[divan::bench(sample_count = 40)]
    fn transfer_copy_into_shared_memory(b: Bencher<'_, '_>) {
        let xs = outside_heap(N);
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

/// Dispatch of 8 tiny chunks after the pool sat idle (not timed): what a program that calls
/// now and then pays, when every waiter has gone to sleep.
mod dispatch_8x8_after_idle {
    use super::*;

    fn after(ms: u64) -> impl FnMut() {
        move || std::thread::sleep(std::time::Duration::from_millis(ms))
    }

    #[divan::bench(args = [100, 1000], sample_count = 10)]
    fn threads(b: Bencher<'_, '_>, idle_ms: u64) {
        let xs = vec![1u64; 64];
        b.with_inputs(after(idle_ms))
            .bench_local_values(|()| sum_on_threads(black_box(&xs)));
    }

    #[divan::bench(args = [100, 1000], sample_count = 10)]
    fn processes(b: Bencher<'_, '_>, idle_ms: u64) {
        let xs = SharedVec::filled(64, 1u64).unwrap();
        assert_eq!(sum_on_processes(&xs), 64);
        b.with_inputs(after(idle_ms))
            .bench_local_values(|()| sum_on_processes(black_box(&xs)));
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

/// What the shared heap costs the rest of a program: small-allocation workloads on the heap
/// against `System` directly, and a large block's whole life (allocate, touch, free).
mod allocation {
    use super::*;

    fn on(heap: bool, f: impl FnOnce()) {
        assert_eq!(
            HEAP.stats().allocations,
            0,
            "no heap block is live across the switch"
        );
        ON_HEAP.store(heap, Ordering::Relaxed);
        f();
        ON_HEAP.store(true, Ordering::Relaxed);
    }

    fn push(n: u64) -> Vec<u64> {
        let mut v = Vec::new();
        for i in 0..n {
            v.push(i);
        }
        v
    }

    fn hashmap_10k() -> HashMap<u64, String> {
        (0..10_000u64).map(|i| (i, i.to_string())).collect()
    }

    /// Grows to 80 KB: every block under the threshold.
    #[divan::bench(args = [false, true], sample_count = 100)]
    fn vec_push_10k(b: Bencher<'_, '_>, shared_heap: bool) {
        on(shared_heap, || b.bench_local(|| push(10_000)));
    }

    /// Grows to a capacity of exactly 1 MiB: the last block crosses into shared memory.
    #[divan::bench(args = [false, true], sample_count = 100)]
    fn vec_push_100k(b: Bencher<'_, '_>, shared_heap: bool) {
        on(shared_heap, || b.bench_local(|| push(100_000)));
    }

    #[divan::bench(args = [false, true], sample_count = 100)]
    fn hashmap_build_10k(b: Bencher<'_, '_>, shared_heap: bool) {
        on(shared_heap, || b.bench_local(hashmap_10k));
    }

    /// 8 MiB: `vec![0u8; n]` zeroed, one byte per page written, freed.
    #[divan::bench(args = [false, true], sample_count = 100)]
    fn large_8mib_alloc_touch_free(b: Bencher<'_, '_>, shared_heap: bool) {
        on(shared_heap, || {
            b.bench_local(|| {
                let mut v = vec![0u8; 8 << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                black_box(v);
            })
        });
    }
}

/// The floor under any dispatch to sleeping processes on this machine, with no decor code: two
/// forked processes that wait on a futex in shared memory (spinning 50 µs first, as decor's
/// workers do), both woken and waited for until each has answered. `warm`: back to back;
/// `after_idle`: after they fell asleep.
mod wake_floor {
    use super::*;
    use std::time::Duration;

    use floor::round;

    #[divan::bench(sample_count = 300, sample_size = 10)]
    fn warm(b: Bencher<'_, '_>) {
        round();
        b.bench_local(round);
    }

    #[divan::bench(args = [100, 1000], sample_count = 10)]
    fn after_idle(b: Bencher<'_, '_>, idle_ms: u64) {
        round();
        b.with_inputs(|| std::thread::sleep(Duration::from_millis(idle_ms)))
            .bench_local_values(|()| round());
    }
}
