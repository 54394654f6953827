//! `#[parallel_chunks]` on threads and serial: cutting, sharing, reducing, failing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use decor::parallel_chunks;
use decor_tests::capture;

#[parallel_chunks(chunks = 8, backend = "threads", reduce = "sum")]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[test]
fn the_seed_sum_is_exact() {
    let ones = vec![1u64; 8_000_000];
    assert_eq!(total(&ones), 8_000_000);
    assert_eq!(total(&[]), 0);
    assert_eq!(total(&[5]), 5);
}

#[parallel_chunks(chunks = 4, reduce = "concat")]
fn lengths(xs: &[u32]) -> Vec<usize> {
    vec![xs.len()]
}

#[parallel_chunks(chunks = 3, reduce = "concat")]
fn chunk_lengths_of(xs: Vec<u8>) -> Vec<usize> {
    vec![xs.len()]
}

#[test]
fn chunks_are_balanced_in_order_and_never_more_than_elements() {
    assert_eq!(lengths(&[0; 10]), [3, 3, 2, 2]);
    assert_eq!(lengths(&[0; 2]), [1, 1]);
    assert_eq!(lengths(&[]), [0], "an empty input calls the body once");
    assert_eq!(chunk_lengths_of(vec![1; 7]), [3, 2, 2]);
}

#[parallel_chunks(chunk_size = 3, reduce = "concat")]
fn echo(text: &str) -> Vec<String> {
    vec![text.to_owned()]
}

#[test]
fn strings_are_cut_on_character_boundaries_in_order() {
    assert_eq!(echo("日本語テキスト!"), ["日本語", "テキス", "ト!"]);
    assert_eq!(echo(""), [""]);
}

#[parallel_chunks(chunks = 4, reduce = "concat")]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[test]
fn string_results_concatenate_in_chunk_order() {
    let text = "the quick brown fox jumps over the lazy dog".repeat(20);
    assert_eq!(shout(&text), text.to_uppercase());
}

fn max_pair(a: u64, b: u64) -> u64 {
    a.max(b)
}

#[parallel_chunks(chunks = 5, reduce = max_pair)]
fn largest(xs: &[u64]) -> u64 {
    xs.iter().copied().max().unwrap_or(0)
}

fn first_seen(a: Vec<usize>, b: Vec<usize>) -> Vec<usize> {
    let mut a = a;
    a.extend(b);
    a
}

#[parallel_chunks(chunks = 6, reduce = first_seen)]
fn chunk_starts(xs: &[usize]) -> Vec<usize> {
    xs.first().copied().into_iter().collect()
}

#[test]
fn a_path_reduction_folds_left_in_chunk_order() {
    let xs: Vec<u64> = (0..1000).map(|i| (i * 7919) % 1000).collect();
    assert_eq!(largest(&xs), 999);
    let idx: Vec<usize> = (0..60).collect();
    assert_eq!(chunk_starts(&idx), [0, 10, 20, 30, 40, 50]);
}

struct Scale {
    factor: u64,
}

#[parallel_chunks(chunks = 4, reduce = "concat", split = values)]
fn scaled(label: &str, values: &[u64], scale: &Scale, offset: u64) -> Vec<String> {
    values
        .iter()
        .map(|v| format!("{label}{}", v * scale.factor + offset))
        .collect()
}

#[test]
fn other_parameters_are_shared_or_cloned_and_split_picks_the_cut() {
    let out = scaled("#", &[1, 2, 3, 4, 5], &Scale { factor: 10 }, 1);
    assert_eq!(out, ["#11", "#21", "#31", "#41", "#51"]);
}

#[derive(Clone)]
struct Counted(std::sync::Arc<AtomicUsize>);

