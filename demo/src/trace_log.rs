//! Reading a JSON trace log written by `decor::trace`: the `#[timed]` calls, and every chunk with
//! when and where it ran.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde_json::Value;

/// One chunk of a `parallel_chunks` call, as the trace tells it.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The `function` of its call.
    pub function: String,
    /// Its call's number (`call` in the `parallel_chunks` span); `None` in traces that predate it.
    pub call: Option<u64>,
    pub backend: String,
    /// A thread's number, or a worker process's id on processes.
    pub worker: u64,
    pub index: u64,
    /// Which attempt at the chunk this was: 1, then 2 for its first retry (`attempts` in the
    /// span; absent on a first attempt).
    pub attempt: u64,
    /// When it started and ended where it ran, in nanoseconds since the Unix epoch.
    pub start_ns: f64,
    pub end_ns: f64,
}

impl Chunk {
    /// The row it belongs to in per-worker summaries.
    pub fn worker_name(&self) -> String {
        if self.backend == "processes" {
            format!("process {}", self.worker)
        } else if self.backend == "futures" {
            format!("future slot {}", self.worker)
        } else {
            format!("{} worker {}", self.backend, self.worker)
        }
    }
}

/// What a trace log holds.
#[derive(Default)]
pub struct Log {
    pub lines: usize,
    /// Per `#[timed]` function, each call's `elapsed_ns`.
    pub timed: BTreeMap<String, Vec<u64>>,
    pub chunks: Vec<Chunk>,
    /// Per `parallel_chunks` function, the chunk attempts that failed and ran again (its WARN
    /// events that name an `attempt`).
    pub retries: BTreeMap<String, u64>,
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

/// The line's `timestamp` (RFC 3339), in nanoseconds since the Unix epoch.
fn timestamp_ns(v: &Value) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(v.get("timestamp")?.as_str()?).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_nanos() as f64)
}

/// The chunk a span's `close` line describes.
fn chunk(v: &Value, fields: &Value) -> Option<Chunk> {
    let span = v.get("span")?;
    if fields.get("message").and_then(Value::as_str) != Some("close")
        || span.get("name").and_then(Value::as_str) != Some("chunk")
    {
        return None;
    }
    // The chunk's span names its call; in older traces, the close line's list of enclosing spans
    // may: the nearest `parallel_chunks` among them.
    let call = v.get("spans").and_then(Value::as_array).and_then(|spans| {
        spans
            .iter()
            .rev()
            .find(|s| s.get("name").and_then(Value::as_str) == Some("parallel_chunks"))
    });
    let field = |key: &str| {
        span.get(key)
            .or_else(|| call.and_then(|c| c.get(key)))
            .and_then(Value::as_str)
    };
    let number = |key: &str| span.get(key).and_then(Value::as_u64);
    let (start_ns, end_ns) = match (number("run.start_unix_ns"), number("run.busy_ns")) {
        // A worker process's own timing of the body.
        (Some(start), Some(busy)) => (start as f64, (start + busy) as f64),
        // Elsewhere the span is where the chunk ran: it closed now, after busy + idle.
        _ => {
            let end = timestamp_ns(v)?;
            let time = |key: &str| {
                fields
                    .get(key)
                    .and_then(Value::as_str)
                    .and_then(parse_busy)
                    .unwrap_or(0.0)
            };
            (end - time("time.busy") - time("time.idle"), end)
        }
    };
    Some(Chunk {
        function: field("function").unwrap_or("?").to_owned(),
        call: number("call").or_else(|| call.and_then(|c| c.get("call")).and_then(Value::as_u64)),
        backend: field("backend").unwrap_or("unknown").to_owned(),
        worker: number("worker").unwrap_or(0),
        index: number("index").unwrap_or(0),
        attempt: number("attempts").unwrap_or(1),
        start_ns,
        end_ns,
    })
}

/// Reads the log at `path`; an error names the first line that is not a trace log line.
pub fn read(path: &Path) -> Result<Log, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut log = Log::default();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{}:{n}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{n} is not a trace log line (JSON: {e})", path.display()))?;
        let (Some(fields), Some(level)) = (v.get("fields"), v.get("level")) else {
            return Err(format!(
                "{}:{n} is not a trace log line: it has no \"fields\" and \"level\"",
                path.display()
            ));
        };
        log.lines += 1;
        if let (Some(f), Some(ns)) = (
            fields.get("function").and_then(Value::as_str),
            fields.get("elapsed_ns").and_then(Value::as_u64),
        ) {
            log.timed.entry(f.to_owned()).or_default().push(ns);
        }
        if let (Some("WARN"), Some(f), Some(_)) = (
            level.as_str(),
            fields.get("function").and_then(Value::as_str),
            fields.get("attempt"),
        ) {
            *log.retries.entry(f.to_owned()).or_default() += 1;
        }
        log.chunks.extend(chunk(&v, fields));
    }
    if log.lines == 0 {
        return Err(format!("{} holds no trace log lines", path.display()));
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_times_read_as_tracing_subscriber_writes_them() {
        assert_eq!(parse_busy("1.50ms"), Some(1.5e6));
        assert_eq!(parse_busy("812µs"), Some(812e3));
        assert_eq!(parse_busy("3s"), Some(3e9));
        assert_eq!(parse_busy("12"), None);
    }
}
