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

/// An SVG with one section per way (`(label, function)`), showing its last call: one row per
/// worker, one bar per chunk, on a shared time axis within the section.
pub fn svg(title: &str, ways: &[(&str, &str)], bars: &[Chunk]) -> String {
    let width = 760.0;
    let left = 110.0;
    let plot = width - left - 20.0;
    let row_h = 16.0;
    let mut y = 40.0;
    let mut body = String::new();
    for (label, function) in ways {
        let of_way: Vec<&Chunk> = bars.iter().filter(|b| b.function == *function).collect();
        let Some(last_call) = of_way.iter().map(|b| b.call).max() else {
            continue;
        };
        let call: Vec<&Chunk> = of_way.into_iter().filter(|b| b.call == last_call).collect();
        let t0 = call
            .iter()
            .map(|b| b.start_ns)
            .fold(f64::INFINITY, f64::min);
        let t1 = call
            .iter()
            .map(|b| b.end_ns)
            .fold(f64::NEG_INFINITY, f64::max);
        let span_ms = (t1 - t0) / 1e6;
        let scale = plot / span_ms.max(1e-6);
        let mut rows: BTreeMap<u64, Vec<&Chunk>> = BTreeMap::new();
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
            } else if backend == "futures" {
                format!("slot {worker}")
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
                let x = left + (b.start_ns - t0) / 1e6 * scale;
                let w = ((b.end_ns - b.start_ns) / 1e6 * scale).max(1.0);
                let color = COLORS[b.index as usize % COLORS.len()];
                let ms = (b.end_ns - b.start_ns) / 1e6;
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
