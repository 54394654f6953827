//! A real text aggregation on processes against threads: the One Billion Row Challenge's shape
//! (`name;value` lines, per-station min/mean/max) over a generated file of at least 300 MB.
//!
//! ```text
//! cargo bench -p decor --bench aggregation [-- --rows N --rounds N]
//! ```
//!
//! The file (20,000,000 rows of 8,888 stations by default, about 320 MB) is written once to the
//! temporary directory. Two inputs, each aggregated by the same body on threads and on processes,
//! in interleaved rounds:
//! - the file read into a plain `Vec<u8>`, which lives under the shared heap (the global
//!   allocator here), so the workers read it in place;
//! - the file mapped with `decor::shm::MappedFile`.
//!
//! It prints each way's median and the processes/threads ratio of medians; the target is ≤ 1.10×.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use decor::parallel_chunks;
use decor::serde::{Deserialize, Serialize};
use decor::shm::{MappedFile, SharedHeap};

#[path = "common/interleave.rs"]
mod interleave;

#[global_allocator]
static HEAP: SharedHeap = SharedHeap::new();

/// One station's statistics, in tenths of a degree, as the challenge's fixed one-decimal values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(crate = "decor::serde")]
struct Stat {
    min: i32,
    max: i32,
    sum: i64,
    n: u64,
}

type Stats = HashMap<String, Stat>;

fn merge(mut a: Stats, b: Stats) -> Stats {
    for (name, s) in b {
        a.entry(name)
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

/// `-12.3` as -123.
fn tenths(v: &[u8]) -> i32 {
    let (neg, v) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let x = v
        .iter()
        .filter(|c| c.is_ascii_digit())
        .fold(0i32, |x, &c| x * 10 + i32::from(c - b'0'));
    if neg { -x } else { x }
}

/// The statistics of whole `name;value` lines.
fn stats(bytes: &[u8]) -> Stats {
    let mut out = Stats::new();
    for line in bytes.split(|&b| b == b'\n') {
        let Some(at) = line.iter().position(|&b| b == b';') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..at]) else {
            continue;
        };
        let v = tenths(&line[at + 1..]);
        match out.get_mut(name) {
            Some(t) => {
                t.min = t.min.min(v);
                t.max = t.max.max(v);
                t.sum += i64::from(v);
                t.n += 1;
            }
            None => {
                let first = Stat {
                    min: v,
                    max: v,
                    sum: v.into(),
                    n: 1,
                };
                out.insert(name.to_owned(), first);
            }
        }
    }
    out
}

#[parallel_chunks(chunks = 16, backend = "threads", cut_at = "line", reduce = merge)]
fn vec_on_threads(bytes: &[u8]) -> Stats {
    stats(bytes)
}

#[parallel_chunks(chunks = 16, backend = "processes", cut_at = "line", reduce = merge)]
fn vec_on_processes(bytes: &[u8]) -> Stats {
    stats(bytes)
}

#[parallel_chunks(chunks = 16, backend = "threads", cut_at = "line", reduce = merge)]
fn text_on_threads(text: &str) -> Stats {
    stats(text.as_bytes())
}

#[parallel_chunks(chunks = 16, backend = "processes", cut_at = "line", reduce = merge)]
fn text_on_processes(text: &str) -> Stats {
    stats(text.as_bytes())
}

#[parallel_chunks(chunks = 16, backend = "threads", cut_at = "line", reduce = merge)]
fn mapped_on_threads(file: &MappedFile) -> Stats {
    stats(file)
}

#[parallel_chunks(chunks = 16, backend = "processes", cut_at = "line", reduce = merge)]
fn mapped_on_processes(file: &MappedFile) -> Stats {
    stats(file)
}

/// 8,888 names of 3 to 24 letters, some of them not ASCII, as the challenge's city names.
fn station_names(count: u64) -> Vec<String> {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "ny", "ber", "sa", "ão", "mi", "to", "ře", "van", "du", "el", "ri", "os", "gu",
        "é",
    ];
    (0..count)
        .map(|i| {
            let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut name = String::new();
            while name.chars().count() < 2 + (i % 12) as usize {
                name.push_str(SYLLABLES[(x % 16) as usize]);
                x = x.rotate_right(5) ^ i;
            }
            format!("{name}{i}")
        })
        .collect()
}

fn write_rows(rows: u64) -> std::io::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("decor-1brc-{rows}.txt"));
    if path.exists() {
        return Ok(path);
    }
    let names = station_names(8_888);
    let partial = path.with_extension("partial");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial)?);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = (x >> 20) % 1999;
        let (sign, t) = if t >= 1000 { ("-", t - 1000) } else { ("", t) };
        let name = &names[(x % names.len() as u64) as usize];
        writeln!(out, "{name};{sign}{}.{}", t / 10, t % 10)?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// A named way to aggregate the file.
type Way<'a> = (&'a str, Box<dyn Fn() -> Stats + 'a>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let interleave::Args { size, rounds, only } = interleave::Args::parse("rows", 20_000_000, 9)?;
    let rows = size as u64;
    let path = write_rows(rows)?;
    let bytes = std::fs::read(&path)?;
    assert!(
        HEAP.holds(bytes.as_ptr()),
        "the Vec lives under the shared heap"
    );
    let text = String::from_utf8(bytes.clone())?;
    let mapped = MappedFile::open(&path)?;
    let expected = stats(&bytes);
    println!(
        "{}: {:.1} MB, {rows} rows, {} stations, {rounds} interleaved rounds, {} workers",
        path.display(),
        bytes.len() as f64 / 1e6,
        expected.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let copied = decor::shm::copied_bytes();
    let ways: Vec<Way<'_>> = vec![
        (
            "read each call, threads",
            Box::new(|| vec_on_threads(&std::fs::read(&path).unwrap())),
        ),
        (
            "read each call, processes",
            Box::new(|| vec_on_processes(&std::fs::read(&path).unwrap())),
        ),
        (
            "Vec under SharedHeap, threads",
            Box::new(|| vec_on_threads(&bytes)),
        ),
        (
            "Vec under SharedHeap, processes",
            Box::new(|| vec_on_processes(&bytes)),
        ),
        (
            "String under SharedHeap, threads",
            Box::new(|| text_on_threads(&text)),
        ),
        (
            "String under SharedHeap, processes",
            Box::new(|| text_on_processes(&text)),
        ),
        (
            "MappedFile, threads",
            Box::new(|| mapped_on_threads(&mapped)),
        ),
        (
            "MappedFile, processes",
            Box::new(|| mapped_on_processes(&mapped)),
        ),
    ];
    let ways: Vec<_> = ways
        .into_iter()
        .filter(|(name, _)| name.contains(&only))
        .collect();
    let medians = interleave::medians(ways.len(), rounds, |k| {
        let (name, run) = &ways[k];
        assert!(run() == expected, "{name} gives the same statistics");
    });
    let names: Vec<&str> = ways.iter().map(|(name, _)| *name).collect();
    let copied = decor::shm::copied_bytes() - copied;
    println!("{:<34} {:>10} {:>12}", "way", "median", "vs threads");
    for (k, (name, m)) in names.iter().zip(&medians).enumerate() {
        let ratio = interleave::vs_threads(&names, &medians, k)
            .map_or(String::new(), |r| format!("{r:.3}x"));
        println!("{name:<34} {:>7.1} ms {ratio:>12}", m.as_secs_f64() * 1e3);
    }
    println!(
        "bytes copied into shared memory over all calls: {copied} (results only; the input crosses in place)"
    );
    Ok(())
}
