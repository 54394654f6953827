//! `decor-demo inspect FILE`: per function calls, total, mean and p99 from the `#[timed]` events
//! of a JSON trace log; per worker the chunks it ran and its busy time, from the `chunk` spans'
//! close events.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::table;

#[derive(Default)]
struct Calls(Vec<u64>);

#[derive(Default)]
struct Worker {
    chunks: u64,
    busy_ns: f64,
}

/// `"1.23ms"`, `"812µs"`, `"4.5s"` as tracing-subscriber writes `time.busy`, in nanoseconds.
fn parse_busy(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(num * scale)
}

pub fn run(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut functions: BTreeMap<String, Calls> = BTreeMap::new();
    let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
    let mut lines = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{}:{n}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{n} is not a trace log line (JSON: {e})", path.display()))?;
        let (Some(fields), Some(_level)) = (v.get("fields"), v.get("level")) else {
            return Err(format!(
                "{}:{n} is not a trace log line: it has no \"fields\" and \"level\"",
                path.display()
            ));
        };
        lines += 1;
        if let (Some(f), Some(ns)) = (
            fields.get("function").and_then(Value::as_str),
            fields.get("elapsed_ns").and_then(Value::as_u64),
        ) {
            functions.entry(f.to_owned()).or_default().0.push(ns);
        }
        let span = v.get("span");
        let is_chunk_close = fields.get("message").and_then(Value::as_str) == Some("close")
            && span.and_then(|s| s.get("name")).and_then(Value::as_str) == Some("chunk");
        if is_chunk_close {
            let worker = span
                .and_then(|s| s.get("worker"))
                .map(|w| w.to_string())
                .unwrap_or_else(|| "?".into());
            let backend = span
                .and_then(|s| s.get("backend"))
                .and_then(Value::as_str)
                .or_else(|| {
                    v.get("spans")
                        .and_then(Value::as_array)
                        .and_then(|spans| {
                            spans.iter().find(|s| {
                                s.get("name").and_then(Value::as_str) == Some("parallel_chunks")
                            })
                        })
                        .and_then(|s| s.get("backend").and_then(Value::as_str))
                })
                .unwrap_or("unknown")
                .to_owned();
            let key = if backend == "processes" {
                format!("process {worker}")
            } else {
                format!("{backend} worker {worker}")
            };
            let w = workers.entry(key).or_default();
            w.chunks += 1;
            w.busy_ns += fields
                .get("time.busy")
                .and_then(Value::as_str)
                .and_then(parse_busy)
                .unwrap_or(0.0);
        }
    }
    if lines == 0 {
        return Err(format!("{} holds no trace log lines", path.display()));
    }
    let mut t = table::new(&["function", "calls", "total", "mean", "p99"], 1);
    for (name, Calls(mut ns)) in functions {
        ns.sort_unstable();
        let total: u64 = ns.iter().sum();
        let p99 = ns[((ns.len() as f64 * 0.99).ceil() as usize).clamp(1, ns.len()) - 1];
        t.add_row(vec![
            name,
            ns.len().to_string(),
            table::time(total as f64 / 1e9),
            table::time(total as f64 / ns.len() as f64 / 1e9),
            table::time(p99 as f64 / 1e9),
        ]);
    }
    println!("{}: {lines} lines\n\nTimed functions\n{t}", path.display());
    let mut w = table::new(&["worker", "chunks", "busy"], 1);
    for (name, worker) in workers {
        w.add_row(vec![
            name,
            worker.chunks.to_string(),
            table::time(worker.busy_ns / 1e9),
        ]);
    }
    println!("\nChunks per worker\n{w}");
    Ok(())
}
