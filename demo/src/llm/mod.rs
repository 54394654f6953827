//! `decor-demo llm`: the seed's I/O-bound example. A long text is cut into chunks, each chunk is
//! sent to a chat-completions endpoint, and every answer is written to one file, in three ways
//! (plus one request at a time, for reference):
//!
//! 1. each answer written as soon as it arrives, under a lock (order not promised);
//! 2. all answers collected, then written at once, in order;
//! 3. answers streamed through `decor::sink::OrderedWriter`: written in order while work goes on;
//! 4. an `async fn` body: the requests in flight as futures on one thread, collected in order.
//!
//! A request that fails for now (HTTP 429 or 5xx, a timeout, a dropped connection) is an `Err`
//! that decor runs again, `--retries` times at most, after a backoff, with requests paced to
//! `--rate`. One that fails for good, or on its last attempt, leaves a `### chunk N FAILED: …`
//! entry, so the file always holds every chunk once and nothing else is lost.

mod client;
mod server;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use decor::sink::OrderedWriter;
use decor::{parallel_chunks, timed};
use indicatif::{ProgressBar, ProgressStyle};

pub use client::{Client, Failure};
pub use server::{FakeLlm, Faults};

use crate::{settings, table, trace};

const SAMPLE: &str = include_str!("../../data/sample.txt");

pub struct Options {
    pub chunk_size: usize,
    pub workers: usize,
    pub latency: Duration,
    /// Sent as `max_tokens` with every request.
    pub max_tokens: u64,
    /// How the built-in server misbehaves.
    pub faults: Faults,
    /// How long a request may take before it fails (and is retried).
    pub request_timeout: Duration,
    /// Retries of a request that failed for now.
    pub retries: u32,
    /// Requests a minute at most, if limited.
    pub rate_per_minute: Option<u32>,
    pub endpoint: Option<String>,
    pub model: String,
    pub text: Option<PathBuf>,
    /// Runs of each way; `None`: 3 against the built-in server, 1 against `--endpoint`.
    pub runs: Option<usize>,
    pub trace_dir: PathBuf,
}

fn entry(chunk: usize, answer: &Result<String, String>) -> String {
    match answer {
        Ok(a) => format!("### chunk {chunk}\n{a}\n\n"),
        Err(e) => format!("### chunk {chunk} FAILED: {e}\n\n"),
    }
}

fn this_chunk() -> usize {
    decor::current_chunk().expect("called inside a chunk").index
}

/// A chunk's answer as its entry, or a failure for now to retry while attempts are left. On
/// the last attempt (every attempt with `--retries 0`) a failure becomes the chunk's `FAILED`
/// entry instead, so the file holds every chunk once whatever the service does.
fn entry_or_retry(answer: Result<String, Failure>) -> Result<String, Failure> {
    let last = decor::current_chunk().is_none_or(|c| c.is_last_attempt());
    match answer {
        Err(f) if f.transient && !last => Err(f),
        answer => Ok(entry(this_chunk(), &answer.map_err(|f| f.message))),
    }
}

/// One chunk's request, its entry written as soon as the answer is in, under the lock.
fn ask_and_write_under_lock(text: &str, client: &Client, out: &Mutex<File>) -> Result<(), Failure> {
    let entry = entry_or_retry(client.complete(text))?;
    let mut f = out.lock().unwrap_or_else(|e| e.into_inner());
    f.write_all(entry.as_bytes()).expect("the output file");
    Ok(())
}

#[timed(name = "one_at_a_time")]
#[parallel_chunks(chunk_size = settings::chunk_size, backend = "serial", retries = settings::retries, backoff = "50ms..2s", retry_if = client::is_transient, rate = settings::rate)]
fn one_at_a_time(text: &str, client: &Client, out: &Mutex<File>) -> Result<(), Failure> {
    ask_and_write_under_lock(text, client, out)
}

#[timed(name = "under_a_lock")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers, retries = settings::retries, backoff = "50ms..2s", retry_if = client::is_transient, rate = settings::rate)]
fn under_a_lock(text: &str, client: &Client, out: &Mutex<File>) -> Result<(), Failure> {
    ask_and_write_under_lock(text, client, out)
}

#[timed(name = "collect_then_write")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers, reduce = "concat", retries = settings::retries, backoff = "50ms..2s", retry_if = client::is_transient, rate = settings::rate)]
fn collect_answers(text: &str, client: &Client) -> Result<Vec<String>, Failure> {
    Ok(vec![entry_or_retry(client.complete(text))?])
}

