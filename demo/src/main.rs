//! `decor-demo`: the seed's experiments in numbers, with trace files to look at.
//!
//! - `decor-demo`: add N ones as a plain loop, chunked serially, on threads and on processes.
//! - `decor-demo llm`: send chunks of a text to an LLM chat API, write the answers to one file
//!   three ways.
//! - `decor-demo inspect FILE [--timeline OUT.svg]`: summarize a JSON trace log, draw its timeline.

mod inspect;
mod llm;
mod python;
mod settings;
mod sum;
mod table;
mod timeline;
mod trace;
mod trace_log;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

/// Every allocation of 1 MiB or more lives in memory the worker processes map, so the sum's plain
/// `Vec` reaches them without a copy.
#[global_allocator]
pub static HEAP: decor::shm::SharedHeap = decor::shm::SharedHeap::new();

fn trace_dir_arg() -> Arg {
    Arg::new("trace-dir")
        .long("trace-dir")
        .value_name("DIR")
        .value_parser(value_parser!(PathBuf))
        .default_value("decor-trace")
        .help("Where the trace files go: JSON lines, Chrome trace, SVG timeline")
}

fn count_arg(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("N")
        .value_parser(value_parser!(u64).range(1..))
        .default_value(default)
        .help(help)
}

/// A fault of the built-in server, every K-th request (0: never).
fn every_arg(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("K")
        .value_parser(value_parser!(u64))
        .default_value("0")
        .help(help)
}

/// The demo's command line: the sum's options, and the `llm` and `inspect` subcommands.
fn cli() -> Command {
    Command::new("decor-demo")
        .about("The seed's experiments with decor: the sum of N ones four ways, an LLM pipeline, log inspection")
        .long_about(
            "Without a subcommand: add N ones as a plain loop, in chunks serially, on threads and on \
             processes, each several times, and print a table of medians against the blog post's \
             Python figures.",
        )
        .arg(count_arg("n", "8000000", "How many ones to add"))
        .arg(count_arg("chunks", "8", "Chunks the input is cut into"))
        .arg(
            Arg::new("workers")
                .long("workers")
                .value_name("N")
                .value_parser(value_parser!(u64).range(1..))
                .help("Threads or processes at most [default: the machine's cores]"),
        )
        .arg(count_arg("runs", "5", "Runs of each way; the table shows medians"))
        .arg(trace_dir_arg())
        .arg(
            Arg::new("python")
                .long("python")
                .action(ArgAction::SetTrue)
                .help("Also run the same four ways in python3 and show its figures"),
        )
        .subcommand(llm_command())
        .subcommand(inspect_command())
}

/// `decor-demo llm`: the pipeline's sizes, the built-in server's faults, retries and pacing.
fn llm_command() -> Command {
    Command::new("llm")
                .about("Send chunks of a long text to an LLM chat API and write the answers to one file, three ways")
                .arg(count_arg("chunk-size", "150", "Characters per chunk"))
                .arg(count_arg("workers", "16", "Requests in flight at most"))
                .arg(
                    Arg::new("latency")
                        .long("latency")
                        .value_name("DURATION")
                        .value_parser(parse_duration)
                        .default_value("200ms")
                        .help("How long the built-in server waits before answering: 200ms, 2s (a bare number is milliseconds)"),
                )
                .arg(
                    Arg::new("max-tokens")
                        .long("max-tokens")
                        .value_name("N")
                        .value_parser(value_parser!(u64).range(1..))
                        .default_value("256")
                        .help("The most tokens each answer may use (sent as max_tokens)"),
                )
                .arg(every_arg("fail-every", "The built-in server fails every K-th request (0: never)"))
                .arg(every_arg("throttle-every", "The built-in server answers 429 (Retry-After: 1) to every K-th request (0: never)"))
                .arg(every_arg("hang-every", "The built-in server never answers every K-th request (0: never)"))
                .arg(
                    Arg::new("retries")
                        .long("retries")
                        .value_name("N")
                        .value_parser(value_parser!(u32))
                        .default_value("0")
                        .help("Runs a request that failed for now (429, 5xx, a timeout) again up to N times, after a backoff"),
                )
                .arg(
                    Arg::new("rate")
                        .long("rate")
                        .value_name("N/min")
                        .value_parser(parse_rate)
                        .help("Requests at most, per minute or per second: 50/min, 10/s [default: no limit]"),
                )
                .arg(
                    Arg::new("request-timeout")
                        .long("request-timeout")
                        .value_name("DURATION")
                        .value_parser(parse_duration)
                        .default_value("60s")
                        .help("A request with no whole answer by then fails (and is retried)"),
                )
                .arg(
                    Arg::new("endpoint")
                        .long("endpoint")
                        .value_name("URL")
                        .help("An OpenAI-compatible server (http://…/v1) instead of the built-in one; the key is read from OPENAI_API_KEY"),
                )
                .arg(
                    Arg::new("model")
                        .long("model")
                        .value_name("NAME")
                        .default_value("decor-demo")
                        .help("The model to ask for"),
                )
                .arg(
                    Arg::new("text")
                        .long("text")
                        .value_name("FILE")
                        .value_parser(value_parser!(PathBuf))
                        .help("The text to send [default: a multi-language sample]"),
                )
                .arg(
                    Arg::new("runs")
                        .long("runs")
                        .value_name("N")
                        .value_parser(value_parser!(u64).range(1..))
                        .help("Runs of each way; the table shows medians [default: 3; 1 with --endpoint, which spends tokens]"),
                )
                .arg(trace_dir_arg())
}

