//! Processes for every function: generic functions and associated functions of generic `impl`s
//! run in worker processes, `Plan::map_remote` sends a plain function, `DECOR_BACKEND` moves any
//! function whose types are serde, and text and plain-data parameters cross without a copy.
//! Every test that could hang runs under a time limit of its own.

use std::marker::PhantomData;
use std::process::Command;
use std::time::Duration;

use decor::serde::de::DeserializeOwned;
use decor::serde::{Deserialize, Serialize};
use decor::shm::{SharedVec, copied_bytes};
use decor::{Backend, Plan, parallel_chunks};
use decor_tests::{exclusive, output_within, within};

const LIMIT: Duration = Duration::from_secs(60);

struct Table<T>(PhantomData<T>);

impl<T> Table<T>
where
    T: Serialize + DeserializeOwned + Copy + Into<f64> + Send + Sync + 'static,
{
    #[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "concat")]
    fn scaled_sums(xs: &[T], scale: f64) -> Vec<(f64, u32)> {
        let total: f64 = xs.iter().map(|&x| x.into()).sum();
        vec![(total * scale, std::process::id())]
    }
}

#[parallel_chunks(chunks = 3, workers = 2, backend = "processes", reduce = "concat")]
fn positions<T>(xs: &[T], needle: &T) -> Vec<(usize, u32)>
where
    T: Serialize + DeserializeOwned + PartialEq + Clone + Send + Sync,
{
    let at = xs.iter().filter(|x| *x == needle).count();
    vec![(at, std::process::id())]
}

fn other_pids(parts: &[(impl Sized, u32)]) -> bool {
    parts.iter().all(|(_, pid)| *pid != std::process::id())
}

#[test]
fn an_associated_function_of_a_generic_impl_runs_in_worker_processes() {
    let _pool = exclusive();
    let (u, f) = within(LIMIT, "a generic impl on processes", || {
        let xs: Vec<u32> = (1..=100).collect();
        let ys: Vec<f32> = vec![0.5; 8];
        (
            Table::<u32>::scaled_sums(&xs, 2.0),
            Table::<f32>::scaled_sums(&ys, 1.0),
        )
    });
    assert_eq!(u.iter().map(|(s, _)| s).sum::<f64>(), 10_100.0);
    assert_eq!(u.len(), 4);
    assert!(other_pids(&u), "{u:?}");
    assert_eq!(f.iter().map(|(s, _)| s).sum::<f64>(), 4.0);
    assert!(other_pids(&f), "{f:?}");
}

#[test]
fn a_generic_function_runs_in_worker_processes_for_each_type() {
    let _pool = exclusive();
    let (words, numbers) = within(LIMIT, "a generic function on processes", || {
        let words: Vec<String> = "a b a c a".split(' ').map(str::to_owned).collect();
        (
            positions(&words, &"a".to_owned()),
            positions(&[7u64, 1, 7, 7, 2, 7], &7),
        )
    });
    assert_eq!(words.iter().map(|(n, _)| n).sum::<usize>(), 3);
    assert!(other_pids(&words), "{words:?}");
    assert_eq!(numbers.iter().map(|(n, _)| n).sum::<usize>(), 4);
    assert!(other_pids(&numbers), "{numbers:?}");
}

fn square_sum_and_pid(chunk: &[u64]) -> (u64, u32) {
    (chunk.iter().map(|x| x * x).sum(), std::process::id())
}

#[test]
fn a_plan_by_hand_runs_a_function_or_a_closure_in_worker_processes() {
    let _pool = exclusive();
    let plan = Plan::new()
        .named("remote::by_hand")
        .chunks(5)
        .workers(2)
        .backend(Backend::Processes);
    let (named, closure) = within(LIMIT, "map_remote on processes", move || {
        let xs: Vec<u64> = (1..=1_000).collect();
        (
            plan.map_remote(&xs[..], square_sum_and_pid),
            plan.map_remote(&xs[..], |c: &[u64]| (c[0], std::process::id())),
        )
    });
    assert_eq!(
        named.iter().map(|(s, _)| s).sum::<u64>(),
        (1..=1_000u64).map(|x| x * x).sum::<u64>()
    );
    assert!(other_pids(&named), "{named:?}");
    let firsts: Vec<u64> = closure.iter().map(|(f, _)| *f).collect();
    assert_eq!(firsts, [1, 201, 401, 601, 801], "in chunk order");
    assert!(other_pids(&closure), "{closure:?}");
}

#[test]
fn a_plan_by_hand_cuts_text_at_lines_in_worker_processes() {
    let _pool = exclusive();
    let text: String = (0..1_000).map(|i| format!("line {i}\n")).collect();
    let plan = Plan::new()
        .chunks(7)
        .workers(2)
        .backend(Backend::Processes)
        .cut_at(decor::chunks::CutAt::Line);
    let counts = within(LIMIT, "map_remote over text", move || {
        plan.map_remote(text.as_str(), |c: &str| {
            assert!(c.ends_with('\n'), "a chunk ends at a line's end");
            c.lines().count()
        })
    });
    assert_eq!(counts.len(), 7);
    assert_eq!(counts.iter().sum::<usize>(), 1_000);
}

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "sum")]
fn weighted(text: &str, weights: &[f32]) -> f64 {
    text.bytes()
        .map(|b| f64::from(weights[usize::from(b) % weights.len()]))
        .sum()
}

