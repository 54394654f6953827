//! Process-wide timing statistics, one row per function, fed by every `#[timed]` call.
//!
//! Each function has a fixed-size log-linear histogram (16 buckets per power of two, so any
//! percentile is within about 3 % of the true value), plus exact call count, total, min and max.
//! Memory does not grow with the number of calls. So that a call costs the same however many
//! threads call the function, every thread records into a histogram of its own (a *shard*, about
//! 8 KiB), which no other thread writes: a call is a few plain loads and stores, no atomic
//! read-modify-write and no shared cache line. A snapshot adds the shards up. When a thread ends,
//! its shards go to the next threads that call the same functions, counts kept: a function has at
//! most as many shards as threads ever called it *at the same time*, so a stream of short-lived
//! threads costs no more memory than one. Statistics are kept whether or not a `tracing` subscriber is installed.
//!
//! ```
//! use std::time::Duration;
//!
//! #[decor::timed]
//! fn work() { std::thread::sleep(Duration::from_millis(1)); }
//!
//! for _ in 0..3 { work(); }
//! let row = decor::stats::snapshot().into_iter().find(|s| s.name.ends_with("::work")).unwrap();
//! assert_eq!(row.calls, 3);
//! assert!(row.min >= Duration::from_millis(1) && row.min <= row.p50 && row.p99 <= row.max);
//! println!("{}", decor::stats::report());
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};

use crate::fmt::HumanDuration;

/// Statistics of one function, as returned by [`snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnStats {
    /// The function, as in the `function` field of its events: `"module::path::name"`.
    pub name: String,
    /// Completed calls, panicking ones included.
    pub calls: u64,
    /// Sum of all call durations.
    pub total: Duration,
    /// Fastest call.
    pub min: Duration,
    /// `total / calls`.
    pub mean: Duration,
    /// Median call, from the histogram (within about 3 %, always between `min` and `max`).
    pub p50: Duration,
    /// 99th percentile call, from the histogram (within about 3 %, always between `min` and `max`).
    pub p99: Duration,
    /// Slowest call.
    pub max: Duration,
}

/// Sub-buckets per power of two: 2^4 = 16, i.e. buckets at most 1/16 of their value wide.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values below `SUB` get a bucket each; above, `SUB` buckets per power of two up to 2^64.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros(); // >= SUB_BITS
    let mantissa = (ns >> (exp - SUB_BITS)) as usize & (SUB - 1);
    (exp - SUB_BITS + 1) as usize * SUB + mantissa
}

