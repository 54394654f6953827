//! `decor-demo llm`: the seed's I/O-bound example. A long text is cut into chunks, each chunk is
//! sent to a chat-completions endpoint, and every answer is written to one file, in three ways
//! (plus one request at a time, for reference):
//!
//! 1. each answer written as soon as it arrives, under a lock (order not promised);
//! 2. all answers collected, then written at once, in order;
//! 3. answers streamed through `decor::sink::OrderedWriter`: written in order while work goes on;
//! 4. an `async fn` body: the requests in flight as futures on one thread, collected in order.
//!
//! A failed request leaves a `### chunk N FAILED: …` entry, so the file always holds every chunk
//! once and nothing else is lost.

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

pub use client::Client;
pub use server::FakeLlm;

use crate::{settings, table, trace};

const SAMPLE: &str = include_str!("../../data/sample.txt");

pub struct Options {
    pub chunk_size: usize,
    pub workers: usize,
    pub latency: Duration,
    /// Sent as `max_tokens` with every request.
    pub max_tokens: u64,
    pub fail_every: u64,
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

/// One chunk's request, its entry written as soon as the answer is in, under the lock.
fn ask_and_write_under_lock(text: &str, client: &Client, out: &Mutex<File>) {
    let answer = client.complete(text);
    let mut f = out.lock().unwrap_or_else(|e| e.into_inner());
    f.write_all(entry(this_chunk(), &answer).as_bytes())
        .expect("the output file");
}

#[timed(name = "one_at_a_time")]
#[parallel_chunks(chunk_size = settings::chunk_size, backend = "serial")]
fn one_at_a_time(text: &str, client: &Client, out: &Mutex<File>) {
    ask_and_write_under_lock(text, client, out);
}

#[timed(name = "under_a_lock")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers)]
fn under_a_lock(text: &str, client: &Client, out: &Mutex<File>) {
    ask_and_write_under_lock(text, client, out);
}

#[timed(name = "collect_then_write")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers, reduce = "concat")]
fn collect_answers(text: &str, client: &Client) -> Vec<String> {
    vec![entry(this_chunk(), &client.complete(text))]
}

#[timed(name = "ordered_writer")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers)]
fn through_ordered_writer(text: &str, client: &Client, out: &OrderedWriter<File>) {
    let answer = client.complete(text);
    out.write(this_chunk(), entry(this_chunk(), &answer))
        .expect("the output file");
}

/// The chunks as futures on the caller's one thread, `workers` requests in flight at most.
#[timed(name = "async_one_thread")]
#[parallel_chunks(chunk_size = settings::chunk_size, workers = settings::workers, reduce = "concat")]
async fn ask_async(text: &str, client: &Client) -> Vec<String> {
    let answer = client.complete_async(text).await;
    vec![entry(this_chunk(), &answer)]
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
    match way {
        "one_at_a_time" => one_at_a_time(text, client, &Mutex::new(file)),
        "under_a_lock" => under_a_lock(text, client, &Mutex::new(file)),
        "collect_then_write" | "async_one_thread" => {
            let answers = if way == "collect_then_write" {
                collect_answers(text, client)
            } else {
                // `async_io::block_on` runs the futures and the socket reactor on this thread.
                async_io::block_on(ask_async(text, client))
            };
            let mut file = file;
            file.write_all(answers.concat().as_bytes())
                .map_err(|e| e.to_string())?;
        }
        _ => {
            let out = OrderedWriter::new(file);
            through_ordered_writer(text, client, &out);
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

pub fn run(o: &Options) -> Result<(), String> {
    settings::set(None, Some(o.chunk_size), Some(o.workers));
    let text = match &o.text {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => SAMPLE.to_owned(),
    };
    let chunks = decor::chunks::Cut::ChunkSize(o.chunk_size)
        .lengths(text.chars().count())
        .len();
    let outputs = trace::start(&o.trace_dir, "llm-trace")?;
    let latency = o.latency;
    let runs = o.runs.unwrap_or(if o.endpoint.is_some() { 1 } else { 3 });
    let (server, client) = match &o.endpoint {
        Some(url) => (
            None,
            Client::new(
                url,
                &o.model,
                std::env::var("OPENAI_API_KEY").ok(),
                o.max_tokens,
            ),
        ),
        None => {
            let server = FakeLlm::start(latency, o.fail_every)?;
            let client = Client::new(&server.base_url, &o.model, None, o.max_tokens);
            (Some(server), client)
        }
    };
    match &server {
        Some(s) => println!(
            "{} characters in {chunks} chunks of {} characters, {} workers.\nBuilt-in LLM server: {}\n{} per answer{}.",
            text.chars().count(),
            o.chunk_size,
            o.workers,
            s.base_url,
            decor::fmt::HumanDuration(o.latency),
            if o.fail_every > 0 {
                format!(", every {}th request fails", o.fail_every)
            } else {
                String::new()
            }
        ),
        None => println!(
            "{} characters in {chunks} chunks, {} workers; endpoint {}.\n{runs} run{} of each way, at most {} tokens an answer{}.",
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
        ),
    }

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
            run_way(way, &text, &client, &path, chunks)?;
            times.push(start.elapsed());
            bar.inc(1);
        }
        times.sort();
        let contents = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        // No answer at all: the endpoint is down or refuses us; no table of times of nothing.
        let checked = check(&contents, chunks);
        if checked.failed.len() == chunks {
            bar.finish_and_clear();
            let endpoint = match (&o.endpoint, &server) {
                (Some(url), _) => url.clone(),
                (None, Some(s)) => s.base_url.clone(),
                (None, None) => "the endpoint".to_owned(),
            };
            return Err(format!(
                "no request to {endpoint} succeeded ({chunks} of {chunks} failed); the first: {}",
                checked.failed.first().map_or("", |(_, why)| why.as_str())
            ));
        }
        rows.push((
            label,
            ordered,
            times[times.len() / 2],
            check(&contents, chunks),
            path,
        ));
    }
    bar.finish_and_clear();

    let mut t = table::new(
        &["way", "time", "answers", "failed", "all once", "in order"],
        1,
    );
    for (label, ordered, time, c, _) in &rows {
        t.add_row(vec![
            label.to_string(),
            table::time(time.as_secs_f64()),
            (chunks - c.failed.len()).to_string(),
            c.failed.len().to_string(),
            if c.every_chunk_once { "✓" } else { "✗" }.to_owned(),
            match (ordered, c.in_order) {
                (true, true) => "✓",
                (true, false) => "✗",
                (false, true) => "✓ (by chance)",
                (false, false) => "not promised",
            }
            .to_owned(),
        ]);
    }
    println!("{t}");
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|(label, _, _, c, _)| {
            c.failed
                .iter()
                .map(move |(i, why)| format!("  {label}, chunk {i}: {why}"))
        })
        .collect();
    if !failures.is_empty() {
        println!("Failed requests (each marked in its file; every other answer is written):");
        for f in failures {
            println!("{f}");
        }
    }
    let serial = rows[0].2.as_secs_f64();
    let answered = chunks - rows[0].3.failed.len();
    let fastest = rows[1..]
        .iter()
        .map(|r| r.2.as_secs_f64())
        .fold(f64::INFINITY, f64::min);
    println!(
        "\nHow to read it: one request at a time takes {} ({}).\n\
         With {} workers the requests overlap and the best way takes {} ({:.1}×\n\
         faster). Threads fit this work because a waiting thread uses no CPU; the\n\
         async way keeps as many requests in flight on the caller's one thread. Only\n\
         the lock way writes in completion order; OrderedWriter writes in chunk\n\
         order while answers still arrive.",
        table::time(serial),
        if answered == chunks {
            "chunks × latency".to_owned()
        } else {
            format!("{answered} of {chunks} answered")
        },
        o.workers,
        table::time(fastest),
        serial / fastest
    );
    if let Some(s) = &server {
        println!("The server answered {} requests.", s.requests());
    }

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
    for (_, _, _, _, path) in &rows {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        println!("  {name:<27} the answers");
    }
    println!("  llm-trace.jsonl             JSON lines: decor-demo inspect FILE");
    println!("  llm-trace.chrome.json       Chrome trace: https://ui.perfetto.dev");
    println!("  llm-timeline.svg            one row per worker, one bar per chunk");
    Ok(())
}