#[test]
fn text_and_a_shared_plain_data_parameter_cross_without_a_copy() {
    let _pool = exclusive();
    const N: usize = 1 << 20;
    let mut text = SharedVec::<u8>::zeroed(N).unwrap();
    for (i, b) in text.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    let weights = SharedVec::<f32>::filled(1 << 16, 0.5).unwrap();
    let plain_text = String::from_utf8(text.to_vec()).unwrap();
    let plain_weights = weights.to_vec();
    let (shared, plain) = within(LIMIT, "text and weights on processes", move || {
        let before = copied_bytes();
        let a = weighted(std::str::from_utf8(&text).unwrap(), &weights);
        let shared = copied_bytes() - before;
        let before = copied_bytes();
        let b = weighted(&plain_text, &plain_weights);
        let plain = copied_bytes() - before;
        assert_eq!(a, b);
        assert_eq!(a, N as f64 * 0.5);
        (shared, plain)
    });
    assert_eq!(shared, 0, "read in place");
    // Outside shared memory: one copy of each, once per call.
    assert_eq!(plain, (N + (1 << 16) * 4) as u64);
}

// Written for threads: `DECOR_BACKEND=processes` moves it, generic as it is.
#[parallel_chunks(chunks = 2, workers = 2, reduce = "concat")]
fn pids_of<T: Serialize + DeserializeOwned + Clone + Send + Sync>(xs: &[T]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

/// Not serde.
struct Tally(std::sync::atomic::AtomicUsize);

// Its shared parameter is not serde: it stays on threads, with one WARN saying why.
#[parallel_chunks(chunks = 2, workers = 2, reduce = "concat")]
fn stays(xs: &[u8], tally: &Tally) -> Vec<u32> {
    tally
        .0
        .fetch_add(xs.len(), std::sync::atomic::Ordering::Relaxed);
    vec![std::process::id()]
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(crate = "decor::serde")]
struct Word(String);

#[test]
fn child_reports_where_chunks_ran() {
    if std::env::var_os("DECOR_REMOTE_CHILD").is_none() {
        return;
    }
    let me = std::process::id();
    let words = [Word("a".into()), Word("b".into())];
    let ((moved, kept), captured) =
        decor_tests::capture(|| (pids_of(&words), stays(&[1, 2], &Tally(0.into()))));
    for e in captured
        .events
        .iter()
        .filter(|e| e.level == tracing::Level::WARN)
    {
        println!("WARNED {}", e.fields["message"]);
    }
    let backends: Vec<String> = captured
        .spans
        .iter()
        .filter(|s| s.name == "parallel_chunks")
        .map(|s| s.fields["backend"].clone())
        .collect();
    println!(
        "REPORT moved={} kept_here={} backends={}",
        moved.iter().all(|&p| p != me),
        kept.iter().all(|&p| p == me),
        backends.join(",")
    );
}

#[test]
fn decor_backend_processes_moves_a_generic_function_written_for_threads() {
    if std::env::var_os("DECOR_REMOTE_CHILD").is_some() {
        return;
    }
    let out = output_within(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_reports_where_chunks_ran", "--nocapture"])
            .env("DECOR_REMOTE_CHILD", "1")
            .env("DECOR_BACKEND", "processes"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("REPORT moved=true kept_here=true backends=processes,threads"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("WARNED")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("remote::stays runs on threads, not processes")
            && warnings[0].contains("remote::Tally` does not implement serde"),
        "{warnings:?}"
    );
}

fn newlines(file: &decor::shm::MappedFile) -> (usize, u32) {
    (
        file.iter().filter(|&&b| b == b'\n').count(),
        std::process::id(),
    )
}

#[test]
fn a_plan_by_hand_takes_a_vec_a_string_and_a_mapped_file_as_they_are() {
    let _pool = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines.txt");
    let text: String = (0..500).map(|i| format!("{i}\n")).collect();
    std::fs::write(&path, &text).unwrap();
    let file = decor::shm::MappedFile::open(&path).unwrap();
    let plan = Plan::new()
        .chunks(4)
        .workers(2)
        .backend(Backend::Processes)
        .cut_at(decor::chunks::CutAt::Line);
    let xs: Vec<u64> = (1..=100).collect();
    let (sums, lines, in_file) = within(LIMIT, "map_remote on owned inputs", move || {
        (
            plan.map_remote(&xs, |c: &[u64]| c.iter().sum::<u64>()),
            plan.map_remote(&text, |c: &str| c.lines().count()),
            plan.map_remote(&file, newlines),
        )
    });
    assert_eq!(sums.iter().sum::<u64>(), 5_050);
    assert_eq!(lines.iter().sum::<usize>(), 500);
    assert_eq!(in_file.iter().map(|(n, _)| n).sum::<usize>(), 500);
    assert!(other_pids(&in_file), "{in_file:?}");
}