/// `decor-demo inspect FILE [--timeline OUT.svg]`.
fn inspect_command() -> Command {
    Command::new("inspect")
                .about("Summarize a JSON trace log: calls per function, chunks and busy time per worker")
                .arg(
                    Arg::new("file")
                        .required(true)
                        .value_name("FILE")
                        .value_parser(value_parser!(PathBuf))
                        .help("A JSON-lines trace log written by decor::trace, e.g. the demo's <trace-dir>/trace.jsonl"),
                )
                .arg(
                    Arg::new("timeline")
                        .long("timeline")
                        .value_name("OUT.svg")
                        .value_parser(value_parser!(PathBuf))
                        .help("Also draw the last call of each parallel_chunks function: one row per worker, one bar per chunk, when and where it ran"),
                )
}

/// A duration with a unit (`20ms`, `2s`, as the attributes take them), or a bare number of
/// milliseconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(ms) = s.trim().parse::<u64>() {
        return Ok(std::time::Duration::from_millis(ms));
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}; write a number and a unit, e.g. 20ms or 2s"))
}

/// `--rate`: `N/min` or `N/s`, as requests a minute.
fn parse_rate(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?}: write requests per minute or per second, e.g. 50/min or 10/s");
    let (n, per) = s.trim().split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let per_minute = match per.trim() {
        "min" | "m" => Some(n),
        "s" | "sec" => n.checked_mul(60),
        _ => None,
    };
    per_minute.filter(|&n| n > 0).ok_or_else(bad)
}

fn count(m: &ArgMatches, name: &str) -> usize {
    m.get_one::<u64>(name).copied().unwrap_or(1) as usize
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
    let result = match matches.subcommand() {
        Some(("llm", m)) => llm::run(&llm::Options {
            chunk_size: count(m, "chunk-size"),
            workers: count(m, "workers"),
            latency: *m
                .get_one::<std::time::Duration>("latency")
                .expect("has a default"),
            max_tokens: m.get_one::<u64>("max-tokens").copied().unwrap_or(256),
            faults: llm::Faults {
                fail_every: m.get_one::<u64>("fail-every").copied().unwrap_or(0),
                throttle_every: m.get_one::<u64>("throttle-every").copied().unwrap_or(0),
                hang_every: m.get_one::<u64>("hang-every").copied().unwrap_or(0),
            },
            request_timeout: *m
                .get_one::<std::time::Duration>("request-timeout")
                .expect("has a default"),
            retries: m.get_one::<u32>("retries").copied().unwrap_or(0),
            rate_per_minute: m.get_one::<u32>("rate").copied(),
            endpoint: m.get_one::<String>("endpoint").cloned(),
            model: m.get_one::<String>("model").cloned().unwrap_or_default(),
            text: m.get_one::<PathBuf>("text").cloned(),
            runs: m.get_one::<u64>("runs").map(|&n| n as usize),
            trace_dir: m
                .get_one::<PathBuf>("trace-dir")
                .cloned()
                .unwrap_or_default(),
        }),
        Some(("inspect", m)) => inspect::run(
            m.get_one::<PathBuf>("file").expect("required"),
            m.get_one::<PathBuf>("timeline").map(PathBuf::as_path),
        ),
        _ => sum::run(&sum::Options {
            n: count(&matches, "n"),
            chunks: count(&matches, "chunks"),
            workers: matches.get_one::<u64>("workers").map(|&w| w as usize),
            runs: count(&matches, "runs"),
            trace_dir: matches
                .get_one::<PathBuf>("trace-dir")
                .cloned()
                .unwrap_or_default(),
            python: matches.get_flag("python"),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decor-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
