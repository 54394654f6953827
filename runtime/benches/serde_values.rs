//! Serde values crossing to worker processes: a `&[String]` of 20-byte lines and a
//! `&[Record]` (a struct of `String`s and numbers), against the same functions on threads.
//!
//! ```text
//! cargo bench -p decor --bench serde_values [-- --lines N --rounds N]
//! ```
//!
//! Each way runs once per round, in turn; it prints medians, MB/s of input text (the strings'
//! bytes) per second of the whole call, and processes/threads. Beside the calls, the encoding
//! and the decoding of the same input alone, on this thread, show where the limit is. Targets:
//! `&[String]` ≥ 600 MB/s end to end on 2 workers; the records' lookup on processes ≤ 3× threads.

use std::collections::HashMap;
use std::sync::OnceLock;

use decor::parallel_chunks;
use decor::serde::{Deserialize, Serialize};

#[path = "common/interleave.rs"]
mod interleave;

/// A record of the kind a program reads from a CSV file: text and numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "decor::serde")]
struct Record {
    city: String,
    country: String,
    population: u64,
    lat: f64,
    lon: f64,
}

/// Each line's length: the input's text bytes the call reads.
#[parallel_chunks(chunks = 16, backend = "threads", reduce = "sum")]
fn lengths_on_threads(lines: &[String]) -> usize {
    lines.iter().map(String::len).sum()
}

#[parallel_chunks(chunks = 16, backend = "processes", reduce = "sum")]
fn lengths_on_processes(lines: &[String]) -> usize {
    lines.iter().map(String::len).sum()
}

/// Each line upper-cased: strings in, strings out.
#[parallel_chunks(chunks = 16, backend = "threads", reduce = "concat")]
fn upper_on_threads(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| l.to_ascii_uppercase()).collect()
}

#[parallel_chunks(chunks = 16, backend = "processes", reduce = "concat")]
fn upper_on_processes(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| l.to_ascii_uppercase()).collect()
}

/// The country codes of a fixed table, looked up once per record.
fn codes() -> &'static HashMap<String, u32> {
    static CODES: OnceLock<HashMap<String, u32>> = OnceLock::new();
    CODES.get_or_init(|| (0..200).map(|i| (format!("country{i}"), i)).collect())
}

/// People per country code, one hash lookup per record.
fn people(records: &[Record]) -> Vec<u64> {
    let mut out = vec![0u64; 200];
    for r in records {
        if let Some(&code) = codes().get(&r.country) {
            out[code as usize] += r.population;
        }
    }
    out
}

fn add(mut a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    a
}

#[parallel_chunks(chunks = 16, backend = "threads", reduce = add)]
fn people_on_threads(records: &[Record]) -> Vec<u64> {
    people(records)
}

#[parallel_chunks(chunks = 16, backend = "processes", reduce = add)]
fn people_on_processes(records: &[Record]) -> Vec<u64> {
    people(records)
}

/// `n` lines of exactly 20 bytes.
fn lines(n: usize) -> Vec<String> {
    (0..n as u64)
        .map(|i| {
            format!(
                "line {:>10} abcd",
                i.wrapping_mul(0x9e37_79b9) % 10_000_000_000
            )
        })
        .inspect(|l| debug_assert_eq!(l.len(), 20))
        .collect()
}

fn records(n: usize) -> Vec<Record> {
    (0..n as u64)
        .map(|i| Record {
            city: format!("city{}", i % 5000),
            country: format!("country{}", i % 211),
            population: i % 100_000,
            lat: (i % 180) as f64 - 90.0,
            lon: (i % 360) as f64 - 180.0,
        })
        .collect()
}

/// A named way to run, and the text bytes of input it reads.
type Way<'a> = (&'a str, Box<dyn Fn() + 'a>, usize);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let interleave::Args {
        size: n,
        rounds,
        only,
    } = interleave::Args::parse("lines", 2_000_000, 11)?;
    let text = lines(n);
    let recs = records(n / 2);
    let text_bytes: usize = text.iter().map(String::len).sum();
    let rec_bytes: usize = recs
        .iter()
        .map(|r| r.city.len() + r.country.len() + 24)
        .sum();
    assert_eq!(lengths_on_processes(&text), text_bytes);
    assert_eq!(upper_on_processes(&text), upper_on_threads(&text));
    assert_eq!(people_on_processes(&recs), people_on_threads(&recs));
    let encoded = postcard::to_allocvec(&text)?;
    let encoded_recs = postcard::to_allocvec(&recs)?;
    let ways: Vec<Way<'_>> = vec![
        (
            "encode &[String] alone (one thread)",
            Box::new(|| drop(postcard::to_allocvec(&text))),
            text_bytes,
        ),
        (
            "decode Vec<String> alone (one thread)",
            Box::new(|| drop(postcard::from_bytes::<Vec<String>>(&encoded))),
            text_bytes,
        ),
        (
            "&[String] -> usize, threads",
            Box::new(|| {
                std::hint::black_box(lengths_on_threads(&text));
            }),
            text_bytes,
        ),
        (
            "&[String] -> usize, processes",
            Box::new(|| {
                std::hint::black_box(lengths_on_processes(&text));
            }),
            text_bytes,
        ),
        (
            "&[String] -> Vec<String>, threads",
            Box::new(|| drop(upper_on_threads(&text))),
            text_bytes,
        ),
        (
            "&[String] -> Vec<String>, processes",
            Box::new(|| drop(upper_on_processes(&text))),
            text_bytes,
        ),
        (
            "encode &[Record] alone (one thread)",
            Box::new(|| drop(postcard::to_allocvec(&recs))),
            rec_bytes,
        ),
        (
            "decode Vec<Record> alone (one thread)",
            Box::new(|| drop(postcard::from_bytes::<Vec<Record>>(&encoded_recs))),
            rec_bytes,
        ),
        (
            "&[Record] lookup, threads",
            Box::new(|| drop(people_on_threads(&recs))),
            rec_bytes,
        ),
        (
            "&[Record] lookup, processes",
            Box::new(|| drop(people_on_processes(&recs))),
            rec_bytes,
        ),
    ];
    let ways: Vec<_> = ways
        .into_iter()
        .filter(|(name, _, _)| name.contains(&only))
        .collect();
    let medians = interleave::medians(ways.len(), rounds, |k| (ways[k].1)());
    let names: Vec<&str> = ways.iter().map(|(name, _, _)| *name).collect();
    println!(
        "{n} lines of 20 bytes ({:.1} MB of text), {} records, {rounds} interleaved rounds, {} cores",
        text_bytes as f64 / 1e6,
        recs.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<40} {:>10} {:>10} {:>12}",
        "way", "median", "MB/s", "vs threads"
    );
    for (k, ((name, _, bytes), m)) in ways.iter().zip(&medians).enumerate() {
        let ratio = interleave::vs_threads(&names, &medians, k)
            .map_or(String::new(), |r| format!("{r:.2}x"));
        println!(
            "{name:<40} {:>7.2} ms {:>10.0} {ratio:>12}",
            m.as_secs_f64() * 1e3,
            *bytes as f64 / m.as_secs_f64() / 1e6
        );
    }
    Ok(())
}