/// The middle of a bucket's range, as the value a percentile reports.
fn bucket_mid(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = (index / SUB) as u32 + SUB_BITS - 1;
    let mantissa = (index % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (SUB as u64 + mantissa) << (exp - SUB_BITS);
    low.saturating_add(width / 2)
}

#[repr(align(64))]
pub(crate) struct Shard {
    buckets: Box<[AtomicU64]>,
    total_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Shard {
    fn new() -> Self {
        Shard {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            max_ns: AtomicU64::new(0),
        }
    }

    /// Adds one call, by the shard's only writer: plain loads and stores, which a concurrent
    /// snapshot reads whole.
    #[inline]
    fn add_owned(&self, ns: u64) {
        let bump = |a: &AtomicU64, by: u64| {
            a.store(
                a.load(Ordering::Relaxed).wrapping_add(by),
                Ordering::Relaxed,
            )
        };
        bump(&self.buckets[bucket_of(ns)], 1);
        bump(&self.total_ns, ns);
        if ns < self.min_ns.load(Ordering::Relaxed) {
            self.min_ns.store(ns, Ordering::Relaxed);
        }
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.store(ns, Ordering::Relaxed);
        }
    }

    /// Adds one call to a shard that several threads may write.
    fn add_shared(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.min_ns.fetch_min(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.total_ns.store(0, Ordering::Relaxed);
        self.min_ns.store(u64::MAX, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }
}

/// The statistics of one function name. Shared by every site that reports under that name.
pub(crate) struct Recorder {
    name: &'static str,
    /// Its place in every thread's table of shards.
    id: usize,
    /// Every shard it ever had: a snapshot adds them up.
    shards: Mutex<Vec<&'static Shard>>,
    /// The shards of threads that ended, for the next threads to take.
    free: Mutex<Vec<&'static Shard>>,
    /// For calls made while their thread is being torn down, its own shards gone.
    shared: Shard,
}

/// This thread's shard of each function it called, by the function's `id`.
#[derive(Default)]
struct Local(Vec<Option<(&'static Recorder, &'static Shard)>>);

impl Drop for Local {
    fn drop(&mut self) {
        for (recorder, shard) in self.0.drain(..).flatten() {
            lock(&recorder.free).push(shard);
        }
    }
}

thread_local!(static LOCAL: RefCell<Local> = RefCell::new(Local::default()));

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// The recorder for `name`, created and registered on first use.
    pub(crate) fn for_name(name: &'static str) -> &'static Recorder {
        let mut map = lock(registry());
        let id = map.len();
        map.entry(name).or_insert_with(|| {
            Box::leak(Box::new(Recorder {
                name,
                id,
                shards: Mutex::new(Vec::new()),
                free: Mutex::new(Vec::new()),
                shared: Shard::new(),
            }))
        })
    }

    /// Adds one call that took `ns` nanoseconds, to this thread's shard.
    #[inline]
    pub(crate) fn record(&'static self, ns: u64) {
        let owned = LOCAL.try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return false;
            };
            let shard = match local.0.get(self.id) {
                Some(Some((_, shard))) => *shard,
                _ => self.claim(&mut local),
            };
            shard.add_owned(ns);
            true
        });
        if owned != Ok(true) {
            self.shared.add_shared(ns);
        }
    }

    /// A shard for this thread: one a finished thread left, or a new one.
    #[cold]
    fn claim(&'static self, local: &mut Local) -> &'static Shard {
        let shard = lock(&self.free).pop().unwrap_or_else(|| {
            let shard: &'static Shard = Box::leak(Box::new(Shard::new()));
            lock(&self.shards).push(shard);
            shard
        });
        if local.0.len() <= self.id {
            local.0.resize(self.id + 1, None);
        }
        local.0[self.id] = Some((self, shard));
        shard
    }

    fn snapshot(&self) -> Option<FnStats> {
        let mut counts = vec![0u64; BUCKETS];
        let (mut total, mut min, mut max) = (0u64, u64::MAX, 0u64);
        let shards = lock(&self.shards);
        for shard in shards.iter().copied().chain([&self.shared]) {
            for (c, b) in counts.iter_mut().zip(shard.buckets.iter()) {
                *c += b.load(Ordering::Relaxed);
            }
            total = total.saturating_add(shard.total_ns.load(Ordering::Relaxed));
            min = min.min(shard.min_ns.load(Ordering::Relaxed));
            max = max.max(shard.max_ns.load(Ordering::Relaxed));
        }
        let calls: u64 = counts.iter().sum();
        if calls == 0 {
            return None;
        }
        let percentile = |q: f64| {
            let rank = ((q * calls as f64).ceil() as u64).clamp(1, calls);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_mid(i).clamp(min, max);
                }
            }
            max
        };
        Some(FnStats {
            name: self.name.to_owned(),
            calls,
            total: Duration::from_nanos(total),
            min: Duration::from_nanos(min),
            mean: Duration::from_nanos(total / calls),
            p50: Duration::from_nanos(percentile(0.50)),
            p99: Duration::from_nanos(percentile(0.99)),
            max: Duration::from_nanos(max),
        })
    }
}

fn registry() -> &'static Mutex<HashMap<&'static str, &'static Recorder>> {
    static REGISTRY: OnceLock<Mutex<HashMap<&'static str, &'static Recorder>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The statistics of every function called at least once since start or the last [`reset`],
/// sorted by name.
pub fn snapshot() -> Vec<FnStats> {
    let recorders: Vec<&'static Recorder> = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .copied()
        .collect();
    let mut rows: Vec<FnStats> = recorders.iter().filter_map(|r| r.snapshot()).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// Retries of one `#[parallel_chunks]` function, as returned by [`retries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryStats {
    /// The function, `"module::path::name"`.
    pub name: String,
    /// Chunk attempts that failed and were run again (`retries`), on any backend.
    pub retries: u64,
}