#[parallel_chunks(chunks = 3)]
fn touch(xs: &[u8], token: Counted) {
    let _ = xs;
    token.0.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn owned_parameters_are_cloned_once_per_chunk() {
    let arc = std::sync::Arc::new(AtomicUsize::new(0));
    touch(&[1, 2, 3, 4, 5, 6], Counted(arc.clone()));
    assert_eq!(arc.load(Ordering::SeqCst), 3);
    // One clone per chunk, the original dropped with the call: only `arc` remains.
    assert_eq!(std::sync::Arc::strong_count(&arc), 1);
}

#[parallel_chunks(chunks = 4)]
fn double_in_place(xs: &mut [i32]) {
    for x in xs {
        *x *= 2;
    }
}

#[parallel_chunks(chunks = 4, backend = "serial")]
fn double_in_place_serially(xs: &mut [i32]) {
    for x in xs {
        *x *= 2;
    }
}

#[test]
fn mutable_slices_are_cut_and_written_in_place() {
    let mut xs: Vec<i32> = (0..100).collect();
    double_in_place(&mut xs);
    double_in_place_serially(&mut xs);
    assert_eq!(xs, (0..100).map(|x| x * 4).collect::<Vec<_>>());
}

#[derive(Debug, PartialEq)]
struct BadNumber {
    chunk_start: String,
}

#[parallel_chunks(chunks = 4, reduce = "sum")]
fn parse_all(items: &[&str]) -> Result<i64, BadNumber> {
    let mut sum = 0;
    for s in items {
        sum += s.parse::<i64>().map_err(|_| BadNumber {
            chunk_start: items[0].to_owned(),
        })?;
    }
    Ok(sum)
}

#[test]
fn result_returns_sum_the_oks_or_give_the_first_err_in_chunk_order() {
    assert_eq!(parse_all(&["1", "2", "3", "4"]), Ok(10));
    // Chunks: [a, 2] [3, x] [5, y] [7, 8]: chunks 0, 1 and 2 fail; chunk 0's error comes back.
    let r = parse_all(&["a", "2", "3", "x", "5", "y", "7", "8"]);
    assert_eq!(
        r,
        Err(BadNumber {
            chunk_start: "a".into()
        })
    );
    for _ in 0..50 {
        let r = parse_all(&["1", "2", "3", "x", "5", "y", "7", "8"]);
        assert_eq!(r.unwrap_err().chunk_start, "3");
    }
}

static STARTED: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);

#[parallel_chunks(chunks = 8, workers = 2, reduce = "sum")]
fn fragile(xs: &[u32]) -> u32 {
    STARTED.fetch_add(1, Ordering::SeqCst);
    if xs.contains(&13) {
        panic!("unlucky number");
    }
    std::thread::sleep(Duration::from_millis(20));
    FINISHED.fetch_add(1, Ordering::SeqCst);
    xs.iter().sum()
}

#[test]
fn a_panic_in_a_chunk_names_function_and_chunk_after_the_others_stopped() {
    let xs: Vec<u32> = (0..16).collect(); // 13 is in chunk 6 of 8
    let err = std::panic::catch_unwind(|| fragile(&xs)).expect_err("the panic reaches the caller");
    let msg = err.downcast_ref::<String>().expect("a message").clone();
    assert!(msg.contains("chunks::fragile"), "{msg}");
    assert!(msg.contains("chunk 6 of 8"), "{msg}");
    assert!(msg.contains("unlucky number"), "{msg}");
    // Every chunk that started has stopped by the time the caller sees the panic: chunk 7 never
    // started, and the started ones finished.
    let started = STARTED.load(Ordering::SeqCst);
    assert!(started <= 8);
    assert_eq!(FINISHED.load(Ordering::SeqCst), started - 1);
    // The next call works.
    let fine: Vec<u32> = (20..36).collect();
    assert_eq!(fragile(&fine), fine.iter().sum::<u32>());
}

#[parallel_chunks(chunks = 32, workers = 16)]
fn wait_a_bit(xs: &[u8]) {
    let _ = xs;
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn io_bound_chunks_on_many_workers_overlap() {
    let start = Instant::now();
    wait_a_bit(&[0; 32]);
    let took = start.elapsed();
    // 32 sleeps of 50 ms on 16 workers: two rounds. Serially they would take 1.6 s.
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_millis(800), "{took:?}");
}

