//! Per-station min/mean/max over a `name;value` file, the way a user writes it: the file mapped
//! with `decor::shm::MappedFile`, one `#[parallel_chunks(cut_at = "line")]` function per backend,
//! against a hand-written rayon version, in one run (medians of interleaved rounds).
//!
//! ```text
//! cargo run --release -p decor --example station_stats -- [--lines N] [--rounds N] [FILE]
//! # with MPI (cargo feature `mpi`), ranks 1 and 2 serving the chunks:
//! cargo build --release -p decor --features mpi --example station_stats
//! mpirun -n 3 target/release/examples/station_stats
//! ```
//!
//! Without FILE it writes one of `--lines` lines (default 5,000,000) to the temporary directory.
//! "read, then send" rows read the file into a `Vec<u8>` first, as a program without
//! `MappedFile` does: on processes the bytes are copied into shared memory for each call, on
//! MPI they travel to the ranks.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use decor::parallel_chunks;
use decor::serde::{Deserialize, Serialize};
use decor::shm::MappedFile;
use rayon::prelude::*;

/// One station's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "decor::serde")]
struct Stat {
    min: f64,
    max: f64,
    sum: f64,
    n: u64,
}

type Stats = BTreeMap<String, Stat>;

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

/// The statistics of whole lines of `name;value`.
fn stats(bytes: &[u8]) -> Stats {
    let mut out = Stats::new();
    for line in bytes.split(|&b| b == b'\n') {
        let Some(at) = line.iter().position(|&b| b == b';') else {
            continue;
        };
        let (name, value) = (&line[..at], &line[at + 1..]);
        let v: f64 = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let name = String::from_utf8_lossy(name);
        match out.get_mut(name.as_ref()) {
            Some(t) => {
                t.min = t.min.min(v);
                t.max = t.max.max(v);
                t.sum += v;
                t.n += 1;
            }
            None => {
                out.insert(
                    name.into_owned(),
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

#[parallel_chunks(chunks = 16, backend = "threads", cut_at = "line", reduce = merge)]
fn on_threads(file: &MappedFile) -> Stats {
    stats(file)
}

#[parallel_chunks(chunks = 16, backend = "processes", cut_at = "line", reduce = merge)]
fn on_processes(file: &MappedFile) -> Stats {
    stats(file)
}

#[parallel_chunks(chunks = 16, backend = "processes", cut_at = "line", reduce = merge)]
fn read_then_send_processes(bytes: &[u8]) -> Stats {
    stats(bytes)
}

#[parallel_chunks(chunks = 16, backend = "mpi", cut_at = "line", reduce = merge)]
fn on_mpi(file: &MappedFile) -> Stats {
    stats(file)
}

#[parallel_chunks(chunks = 16, backend = "mpi", cut_at = "line", reduce = merge)]
fn read_then_send_mpi(bytes: &[u8]) -> Stats {
    stats(bytes)
}

/// The same statistics, sums compared to a rounding (chunks add in another order).
fn same(a: &Stats, b: &Stats) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, x), (kb, y))| {
            ka == kb
                && (x.n, x.min, x.max) == (y.n, y.min, y.max)
                && (x.sum - y.sum).abs() <= 1e-9 * x.sum.abs().max(1.0)
        })
}

/// The hand-written version: 16 line-aligned ranges on rayon's pool.
fn rayon_by_hand(bytes: &[u8]) -> Stats {
    let cuts = decor::chunks::cut_bytes_at(
        bytes,
        decor::chunks::Cut::Chunks(16),
        decor::chunks::CutAt::Line,
    );
    cuts.into_par_iter().map(stats).reduce(Stats::new, merge)
}

fn write_sample(lines: usize) -> std::io::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("decor-stations-{lines}.txt"));
    if path.exists() {
        return Ok(path);
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for i in 0..lines as u64 {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        writeln!(out, "station{};{}.{}", x % 413, x % 100, x % 10)?;
    }
    out.flush()?;
    Ok(path)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut lines, mut rounds, mut file) = (5_000_000usize, 5usize, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--lines" => lines = args.next().ok_or("--lines N")?.parse()?,
            "--rounds" => rounds = args.next().ok_or("--rounds N")?.parse()?,
            _ => file = Some(PathBuf::from(a)),
        }
    }
    let path = match file {
        Some(p) => p,
        None => write_sample(lines)?,
    };
    let mapped = MappedFile::open(&path)?;
    println!(
        "{}: {:.1} MB, {} MPI ranks serving",
        path.display(),
        mapped.len() as f64 / 1e6,
        decor::mpi_serving_ranks()
    );
    type Way<'a> = (&'a str, Box<dyn Fn() -> Stats + 'a>);
    let mut ways: Vec<Way<'_>> = vec![
        ("rayon by hand", Box::new(|| rayon_by_hand(&mapped))),
        ("threads, MappedFile", Box::new(|| on_threads(&mapped))),
        ("processes, MappedFile", Box::new(|| on_processes(&mapped))),
        (
            "processes, read then send",
            Box::new(|| read_then_send_processes(&std::fs::read(&path).expect("the file"))),
        ),
    ];
    if decor::mpi_serving_ranks() > 0 {
        ways.push(("mpi, MappedFile", Box::new(|| on_mpi(&mapped))));
        ways.push((
            "mpi, read then send",
            Box::new(|| read_then_send_mpi(&std::fs::read(&path).expect("the file"))),
        ));
    }
    let expected = rayon_by_hand(&mapped);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ways.len()];
    for _ in 0..rounds {
        for (k, (name, run)) in ways.iter().enumerate() {
            let start = Instant::now();
            let got = run();
            times[k].push(start.elapsed());
            assert!(same(&got, &expected), "{name} gives the same statistics");
        }
    }
    let threads = {
        let mut t = times[1].clone();
        t.sort();
        t[t.len() / 2]
    };
    println!("{:<28} {:>10} {:>12}", "way", "median", "vs threads");
    for ((name, _), mut t) in ways.iter().zip(times) {
        t.sort();
        let median = t[t.len() / 2];
        println!(
            "{name:<28} {:>7.1} ms {:>11.2}x",
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() / threads.as_secs_f64()
        );
    }
    println!("{} stations", expected.len());
    Ok(())
}
