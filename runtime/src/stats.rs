//! Process-wide timing statistics, one row per function, fed by every `#[timed]` call.
//!
//! Each function has a fixed-size log-linear histogram (16 buckets per power of two, so any
//! percentile is within about 3 % of the true value), plus exact call count, total, min and max.
//! Memory per function is constant however many calls are made. To stay cheap under many threads
//! the histogram is striped: each thread writes to one of a few cache-aligned shards, picked once
//! per thread, and a snapshot adds the shards up. Recording is two uncontended atomic adds and two
//! loads; statistics are kept whether or not a `tracing` subscriber is installed.
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

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
struct Shard {
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
    shards: Box<[Shard]>,
}

impl Recorder {
    /// The recorder for `name`, created and registered on first use.
    pub(crate) fn for_name(name: &'static str) -> &'static Recorder {
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name).or_insert_with(|| {
            Box::leak(Box::new(Recorder {
                name,
                shards: (0..shard_count()).map(|_| Shard::new()).collect(),
            }))
        })
    }

    /// Adds one call that took `ns` nanoseconds.
    #[inline]
    pub(crate) fn record(&self, ns: u64) {
        let shard = &self.shards[thread_shard() & (self.shards.len() - 1)];
        shard.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        shard.total_ns.fetch_add(ns, Ordering::Relaxed);
        // Min and max change rarely after the first calls: read first, write only on news.
        if ns < shard.min_ns.load(Ordering::Relaxed) {
            shard.min_ns.fetch_min(ns, Ordering::Relaxed);
        }
        if ns > shard.max_ns.load(Ordering::Relaxed) {
            shard.max_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Option<FnStats> {
        let mut counts = vec![0u64; BUCKETS];
        let (mut total, mut min, mut max) = (0u64, u64::MAX, 0u64);
        for shard in self.shards.iter() {
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

fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .next_power_of_two()
        .clamp(2, 16)
}

/// A small number fixed per thread, so that threads spread over the shards.
#[inline]
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SHARD: Cell<usize> = const { Cell::new(usize::MAX) });
    SHARD.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        s.set(v);
        v
    })
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

/// Forgets every call recorded so far. Functions keep their rows, which reappear on their next call.
pub fn reset() {
    for r in registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        for s in r.shards.iter() {
            s.reset();
        }
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
    table.to_string()
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
    fn bucket_middle_is_within_four_percent() {
        for ns in [17u64, 100, 999, 12_345, 1_000_000, 987_654_321, 1 << 40] {
            let mid = bucket_mid(bucket_of(ns));
            let err = (mid as f64 - ns as f64).abs() / ns as f64;
            assert!(err <= 1.0 / 16.0, "{ns} -> {mid}");
        }
    }
}