#[parallel_chunks(chunks = 4, workers = 4)]
fn note_threads(xs: &[u8], seen: &Mutex<Vec<std::thread::ThreadId>>) {
    let _ = xs;
    std::thread::sleep(Duration::from_millis(10));
    seen.lock().unwrap().push(std::thread::current().id());
}

#[parallel_chunks(chunks = 4, backend = "serial")]
fn note_threads_serially(xs: &[u8], seen: &Mutex<Vec<std::thread::ThreadId>>) {
    let _ = xs;
    seen.lock().unwrap().push(std::thread::current().id());
}

#[test]
fn threads_use_other_threads_and_serial_uses_the_caller() {
    let seen = Mutex::new(Vec::new());
    note_threads(&[0; 4], &seen);
    let ids = seen.into_inner().unwrap();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().any(|id| *id != std::thread::current().id()));
    let seen = Mutex::new(Vec::new());
    note_threads_serially(&[0; 4], &seen);
    let ids = seen.into_inner().unwrap();
    assert!(ids.iter().all(|id| *id == std::thread::current().id()));
}

#[decor::logged]
fn caller(xs: &[u64]) -> u64 {
    traced(xs)
}

#[parallel_chunks(chunks = 3, workers = 2, reduce = "sum")]
fn traced(xs: &[u64]) -> u64 {
    tracing::info!(n = xs.len(), "summing");
    xs.iter().sum()
}

#[test]
fn chunks_are_spans_inside_the_call_span_inside_the_callers_span() {
    let (r, seen) = capture(|| caller(&[1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(r, 28);
    let call = seen.span("parallel_chunks");
    assert_eq!(call.parent.as_deref(), Some("caller"));
    assert_eq!(call.fields["function"], "chunks::traced");
    assert_eq!(call.fields["backend"], "threads");
    assert_eq!(call.fields["chunks"], "3");
    assert_eq!(call.fields["workers"], "2");
    let chunks: Vec<_> = seen.spans.iter().filter(|s| s.name == "chunk").collect();
    assert_eq!(chunks.len(), 3);
    let mut lens: Vec<(String, String)> = chunks
        .iter()
        .map(|c| (c.fields["index"].clone(), c.fields["len"].clone()))
        .collect();
    lens.sort();
    assert_eq!(
        lens,
        [
            ("0".into(), "3".into()),
            ("1".into(), "2".into()),
            ("2".into(), "2".into())
        ]
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.parent.as_deref() == Some("parallel_chunks"))
    );
    let events = seen.events_with("summing");
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e.scope == ["caller", "parallel_chunks", "chunk"])
    );
}

struct Index {
    base: u64,
}

impl Index {
    #[parallel_chunks(chunks = 2, reduce = "sum")]
    fn offset_sum(&self, xs: &[u64]) -> u64 {
        xs.iter().map(|x| x + self.base).sum()
    }
}

#[parallel_chunks(chunks = 2, reduce = "sum")]
fn generic_sum<T>(xs: &[T]) -> u64
where
    T: Copy + Into<u64> + Sync,
{
    xs.iter().map(|&x| x.into()).sum()
}

#[test]
fn methods_and_generic_functions_work() {
    assert_eq!(Index { base: 1 }.offset_sum(&[1, 2, 3]), 9);
    assert_eq!(generic_sum(&[1u8, 2, 3]), 6);
    assert_eq!(generic_sum(&[1u32, 2, 3]), 6);
}

#[parallel_chunks(chunks = 8, workers = 8)]
fn io_names(xs: &[u8], names: &Mutex<Vec<String>>) {
    let _ = xs;
    std::thread::sleep(Duration::from_millis(5));
    let name = std::thread::current().name().unwrap_or("").to_owned();
    names.lock().unwrap().push(name);
}

#[test]
fn io_bound_calls_run_on_threads_of_their_own_not_on_the_cpu_pool() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 8 {
        return; // 8 workers are CPU-bound on this machine
    }
    let names = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("io-caller".into())
            .spawn_scoped(s, || io_names(&[0; 8], &names))
            .unwrap()
            .join()
            .unwrap();
    });
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 8);
    assert!(
        names
            .iter()
            .all(|n| n == "io-caller" || n.starts_with("decor-worker-")),
        "{names:?}"
    );
}

