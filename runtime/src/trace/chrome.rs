//! The Chrome trace event file (the JSON array that Perfetto and `chrome://tracing` open).
//!
//! One row per thread, and one per worker process (`decor-process-N`, numbered as they first
//! appear), on which its chunks sit. Spans are `B`/`E` bars when entered and left, with their fields as
//! `args`; events are instant marks. Two things a generic layer cannot know, this one draws as
//! they happened: a `#[timed]` call is a slice as long as the call (an `X` event, from its
//! `elapsed_ns`), and a chunk that ran in a worker process is drawn from when the worker ran it
//! (its span's `run.start_unix_ns` and `run.busy_ns`), not while the parent waited for it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Writes trace events to a file; see the [module docs](self).
pub(crate) struct ChromeLayer {
    out: Arc<Mutex<Output>>,
    start: Instant,
    start_unix_ns: u64,
    pid: u32,
}

/// A row of the trace: a thread of this process, or a worker process by its pid.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Row {
    Thread(ThreadId),
    Worker(u64),
}

/// Ends the file's JSON array and flushes it when dropped.
pub(crate) struct ChromeGuard(Arc<Mutex<Output>>);

struct Output {
    /// `None` once the guard has ended the file.
    file: Option<BufWriter<File>>,
    first: bool,
    rows: HashMap<Row, u64>,
    /// Worker processes given a row so far.
    worker_rows: u64,
}

/// A span's fields, as `args`, when it opened, and whether it is drawn at its close from the
/// worker's timing (see [`ran_elsewhere`]).
struct SpanArgs {
    args: Map<String, Value>,
    opened: Instant,
    ran_elsewhere: bool,
}

struct Args<'a>(&'a mut Map<String, Value>);

impl Visit for Args<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), json!(format!("{value:?}")));
    }
}

impl ChromeLayer {
    pub(crate) fn new(file: File) -> (ChromeLayer, ChromeGuard) {
        let mut file = BufWriter::new(file);
        let _ = file.write_all(b"[\n");
        let out = Arc::new(Mutex::new(Output {
            file: Some(file),
            first: true,
            rows: HashMap::new(),
            worker_rows: 0,
        }));
        let layer = ChromeLayer {
            out: out.clone(),
            start: Instant::now(),
            start_unix_ns: unix_ns(SystemTime::now()),
            pid: std::process::id(),
        };
        (layer, ChromeGuard(out))
    }

    /// Microseconds since the layer started.
    fn ts(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_nanos() as f64 / 1e3
    }

    /// Writes one event on the calling thread's row, naming the row the first time.
    fn write(&self, event: Map<String, Value>) {
        self.write_on(Row::Thread(std::thread::current().id()), event);
    }

    /// Writes one event on `row`, naming the row the first time.
    fn write_on(&self, row: Row, mut event: Map<String, Value>) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let next = out.rows.len() as u64 + 1;
        let (tid, new) = match out.rows.get(&row) {
            Some(&tid) => (tid, false),
            None => {
                out.rows.insert(row, next);
                (next, true)
            }
        };
        event.insert("pid".into(), json!(self.pid));
        event.insert("tid".into(), json!(tid));
        if new {
            let name = match row {
                Row::Thread(_) => std::thread::current()
                    .name()
                    .map_or_else(|| format!("thread {tid}"), str::to_owned),
                Row::Worker(_) => {
                    out.worker_rows += 1;
                    format!("decor-process-{}", out.worker_rows - 1)
                }
            };
            out.put(&json!({
                "ph": "M", "name": "thread_name", "pid": self.pid, "tid": tid,
                "args": { "name": name },
            }));
        }
        out.put(&Value::Object(event));
    }

    fn bar(&self, ph: &str, name: &str, ts: f64, args: Option<&Map<String, Value>>) {
        self.bar_on(Row::Thread(std::thread::current().id()), ph, name, ts, args);
    }

    fn bar_on(&self, row: Row, ph: &str, name: &str, ts: f64, args: Option<&Map<String, Value>>) {
        let mut e = Map::new();
        e.insert("ph".into(), json!(ph));
        e.insert("name".into(), json!(name));
        e.insert("ts".into(), json!(ts));
        if let Some(args) = args {
            e.insert("args".into(), Value::Object(args.clone()));
        }
        self.write_on(row, e);
    }
}

