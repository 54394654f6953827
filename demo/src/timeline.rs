//! A timeline of chunks: a `tracing` layer that keeps, for every `chunk` span, which call and
//! worker it belonged to and when it ran, and an SVG picture of it, one row per worker.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// One chunk as it ran.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The `function` of its `parallel_chunks` call.
    pub function: String,
    /// Which call of that function (its span id), to keep the last one.
    pub call: u64,
    pub backend: String,
    pub worker: u64,
    pub index: u64,
    pub start: Instant,
    pub end: Instant,
}

/// The bars recorded so far; cheap to clone.
#[derive(Clone, Default)]
pub struct Timeline(Arc<Mutex<Vec<Bar>>>);

impl Timeline {
    pub fn bars(&self) -> Vec<Bar> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Default)]
struct Numbers {
    index: Option<u64>,
    worker: Option<u64>,
    function: Option<String>,
    backend: Option<String>,
}

impl Visit for Numbers {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "index" => self.index = Some(value),
            "worker" => self.worker = Some(value),
            _ => {}
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "function" => self.function = Some(value.to_owned()),
            "backend" => self.backend = Some(value.to_owned()),
            _ => {}
        }
    }
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

struct CallInfo {
    function: String,
    backend: String,
}

struct Started {
    bar: Bar,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Timeline {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if name != "parallel_chunks" && name != "chunk" {
            return;
        }
        let mut n = Numbers::default();
        attrs.record(&mut n);
        let Some(span) = ctx.span(id) else { return };
        if name == "parallel_chunks" {
            span.extensions_mut().insert(CallInfo {
                function: n.function.unwrap_or_default(),
                backend: n.backend.unwrap_or_default(),
            });
            return;
        }
        let Some(parent) = span.parent() else { return };
        let (function, backend) = match parent.extensions().get::<CallInfo>() {
            Some(c) => (c.function.clone(), c.backend.clone()),
            None => return,
        };
        let now = Instant::now();
        span.extensions_mut().insert(Started {
            bar: Bar {
                function,
                call: parent.id().into_u64(),
                backend,
                worker: n.worker.unwrap_or(0),
                index: n.index.unwrap_or(0),
                start: now,
                end: now,
            },
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(started) = span.extensions_mut().remove::<Started>() else {
            return;
        };
        let mut bar = started.bar;
        bar.end = Instant::now();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(bar);
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// An SVG with one section per way (`(label, function)`), showing its last call: one row per
/// worker, one bar per chunk, on a shared time axis within the section.
pub fn svg(title: &str, ways: &[(&str, &str)], bars: &[Bar]) -> String {
    let width = 760.0;
    let left = 110.0;
    let plot = width - left - 20.0;
    let row_h = 16.0;
    let mut y = 40.0;
    let mut body = String::new();
    for (label, function) in ways {
        let of_way: Vec<&Bar> = bars.iter().filter(|b| b.function == *function).collect();
        let Some(last_call) = of_way.iter().map(|b| b.call).max() else {
            continue;
        };
        let call: Vec<&Bar> = of_way.into_iter().filter(|b| b.call == last_call).collect();
        let t0 = call.iter().map(|b| b.start).min().expect("a bar");
        let t1 = call.iter().map(|b| b.end).max().expect("a bar");
        let span_ms = (t1 - t0).as_secs_f64() * 1e3;
        let scale = plot / span_ms.max(1e-6);
        let mut rows: BTreeMap<u64, Vec<&Bar>> = BTreeMap::new();
        for b in &call {
            rows.entry(b.worker).or_default().push(b);
        }
        let backend = &call[0].backend;
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{} — {} chunks, {} worker(s), {backend}, {span_ms:.2} ms</text>"#,
            escape(label),
            call.len(),
            rows.len()
        );
        y += 8.0;
        for (worker, row) in &rows {
            let label = if backend == "processes" {
                format!("pid {worker}")
            } else {
                format!("worker {worker}")
            };
            let _ = writeln!(
                body,
                r#"<text x="10" y="{:.1}" font-size="11">{}</text>"#,
                y + row_h - 4.0,
                escape(&label)
            );
            for b in row {
                let x = left + (b.start - t0).as_secs_f64() * 1e3 * scale;
                let w = ((b.end - b.start).as_secs_f64() * 1e3 * scale).max(1.0);
                let color = COLORS[b.index as usize % COLORS.len()];
                let ms = (b.end - b.start).as_secs_f64() * 1e3;
                let _ = writeln!(
                    body,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{color}"><title>chunk {} · {ms:.3} ms</title></rect>"#,
                    row_h - 3.0,
                    b.index
                );
                if w > 16.0 {
                    let _ = writeln!(
                        body,
                        r#"<text x="{:.1}" y="{:.1}" font-size="10" fill="white">{}</text>"#,
                        x + 3.0,
                        y + row_h - 6.0,
                        b.index
                    );
                }
            }
            y += row_h;
        }
        let _ = writeln!(
            body,
            r##"<text x="{left}" y="{:.1}" font-size="10" fill="#666">0 ms</text><text x="{:.1}" y="{:.1}" font-size="10" fill="#666" text-anchor="end">{span_ms:.2} ms</text>"##,
            y + 10.0,
            left + plot,
            y + 10.0
        );
        y += 34.0;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">{}</text>
{body}</svg>
"#,
        escape(title)
    )
}