#[timed(name = "ordered_writer")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers, retries = settings::retries, backoff = "50ms..2s", retry_if = client::is_transient, rate = settings::rate)]
fn through_ordered_writer(
    text: &str,
    client: &Client,
    out: &OrderedWriter<File>,
) -> Result<(), Failure> {
    let entry = entry_or_retry(client.complete(text))?;
    out.write(this_chunk(), entry).expect("the output file");
    Ok(())
}

/// The chunks as futures on the caller's one thread, `workers` requests in flight at most; a
/// retry waits on a timer of this thread.
#[timed(name = "async_one_thread")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers, reduce = "concat", retries = settings::retries, backoff = "50ms..2s", retry_if = client::is_transient, rate = settings::rate)]
async fn ask_async(text: &str, client: &Client) -> Result<Vec<String>, Failure> {
    Ok(vec![entry_or_retry(client.complete_async(text).await)?])
}

/// The ways, with what each promises about order.
const WAYS: [(&str, &str, bool); 5] = [
    ("one at a time", "one_at_a_time", true),
    ("under a lock", "under_a_lock", false),
    ("collect, then write", "collect_then_write", true),
    ("OrderedWriter", "ordered_writer", true),
    ("async, one thread", "async_one_thread", true),
];

fn run_way(
    way: &str,
    text: &str,
    client: &Client,
    path: &Path,
    chunks: usize,
) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Every chunk ends with its entry (a failure on its last attempt becomes one): an `Err`
    // here would be a bug of this demo, said as such.
    let gave_up = |f: Failure| format!("{way}: a chunk gave up with no entry: {}", f.message);
    match way {
        "one_at_a_time" => one_at_a_time(text, client, &Mutex::new(file)).map_err(gave_up)?,
        "under_a_lock" => under_a_lock(text, client, &Mutex::new(file)).map_err(gave_up)?,
        "collect_then_write" | "async_one_thread" => {
            let answers = if way == "collect_then_write" {
                collect_answers(text, client)
            } else {
                // `async_io::block_on` runs the futures and the socket reactor on this thread.
                async_io::block_on(ask_async(text, client))
            };
            let mut file = file;
            file.write_all(answers.map_err(gave_up)?.concat().as_bytes())
                .map_err(|e| e.to_string())?;
        }
        _ => {
            let out = OrderedWriter::new(file);
            through_ordered_writer(text, client, &out).map_err(gave_up)?;
            out.finish(chunks).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// What a written file holds: every chunk once? in order? which failed?
#[derive(Debug, PartialEq, Eq)]
pub struct Check {
    pub every_chunk_once: bool,
    pub in_order: bool,
    pub failed: Vec<(usize, String)>,
}

pub fn check(contents: &str, chunks: usize) -> Check {
    let mut seen = Vec::new();
    let mut failed = Vec::new();
    for line in contents.lines() {
        let Some(rest) = line.strip_prefix("### chunk ") else {
            continue;
        };
        let (num, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let Ok(i) = num.parse::<usize>() else {
            continue;
        };
        seen.push(i);
        if let Some(why) = tail.strip_prefix("FAILED: ") {
            failed.push((i, why.to_owned()));
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    Check {
        every_chunk_once: sorted == (0..chunks).collect::<Vec<_>>(),
        in_order: seen == sorted,
        failed,
    }
}

/// One way's outcome over its runs.
struct Row {
    label: &'static str,
    ordered: bool,
    median: Duration,
    check: Check,
    path: PathBuf,
}

/// Runs every way against the endpoint (the built-in server unless `--endpoint`), prints the
/// table and how to read it, and writes the trace files.
pub fn run(o: &Options) -> Result<(), String> {
    settings::set(None, Some(o.chunk_size), Some(o.workers));
    settings::set_retries(o.retries, o.rate_per_minute);
    let text = match &o.text {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => SAMPLE.to_owned(),
    };
    let chunks = decor::chunks::Cut::ChunkSize(o.chunk_size)
        .lengths(text.chars().count())
        .len();
    let outputs = trace::start(&o.trace_dir, "llm-trace")?;
    let runs = o.runs.unwrap_or(if o.endpoint.is_some() { 1 } else { 3 });
    let (server, client) = connect(o)?;
    println!("{}", describe(o, server.as_ref(), &text, chunks, runs));
    let endpoint = server.as_ref().map_or_else(
        || o.endpoint.clone().unwrap_or_default(),
        |s| s.base_url.clone(),
    );
    let rows = run_ways(o, &text, &client, chunks, runs, &endpoint)?;
    println!("{}", table(&rows, chunks));
    print_failures(&rows);
    println!("{}", how_to_read(&rows, chunks, o.workers, o.retries > 0));
    print_retries(o, server.as_ref(), runs);
    outputs.finish(
        &o.trace_dir.join("llm-timeline.svg"),
        &format!(
            "decor-demo llm: {chunks} chunks, {} workers, last run of each way",
            o.workers
        ),
        &[
            ("under a lock", "decor_demo::llm::under_a_lock"),
            ("collect, then write", "decor_demo::llm::collect_answers"),
            ("OrderedWriter", "decor_demo::llm::through_ordered_writer"),
            ("async, one thread", "decor_demo::llm::ask_async"),
        ],
    )?;
    println!("\nFiles in {}/:", o.trace_dir.display());
    for row in &rows {
        let name = row.path.file_name().unwrap_or_default().to_string_lossy();
        println!("  {name:<27} the answers");
    }
    println!("  llm-trace.jsonl             JSON lines: decor-demo inspect FILE");
    println!("  llm-trace.chrome.json       Chrome trace: https://ui.perfetto.dev");
    println!("  llm-timeline.svg            one row per worker, one bar per chunk");
    Ok(())
}

/// The client of `--endpoint`, or of a built-in server started here.
fn connect(o: &Options) -> Result<(Option<FakeLlm>, Client), String> {
    Ok(match &o.endpoint {
        Some(url) => {
            let key = std::env::var("OPENAI_API_KEY").ok();
            let client = Client::new(url, &o.model, key, o.max_tokens, o.request_timeout);
            (None, client)
        }
        None => {
            let server = FakeLlm::start(o.latency, o.faults)?;
            let client = Client::new(
                &server.base_url,
                &o.model,
                None,
                o.max_tokens,
                o.request_timeout,
            );
            (Some(server), client)
        }
    })
}

/// What runs against what, before it runs.
fn describe(
    o: &Options,
    server: Option<&FakeLlm>,
    text: &str,
    chunks: usize,
    runs: usize,
) -> String {
    let pacing = match (o.retries, o.rate_per_minute) {
        (0, None) => String::new(),
        (r, None) => format!("\nUp to {r} retries of a request that fails for now."),
        (r, Some(n)) => format!(
            "\nUp to {r} retries of a request that fails for now.\n{n} requests a minute at most."
        ),
    };
    let Some(s) = server else {
        return format!(
            "{} characters in {chunks} chunks, {} workers; endpoint {}.\n{runs} run{} of each way, at most {} tokens an answer{}.{pacing}",
            text.chars().count(),
            o.workers,
            o.endpoint.as_deref().unwrap_or_default(),
            if runs == 1 { "" } else { "s" },
            o.max_tokens,
            if o.runs.is_none() {
                " (every run spends tokens: --runs N for more)"
            } else {
                ""
            }
        );
    };
    let f = o.faults;
    let faults: String = [
        (f.fail_every, "fails (500)"),
        (f.throttle_every, "is throttled (429)"),
        (f.hang_every, "gets no answer"),
    ]
    .iter()
    .filter(|(k, _)| *k > 0)
    .map(|(k, what)| format!("\nEvery {k}th request {what}."))
    .collect();
    format!(
        "{} characters in {chunks} chunks of {} characters, {} workers.\nBuilt-in LLM server: {}\n{} per answer.{faults}{pacing}",
        text.chars().count(),
        o.chunk_size,
        o.workers,
        s.base_url,
        decor::fmt::HumanDuration(o.latency),
    )
}

/// Runs each way `runs` times under a progress bar; an error when no request of a way
/// succeeded (the endpoint is down or refuses us: no table of times of nothing).
fn run_ways(
    o: &Options,
    text: &str,
    client: &Client,
    chunks: usize,
    runs: usize,
    endpoint: &str,
) -> Result<Vec<Row>, String> {
    let bar = ProgressBar::new((WAYS.len() * runs) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<20} [{bar:30}] {pos}/{len}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    std::fs::create_dir_all(&o.trace_dir).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (label, way, ordered) in WAYS {
        bar.set_message(label);
        let path = o.trace_dir.join(format!("llm-{way}.txt"));
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            run_way(way, text, client, &path, chunks)?;
            times.push(start.elapsed());
            bar.inc(1);
        }
        times.sort();
        let contents = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let checked = check(&contents, chunks);
        if checked.failed.len() == chunks {
            bar.finish_and_clear();
            return Err(format!(
                "no request to {endpoint} succeeded ({chunks} of {chunks} failed); the first: {}",
                checked.failed.first().map_or("", |(_, why)| why.as_str())
            ));
        }
        rows.push(Row {
            label,
            // With retries, one at a time starts the next chunk while a failed one waits out
            // its backoff: it then writes in completion order too.
            ordered: ordered && !(way == "one_at_a_time" && o.retries > 0),
            median: times[times.len() / 2],
            check: checked,
            path,
        });
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// The table of times and checks, one row per way.
fn table(rows: &[Row], chunks: usize) -> String {
    let mut t = table::new(
        &["way", "time", "answers", "failed", "all once", "in order"],
        1,
    );
    for r in rows {
        let c = &r.check;
        t.add_row(vec![
            r.label.to_string(),
            table::time(r.median.as_secs_f64()),
            (chunks - c.failed.len()).to_string(),
            c.failed.len().to_string(),
            if c.every_chunk_once { "✓" } else { "✗" }.to_owned(),
            match (r.ordered, c.in_order) {
                (true, true) => "✓",
                (true, false) => "✗",
                (false, true) => "✓ (by chance)",
                (false, false) => "not promised",
            }
            .to_owned(),
        ]);
    }
    t.to_string()
}

/// Each failed chunk of each way, if any.
fn print_failures(rows: &[Row]) {
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.check
                .failed
                .iter()
                .map(move |(i, why)| format!("  {}, chunk {i}: {why}", r.label))
        })
        .collect();
    if !failures.is_empty() {
        println!("Failed requests (each marked in its file; every other answer is written):");
        for f in failures {
            println!("{f}");
        }
    }
}

/// What the figures say; `retrying`: failed requests ran again.
fn how_to_read(rows: &[Row], chunks: usize, workers: usize, retrying: bool) -> String {
    let serial = rows[0].median.as_secs_f64();
    let answered = chunks - rows[0].check.failed.len();
    let fastest = rows[1..]
        .iter()
        .map(|r| r.median.as_secs_f64())
        .fold(f64::INFINITY, f64::min);
    format!(
        "\nHow to read it: one request at a time takes {} ({}).\n\
         With {workers} workers the requests overlap and the best way takes {} ({:.1}×\n\
         faster). Threads fit this work because a waiting thread uses no CPU; the\n\
         async way keeps as many requests in flight on the caller's one thread. Only\n\
         the lock way writes in completion order; OrderedWriter writes in chunk\n\
         order while answers still arrive.",
        table::time(serial),
        if answered == chunks && retrying {
            "chunks × latency + retries".to_owned()
        } else if answered == chunks {
            "chunks × latency".to_owned()
        } else {
            format!("{answered} of {chunks} answered")
        },
        table::time(fastest),
        serial / fastest
    )
}

/// How many requests decor ran again, per way (from `decor::stats::retries`), and how many
/// the built-in server received.
fn print_retries(o: &Options, server: Option<&FakeLlm>, runs: usize) {
    let retried = decor::stats::retries();
    let total: u64 = retried.iter().map(|r| r.retries).sum();
    if o.retries > 0 {
        let per_way: Vec<String> = WAYS
            .iter()
            .map(|(_, way, _)| {
                let n = retried
                    .iter()
                    .find(|r| function_of(way).is_some_and(|f| r.name == f))
                    .map_or(0, |r| r.retries);
                n.to_string()
            })
            .collect();
        let over = if runs == 1 {
            String::new()
        } else {
            format!(" over {runs} runs")
        };
        println!(
            "Retried requests: {total}{over} (by way: {}).",
            per_way.join(", ")
        );
    }
    if let Some(s) = server {
        println!("The server received {} requests.", s.requests());
    }
}

/// The decorated function a way runs, as `decor::stats` names it.
fn function_of(way: &str) -> Option<&'static str> {
    Some(match way {
        "one_at_a_time" => "decor_demo::llm::one_at_a_time",
        "under_a_lock" => "decor_demo::llm::under_a_lock",
        "collect_then_write" => "decor_demo::llm::collect_answers",
        "ordered_writer" => "decor_demo::llm::through_ordered_writer",
        "async_one_thread" => "decor_demo::llm::ask_async",
        _ => return None,
    })
}