static CHUNKS: AtomicUsize = AtomicUsize::new(2);

fn configured_chunks() -> usize {
    CHUNKS.load(Ordering::SeqCst)
}

#[parallel_chunks(chunks = configured_chunks, reduce = "concat")]
fn chunk_count_from_a_function(xs: &[u8]) -> Vec<usize> {
    let _ = xs;
    vec![decor::current_chunk().expect("inside a chunk").chunks]
}

#[test]
fn counts_can_come_from_a_function_called_at_each_call() {
    assert_eq!(chunk_count_from_a_function(&[0; 10]), [2, 2]);
    CHUNKS.store(5, Ordering::SeqCst);
    assert_eq!(chunk_count_from_a_function(&[0; 10]), [5; 5]);
}

#[parallel_chunks(chunks = 4, workers = 2, reduce = "concat")]
fn own_index(xs: &[u8]) -> Vec<usize> {
    let _ = xs;
    vec![decor::current_chunk().unwrap().index]
}

#[test]
fn a_body_knows_its_chunk() {
    assert_eq!(own_index(&[0; 8]), [0, 1, 2, 3]);
    assert_eq!(decor::current_chunk(), None);
}

/// A text of words of varied lengths, in lines of varied lengths.
fn prose() -> String {
    let words = [
        "decor",
        "chunk",
        "a",
        "parallel",
        "word",
        "ünïcode",
        "語",
        "count",
        "x",
    ];
    let mut text = String::new();
    for i in 0..40_000usize {
        text.push_str(words[(i * 7 + i / 3) % words.len()]);
        text.push(if i % 11 == 10 { '\n' } else { ' ' });
    }
    text
}

fn count_words(text: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_owned()).or_insert(0) += 1;
    }
    counts
}

fn merge(
    mut a: std::collections::BTreeMap<String, usize>,
    b: std::collections::BTreeMap<String, usize>,
) -> std::collections::BTreeMap<String, usize> {
    for (w, n) in b {
        *a.entry(w).or_insert(0) += n;
    }
    a
}

#[parallel_chunks(chunks = 64, cut_at = "whitespace", reduce = merge)]
fn word_counts(text: &str) -> std::collections::BTreeMap<String, usize> {
    count_words(text)
}

#[parallel_chunks(chunks = 64, cut_at = "line", reduce = "concat")]
fn line_lengths(text: &str) -> Vec<usize> {
    text.lines().map(str::len).collect()
}

#[test]
fn a_word_count_cut_at_whitespace_equals_the_single_threaded_one() {
    let text = prose();
    assert_eq!(word_counts(&text), count_words(&text));
    let lines: Vec<usize> = text.lines().map(str::len).collect();
    assert_eq!(line_lengths(&text), lines, "no line is split");
}

#[test]
fn the_call_span_records_how_many_chunks_the_cut_made() {
    let text = prose();
    let (_, seen) = decor_tests::capture(|| word_counts(&text));
    let call = seen.span("parallel_chunks");
    assert_eq!(call.fields["chunks"], "64");
}

/// A user's own input type: rows of a table, cut between rows.
struct Rows<'a>(&'a [(u32, u32)]);

impl<'a> decor::chunks::Chunkable for Rows<'a> {
    type Chunk = Rows<'a>;
    fn elements(&self) -> usize {
        self.0.len()
    }
    fn cut_lengths(self, lengths: &[usize]) -> Vec<Rows<'a>> {
        self.0.cut_lengths(lengths).into_iter().map(Rows).collect()
    }
}

#[parallel_chunks(chunks = 3, split = rows, reduce = "sum")]
fn weighted(rows: Rows<'_>, factor: u32) -> u32 {
    rows.0.iter().map(|(a, b)| a * b * factor).sum()
}

#[test]
fn a_users_own_chunkable_type_is_cut_when_named_by_split() {
    let table = [(1, 2), (3, 4), (5, 6), (7, 8)];
    assert_eq!(weighted(Rows(&table), 2), 2 * (2 + 12 + 30 + 56));
}