fn retry_counts() -> &'static Mutex<HashMap<&'static str, u64>> {
    static COUNTS: OnceLock<Mutex<HashMap<&'static str, u64>>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

/// Counts one retry of a chunk of `function` (only failures pay for it).
pub(crate) fn count_retry(function: &'static str) {
    *lock(retry_counts()).entry(function).or_default() += 1;
}

/// How many chunks each function ran again since start or the last [`reset`], sorted by name:
/// only functions with at least one retry.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// static FAILED: AtomicBool = AtomicBool::new(false);
///
/// #[decor::parallel_chunks(chunks = 2, retries = 2, backoff = "1ms..2ms", reduce = "sum")]
/// fn once_flaky(xs: &[u64]) -> Result<u64, String> {
///     if !FAILED.swap(true, Ordering::Relaxed) { return Err("503".into()) }
///     Ok(xs.iter().sum())
/// }
/// assert_eq!(once_flaky(&[1, 2]), Ok(3));
/// let row = decor::stats::retries().into_iter().find(|r| r.name.ends_with("once_flaky")).unwrap();
/// assert_eq!(row.retries, 1);
/// ```
pub fn retries() -> Vec<RetryStats> {
    let mut rows: Vec<RetryStats> = lock(retry_counts())
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| RetryStats {
            name: (*name).to_owned(),
            retries: *n,
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// Forgets every call and retry recorded so far. Functions keep their rows, which reappear on
/// their next call.
pub fn reset() {
    lock(retry_counts()).clear();
    for r in registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        for s in lock(&r.shards).iter() {
            s.reset();
        }
        r.shared.reset();
    }
}

/// [`snapshot`] as an aligned table, one row a function, for a terminal or a log.
///
/// ```text
/// function         calls    total     mean      min      p50      p99      max
/// demo::load           3   3.41ms   1.14ms   1.08ms   1.13ms   1.20ms   1.20ms
/// ```
pub fn report() -> String {
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header([
        "function", "calls", "total", "mean", "min", "p50", "p99", "max",
    ]);
    for s in snapshot() {
        let d = |d: Duration| HumanDuration(d).to_string();
        table.add_row([
            s.name.clone(),
            s.calls.to_string(),
            d(s.total),
            d(s.mean),
            d(s.min),
            d(s.p50),
            d(s.p99),
            d(s.max),
        ]);
    }
    for i in 1..8 {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = table.to_string();
    for r in retries() {
        out.push_str(&format!(
            "\n{} retried {} chunk attempt(s)",
            r.name, r.retries
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_u64() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(ns);
            assert!(b >= last && b < BUCKETS, "{ns} -> {b}");
            last = b;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn threads_that_end_hand_their_shards_on_and_lose_no_call() {
        let recorder = Recorder::for_name("stats::tests::short_lived");
        // 50 short-lived threads one after another: one shard serves them all.
        for _ in 0..50 {
            std::thread::spawn(move || recorder.record(1_000))
                .join()
                .unwrap();
        }
        assert_eq!(lock(&recorder.shards).len(), 1);
        // 4 at a time, in 10 rounds: 4 shards at most.
        for _ in 0..10 {
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..100 {
                            recorder.record(2_000)
                        }
                    });
                }
            });
        }
        assert!(lock(&recorder.shards).len() <= 4);
        let stats = recorder.snapshot().unwrap();
        assert_eq!(stats.calls, 50 + 10 * 4 * 100);
        assert_eq!(
            stats.total,
            Duration::from_nanos(50 * 1_000 + 4_000 * 2_000)
        );
    }

    #[test]
    fn bucket_middle_is_within_four_percent() {
        for ns in [17u64, 100, 999, 12_345, 1_000_000, 987_654_321, 1 << 40] {
            let mid = bucket_mid(bucket_of(ns));
            let err = (mid as f64 - ns as f64).abs() / ns as f64;
            assert!(err <= 1.0 / 16.0, "{ns} -> {mid}");
        }
    }
}
