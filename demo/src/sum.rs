//! The seed's experiment: add N ones as a plain loop, in chunks serially, on threads and on
//! processes; each way is a decorated function, timed by `#[timed]` into `decor::stats`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use decor::{parallel_chunks, timed};
use indicatif::{ProgressBar, ProgressStyle};

use crate::settings;
use crate::{python, table, trace};

pub struct Options {
    pub n: usize,
    pub chunks: usize,
    pub workers: Option<usize>,
    pub runs: usize,
    pub trace_dir: PathBuf,
    pub python: bool,
}

#[timed(name = "plain_loop")]
fn plain_loop(xs: &[u64]) -> u64 {
    let mut total = 0;
    for &x in xs {
        total += x;
    }
    total
}

#[timed(name = "chunked_serial")]
#[parallel_chunks(chunks = settings::chunks, backend = "serial", reduce = "sum")]
fn chunked_serial(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[timed(name = "threads")]
#[parallel_chunks(chunks = settings::chunks, workers = settings::workers, backend = "threads", reduce = "sum")]
fn on_threads(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[timed(name = "processes")]
#[parallel_chunks(chunks = settings::chunks, workers = settings::workers, backend = "processes", reduce = "sum")]
fn on_processes(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

/// The same work on processes, called with a `Vec` allocated outside the shared heap, so copied
/// into shared memory on each call. A function of its own, so that its calls are not counted as
/// `processes`.
#[timed(name = "processes_copied")]
#[parallel_chunks(chunks = settings::chunks, workers = settings::workers, backend = "processes", reduce = "sum")]
fn on_processes_copied(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

/// The same work on the other ranks of an `mpirun` job (built with `--features mpi`); the row
/// is shown only there.
#[timed(name = "mpi")]
#[parallel_chunks(chunks = settings::chunks, backend = "mpi", reduce = "sum")]
fn on_mpi(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

struct Way {
    label: &'static str,
    stat: &'static str,
    /// The blog post's Python figure, seconds.
    seed: Option<f64>,
    python_key: Option<&'static str>,
}

const WAYS: [Way; 6] = [
    Way {
        label: "plain loop",
        stat: "plain_loop",
        seed: Some(0.965),
        python_key: Some("plain_loop"),
    },
    Way {
        label: "chunked, serial",
        stat: "chunked_serial",
        seed: Some(0.071),
        python_key: Some("chunked_serial"),
    },
    Way {
        label: "threads",
        stat: "threads",
        seed: Some(0.092),
        python_key: Some("threads"),
    },
    Way {
        label: "processes",
        stat: "processes",
        seed: Some(0.854),
        python_key: Some("processes"),
    },
    Way {
        label: "processes, copied",
        stat: "processes_copied",
        seed: None,
        python_key: None,
    },
    Way {
        label: "mpi",
        stat: "mpi",
        seed: None,
        python_key: None,
    },
];

/// The ways this run can take: `mpi` only as rank 0 of an `mpirun` job.
fn ways() -> Vec<&'static Way> {
    WAYS.iter()
        .filter(|w| w.stat != "mpi" || decor::mpi_serving_ranks() > 0)
        .collect()
}

fn median_of(stat: &str) -> Option<decor::stats::FnStats> {
    decor::stats::snapshot()
        .into_iter()
        .find(|s| s.name.rsplit("::").next() == Some(stat))
}

/// The experiment: every way run `o.runs` times, interleaved, its medians in a table beside
/// the seed's figures, how to read them, and the trace files.
pub fn run(o: &Options) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    settings::set(Some(o.chunks), None, Some(o.workers.unwrap_or(cores)));
    let outputs = trace::start(&o.trace_dir, "trace")?;
    let workers = settings::workers();
    println!(
        "Adding {} ones, {} chunks, {} workers, {} runs per way (medians).",
        o.n, o.chunks, workers, o.runs
    );
    let inputs = Inputs::new(o.n);
    let pool_start = Instant::now();
    let _warm = on_processes(&inputs.shared[..1.min(o.n)]);
    let pool_start = pool_start.elapsed();

    let ways = ways();
    let (results, stats) = measure(o, &ways, &inputs);
    let py = if o.python {
        python::run(o.n, o.chunks, o.runs)
    } else {
        Ok(None)
    };
    let (py, py_note) = match py {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    println!("{}", table_of(o, &ways, &results, &stats, py.as_ref()));
    if let Some(note) = py_note {
        println!("{note}");
    }
    let secs = |i: usize| stats[i].as_ref().map_or(f64::NAN, |s| s.p50.as_secs_f64());
    println!(
        "{}",
        reading(
            o,
            workers,
            pool_start,
            [secs(0), secs(1), secs(2), secs(3), secs(4)]
        )
    );
    if ways.len() > 5 {
        println!(
            "- MPI: {:.2}× the threads' time on {} serving rank(s). Each chunk's bytes are\n  sent to its rank as an MPI message: on one machine that is a copy through\n  shared memory; across machines, the network.",
            secs(5) / secs(2),
            decor::mpi_serving_ranks()
        );
    }
    write_traces(o, outputs)
}

/// The input, twice: in the shared heap, and outside it for the copied row.
struct Inputs {
    /// A plain Vec: under the demo's `SharedHeap` it is in shared memory already.
    shared: Vec<u64>,
    plain: Vec<u64>,
}

impl Inputs {
    fn new(n: usize) -> Inputs {
        let shared: Vec<u64> = vec![1; n];
        let threshold = crate::HEAP.threshold();
        crate::HEAP.set_threshold(usize::MAX);
        let plain: Vec<u64> = vec![1; n];
        crate::HEAP.set_threshold(threshold);
        if !crate::HEAP.holds(shared.as_ptr()) {
            eprintln!("warning: no shared memory for the input: the processes row copies it too");
        }
        Inputs { shared, plain }
    }

    /// One call of `way` on its input.
    fn call(&self, way: &Way) -> u64 {
        match way.stat {
            "plain_loop" => plain_loop(&self.shared),
            "chunked_serial" => chunked_serial(&self.shared),
            "threads" => on_threads(&self.shared),
            "processes" => on_processes(&self.shared),
            "mpi" => on_mpi(&self.shared),
            _ => on_processes_copied(&self.plain),
        }
    }
}

/// One warm-up call per way (caches, pages, the worker pool), not counted; then `o.runs`
/// interleaved runs. Gives each way's last result and its timing statistics.
fn measure(
    o: &Options,
    ways: &[&Way],
    inputs: &Inputs,
) -> (Vec<u64>, Vec<Option<decor::stats::FnStats>>) {
    let bar = ProgressBar::new((ways.len() * (o.runs + 1)) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<18} [{bar:30}] {pos}/{len}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("warming up");
    for way in ways {
        inputs.call(way);
        bar.inc(1);
    }
    decor::stats::reset();
    // Interleaved: run 1 of every way, then run 2, … so that whatever the machine does meanwhile
    // falls on every way alike; the medians are then comparable.
    let mut results: Vec<u64> = vec![0; ways.len()];
    for run in 0..o.runs {
        bar.set_message(format!("run {} of {}", run + 1, o.runs));
        for (i, way) in ways.iter().enumerate() {
            results[i] = inputs.call(way);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let stats = ways.iter().map(|w| median_of(w.stat)).collect();
    (results, stats)
}

/// The table of medians: each way's time, its speed-up on the loop, whether its sum is right,
/// the seed's figure and, when asked, Python's here.
fn table_of(
    o: &Options,
    ways: &[&Way],
    results: &[u64],
    stats: &[Option<decor::stats::FnStats>],
    py: Option<&std::collections::HashMap<String, f64>>,
) -> comfy_table::Table {
    let loop_median = stats[0]
        .as_ref()
        .map(|s| s.p50.as_secs_f64())
        .unwrap_or(0.0);
    let mut header = vec!["way", "Rust", "vs loop", "check", "seed (Py)"];
    if py.is_some() {
        header.push("Python here");
    }
    let mut t = table::new(&header, 1);
    for (i, way) in ways.iter().enumerate() {
        let Some(s) = &stats[i] else {
            continue;
        };
        let secs = s.p50.as_secs_f64();
        let check = if results[i] == o.n as u64 {
            "✓"
        } else {
            "✗"
        };
        let mut row = vec![
            way.label.to_owned(),
            table::time(secs),
            format!("{:.2}×", loop_median / secs),
            check.to_owned(),
            way.seed.map_or("—".to_owned(), table::time),
        ];
        if let Some(py) = py {
            row.push(
                way.python_key
                    .and_then(|k| py.get(k))
                    .map_or("—".to_owned(), |&s| table::time(s)),
            );
        }
        t.add_row(row);
    }
    t
}

/// The trace files of the run, and where they are.
fn write_traces(o: &Options, outputs: trace::Outputs) -> Result<(), String> {
    let json = outputs.json.clone();
    outputs.finish(
        &o.trace_dir.join("timeline.svg"),
        &format!(
            "decor-demo: {} ones in {} chunks, last run of each way",
            o.n, o.chunks
        ),
        &[
            ("chunked, serial", "decor_demo::sum::chunked_serial"),
            ("threads", "decor_demo::sum::on_threads"),
            ("processes", "decor_demo::sum::on_processes"),
        ],
    )?;
    println!("\nTrace files in {}/:", o.trace_dir.display());
    println!(
        "  trace.jsonl        JSON lines: decor-demo inspect {}",
        json.display()
    );
    println!("  trace.chrome.json  Chrome trace: open it at https://ui.perfetto.dev");
    println!("  timeline.svg       one row per worker, one bar per chunk: open in a browser");
    Ok(())
}

fn reading(o: &Options, workers: usize, pool_start: Duration, t: [f64; 5]) -> String {
    let [plain, chunked, threads, processes, copied] = t;
    let ratio = |a: f64, b: f64| a / b;
    let mut s = String::from("\nHow to read it:\n");
    s += &format!(
        "- The plain loop takes {}: {:.0}× faster than the seed's Python loop\n  (0.965 s), because Rust compiles it to machine code.\n",
        table::time(plain),
        0.965 / plain
    );
    s += &format!(
        "- Chunked serially it takes {} ({:.2}× the loop): in Rust both are the same\n  compiled loop. In Python chunking won only because sum() runs in C.\n",
        table::time(chunked),
        ratio(plain, chunked)
    );
    s += &format!(
        "- Threads: {:.2}× the loop on {workers} worker(s). Rust has no GIL, so threads sum\n  in parallel; the limit is memory bandwidth, which the cores share.\n",
        ratio(plain, threads)
    );
    s += &format!(
        "- Processes: {:.2}× the loop, {:.2}× the threads' time. The input is a\n  plain Vec, in shared memory because the demo installs decor::shm::SharedHeap\n  as its allocator: workers read it in place. Outside that heap the {} MB\n  must be copied first: {} ({:.2}× threads). Python's\n  processes lost for that reason: count the transfer.\n",
        ratio(plain, processes),
        ratio(processes, threads),
        o.n * 8 / 1_000_000,
        table::time(copied),
        ratio(copied, threads)
    );
    s += &format!(
        "- The worker processes started in {}, once; later calls reuse them.",
        table::time(pool_start.as_secs_f64())
    );
    s
}
