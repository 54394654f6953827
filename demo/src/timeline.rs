//! A timeline of chunks as an SVG picture: one section per function (its last call), one row per
//! worker, one bar per chunk, drawn from when and where the chunk ran.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::trace_log::Chunk;

/// Writes [`svg`] to `path`.
pub fn write(
    path: &Path,
    title: &str,
    ways: &[(&str, &str)],
    chunks: &[Chunk],
) -> Result<(), String> {
    std::fs::write(path, svg(title, ways, chunks)).map_err(|e| format!("{}: {e}", path.display()))
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

/// The picture's geometry.
const WIDTH: f64 = 760.0;
const LEFT: f64 = 110.0;
const PLOT: f64 = WIDTH - LEFT - 20.0;
const ROW_H: f64 = 16.0;

/// An SVG with one section per way (`(label, function)`), showing its last call: one row per
/// worker, one bar per chunk attempt, on a shared time axis within the section. An attempt that
/// failed and was retried is drawn faded, its chunk's later attempt where it ran.
pub fn svg(title: &str, ways: &[(&str, &str)], bars: &[Chunk]) -> String {
    let mut y = 40.0;
    let mut body = String::new();
    for (label, function) in ways {
        let of_way: Vec<&Chunk> = bars.iter().filter(|b| b.function == *function).collect();
        let Some(last_call) = of_way.iter().map(|b| b.call).max() else {
            continue;
        };
        let call: Vec<&Chunk> = of_way.into_iter().filter(|b| b.call == last_call).collect();
        y = section(&mut body, label, &call, y);
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" viewBox="0 0 {WIDTH} {y}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">{}</text>
{body}</svg>
"#,
        escape(title)
    )
}

/// Draws one call's section from `y` down: its heading, a row per worker, its time axis; the
/// `y` after it.
fn section(body: &mut String, label: &str, call: &[&Chunk], mut y: f64) -> f64 {
    let t0 = call
        .iter()
        .map(|b| b.start_ns)
        .fold(f64::INFINITY, f64::min);
    let t1 = call
        .iter()
        .map(|b| b.end_ns)
        .fold(f64::NEG_INFINITY, f64::max);
    let span_ms = (t1 - t0) / 1e6;
    let scale = PLOT / span_ms.max(1e-6);
    let mut rows: BTreeMap<u64, Vec<&Chunk>> = BTreeMap::new();
    for b in call {
        rows.entry(b.worker).or_default().push(b);
    }
    let backend = &call[0].backend;
    let chunks = call.iter().filter(|b| b.attempt == 1).count();
    let retried = call.len() - chunks;
    let retries = match retried {
        0 => String::new(),
        n => format!(", {n} retried"),
    };
    let _ = writeln!(
        body,
        r#"<text x="10" y="{y}" font-weight="bold">{} — {chunks} chunks{retries}, {} worker(s), {backend}, {span_ms:.2} ms</text>"#,
        escape(label),
        rows.len()
    );
    y += 8.0;
    // The last attempt of each chunk: the earlier ones failed.
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for b in call {
        let a = last.entry(b.index).or_default();
        *a = (*a).max(b.attempt);
    }
    for (worker, row) in &rows {
        let name = if backend == "processes" {
            format!("pid {worker}")
        } else if backend == "futures" {
            format!("slot {worker}")
        } else {
            format!("worker {worker}")
        };
        let _ = writeln!(
            body,
            r#"<text x="10" y="{:.1}" font-size="11">{}</text>"#,
            y + ROW_H - 4.0,
            escape(&name)
        );
        for b in row {
            let x = LEFT + (b.start_ns - t0) / 1e6 * scale;
            let w = ((b.end_ns - b.start_ns) / 1e6 * scale).max(1.0);
            bar(body, b, x, y, w, b.attempt < last[&b.index]);
        }
        y += ROW_H;
    }
    let _ = writeln!(
        body,
        r##"<text x="{LEFT}" y="{:.1}" font-size="10" fill="#666">0 ms</text><text x="{:.1}" y="{:.1}" font-size="10" fill="#666" text-anchor="end">{span_ms:.2} ms</text>"##,
        y + 10.0,
        LEFT + PLOT,
        y + 10.0
    );
    y + 34.0
}

/// One chunk attempt's bar at `x`, `y`, `w` wide; `failed`: it was retried.
fn bar(body: &mut String, b: &Chunk, x: f64, y: f64, w: f64, failed: bool) {
    let color = COLORS[b.index as usize % COLORS.len()];
    let ms = (b.end_ns - b.start_ns) / 1e6;
    let (opacity, what) = match (b.attempt, failed) {
        (1, false) => ("1", String::new()),
        (n, false) => ("1", format!(" · attempt {n}")),
        (n, true) => ("0.35", format!(" · attempt {n}, failed and retried")),
    };
    let _ = writeln!(
        body,
        r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{color}" fill-opacity="{opacity}"><title>chunk {}{what} · {ms:.3} ms</title></rect>"#,
        ROW_H - 3.0,
        b.index
    );
    if w > 16.0 {
        let label = match b.attempt {
            1 => b.index.to_string(),
            n => format!("{}·{n}", b.index),
        };
        let _ = writeln!(
            body,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" fill="white">{label}</text>"#,
            x + 3.0,
            y + ROW_H - 6.0,
        );
    }
}
