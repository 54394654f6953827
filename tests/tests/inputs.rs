//! Inputs as users have them: bytes cut at lines (a log or CSV read as `&[u8]` or `Vec<u8>`), and
//! files mapped with `decor::shm::MappedFile`, whose chunks reach worker processes without a
//! copy. Every test that could hang runs under a time limit of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use decor::shm::{MappedFile, copied_bytes};
use decor::{Backend, Plan, parallel_chunks};
use decor_tests::{exclusive, within};

const LIMIT: Duration = Duration::from_secs(60);

fn data() -> Vec<u8> {
    (0..20_000)
        .flat_map(|i| format!("station{};{}.{}\n", i % 37, i % 50, i % 10).into_bytes())
        .collect()
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[parallel_chunks(chunks = 64, cut_at = "line", reduce = "concat")]
fn line_counts(bytes: &[u8]) -> Vec<(usize, bool)> {
    vec![(newlines(bytes), bytes.ends_with(b"\n"))]
}

#[parallel_chunks(chunks = 64, cut_at = "line", reduce = "sum")]
fn owned_line_count(bytes: Vec<u8>) -> usize {
    assert!(bytes.ends_with(b"\n"), "a chunk ends at a line's end");
    newlines(&bytes)
}

#[parallel_chunks(
    chunks = 64,
    workers = 2,
    backend = "processes",
    cut_at = "line",
    reduce = "concat"
)]
fn line_counts_on_processes(bytes: &[u8]) -> Vec<(usize, bool)> {
    vec![(newlines(bytes), bytes.ends_with(b"\n"))]
}

#[test]
fn sixty_four_chunks_of_bytes_cut_at_lines_count_what_one_pass_counts() {
    let _pool = exclusive();
    let data = data();
    let single = newlines(&data);
    let parts = line_counts(&data);
    assert_eq!(parts.len(), 64);
    assert!(parts.iter().all(|(_, whole)| *whole), "no line is split");
    assert_eq!(parts.iter().map(|(n, _)| n).sum::<usize>(), single);
    assert_eq!(owned_line_count(data.clone()), single);
    let remote = within(LIMIT, "bytes cut at lines on processes", move || {
        line_counts_on_processes(&data)
    });
    assert_eq!(remote, parts, "the same chunks on processes");
}

/// Per-station count, min and max of `name;value` lines.
type Stats = BTreeMap<String, (u64, f64, f64)>;

fn merge(mut a: Stats, b: Stats) -> Stats {
    for (k, (n, lo, hi)) in b {
        let e = a.entry(k).or_insert((0, f64::MAX, f64::MIN));
        *e = (e.0 + n, e.1.min(lo), e.2.max(hi));
    }
    a
}

fn stats(bytes: &[u8]) -> Stats {
    let mut out = Stats::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(line).unwrap();
        let (name, value) = text.split_once(';').unwrap();
        let v: f64 = value.parse().unwrap();
        let e = out
            .entry(name.to_owned())
            .or_insert((0, f64::MAX, f64::MIN));
        *e = (e.0 + 1, e.1.min(v), e.2.max(v));
    }
    out
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", cut_at = "line", reduce = merge)]
fn file_stats(file: &MappedFile) -> Stats {
    stats(file)
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", cut_at = "line", reduce = merge)]
fn text_stats(text: &str) -> Stats {
    stats(text.as_bytes())
}

#[test]
fn a_mapped_file_reaches_worker_processes_without_a_copy() {
    let _pool = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stations.csv");
    std::fs::write(&path, data()).unwrap();
    let file = MappedFile::open(&path).unwrap();
    assert_eq!(&file[..], data().as_slice());
    let expected = stats(&file);
    let (by_file, by_text, copied) = within(LIMIT, "a mapped file on processes", move || {
        let before = copied_bytes();
        let by_file = file_stats(&file);
        let by_text = text_stats(file.text().unwrap());
        (by_file, by_text, copied_bytes() - before)
    });
    assert_eq!(by_file, expected);
    assert_eq!(by_text, expected);
    assert_eq!(copied, 0, "workers read the file's pages in place");
}

#[test]
fn a_mapped_file_is_cut_by_hand_with_a_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("words.txt");
    std::fs::write(&path, "alpha beta gamma delta epsilon zeta eta theta").unwrap();
    let file = MappedFile::open(&path).unwrap();
    let words = Plan::new()
        .chunks(3)
        .cut_at(decor::chunks::CutAt::Whitespace)
        .backend(Backend::Threads)
        .map(&file, |chunk: &MappedFile| {
            assert!(chunk.text().unwrap().ends_with(' ') || chunk.ends_with(b"theta"));
            chunk.text().unwrap().split_whitespace().count()
        });
    assert_eq!(words.len(), 3);
    assert_eq!(words.iter().sum::<usize>(), 8);
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let empty = MappedFile::open(&empty).unwrap();
    assert!(empty.is_empty());
    assert_eq!(file_stats(&empty), Stats::new());
}