impl Output {
    fn put(&mut self, event: &Value) {
        let Some(file) = &mut self.file else { return };
        let sep: &[u8] = if self.first { b"" } else { b",\n" };
        self.first = false;
        let _ = file.write_all(sep);
        let _ = serde_json::to_writer(&mut *file, event);
    }
}

impl Drop for ChromeGuard {
    fn drop(&mut self) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut file) = out.file.take() {
            let _ = file.write_all(b"\n]\n");
            let _ = file.flush();
        }
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Whether a span is drawn once, at its close, from the worker's timing: a chunk that a worker
/// process ran.
fn ran_elsewhere(args: &Map<String, Value>) -> bool {
    args.get("backend").and_then(Value::as_str) == Some("processes") && args.contains_key("index")
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ChromeLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut args = Map::new();
        attrs.record(&mut Args(&mut args));
        span.extensions_mut().insert(SpanArgs {
            ran_elsewhere: ran_elsewhere(&args),
            args,
            opened: Instant::now(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(s) = span.extensions_mut().get_mut::<SpanArgs>() {
            values.record(&mut Args(&mut s.args));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(s) = ext.get::<SpanArgs>() else {
            return;
        };
        if !s.ran_elsewhere {
            self.bar("B", span.name(), self.ts(Instant::now()), Some(&s.args));
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(s) = ext.get::<SpanArgs>() else {
            return;
        };
        if !s.ran_elsewhere {
            self.bar("E", span.name(), self.ts(Instant::now()), None);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(s) = ext.get::<SpanArgs>() else {
            return;
        };
        if !s.ran_elsewhere {
            return;
        }
        let worker = (
            s.args.get("run.start_unix_ns").and_then(Value::as_u64),
            s.args.get("run.busy_ns").and_then(Value::as_u64),
        );
        let (from, to) = match worker {
            (Some(start), Some(busy)) => {
                let from = (start as f64 - self.start_unix_ns as f64) / 1e3;
                (from, from + busy as f64 / 1e3)
            }
            // No reply came (the worker died or timed out): the time the parent waited.
            _ => (self.ts(s.opened), self.ts(Instant::now())),
        };
        // On the worker's own row: the calling thread waited for every worker at once.
        let row = s
            .args
            .get("worker")
            .and_then(Value::as_u64)
            .map_or(Row::Thread(std::thread::current().id()), Row::Worker);
        self.bar_on(row, "B", span.name(), from, Some(&s.args));
        self.bar_on(row, "E", span.name(), to, None);
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let now = Instant::now();
        let mut args = Map::new();
        event.record(&mut Args(&mut args));
        let mut e = Map::new();
        // A `#[timed]` call: a slice as long as the call, ending now.
        let timed = (
            args.get("function").and_then(Value::as_str),
            args.get("elapsed_ns").and_then(Value::as_u64),
        );
        if let (Some(function), Some(elapsed)) = timed {
            let end = self.ts(now);
            let dur = elapsed as f64 / 1e3;
            e.insert("ph".into(), json!("X"));
            e.insert("name".into(), json!(function));
            e.insert("ts".into(), json!((end - dur).max(0.0)));
            e.insert("dur".into(), json!(dur));
        } else {
            let name = args
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or(event.metadata().name())
                .to_owned();
            e.insert("ph".into(), json!("i"));
            e.insert("s".into(), json!("t"));
            e.insert("name".into(), json!(name));
            e.insert("ts".into(), json!(self.ts(now)));
        }
        e.insert("cat".into(), json!(event.metadata().target()));
        e.insert("args".into(), Value::Object(args));
        self.write(e);
    }
}
