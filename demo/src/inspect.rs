//! `decor-demo inspect FILE [--timeline OUT.svg]`: per function calls, total, mean and p99 from
//! the `#[timed]` events of a JSON trace log; per worker the chunks it ran and its busy time; per
//! function the chunk attempts retried; and, if asked, the timeline of the last call of each
//! `parallel_chunks` function.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{table, timeline, trace_log};

pub fn run(path: &Path, timeline_svg: Option<&Path>) -> Result<(), String> {
    let log = trace_log::read(path)?;
    let mut t = table::new(&["function", "calls", "total", "mean", "p99"], 1);
    for (name, ns) in &log.timed {
        let mut ns = ns.clone();
        ns.sort_unstable();
        let total: u64 = ns.iter().sum();
        let p99 = ns[((ns.len() as f64 * 0.99).ceil() as usize).clamp(1, ns.len()) - 1];
        t.add_row(vec![
            name.clone(),
            ns.len().to_string(),
            table::time(total as f64 / 1e9),
            table::time(total as f64 / ns.len() as f64 / 1e9),
            table::time(p99 as f64 / 1e9),
        ]);
    }
    println!(
        "{}: {} lines\n\nTimed functions\n{t}",
        path.display(),
        log.lines
    );
    let mut workers: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for c in &log.chunks {
        let w = workers.entry(c.worker_name()).or_default();
        w.0 += 1;
        w.1 += c.end_ns - c.start_ns;
    }
    let mut w = table::new(&["worker", "chunks", "busy"], 1);
    for (name, (chunks, busy_ns)) in workers {
        w.add_row(vec![name, chunks.to_string(), table::time(busy_ns / 1e9)]);
    }
    println!("\nChunks per worker\n{w}");
    if !log.retries.is_empty() {
        let mut r = table::new(&["function", "retried attempts"], 1);
        for (name, n) in &log.retries {
            r.add_row(vec![name.clone(), n.to_string()]);
        }
        println!("\nRetries (each a WARN naming the chunk, the attempt and the error)\n{r}");
    }
    if let Some(out) = timeline_svg {
        let mut functions: Vec<&str> = log.chunks.iter().map(|c| c.function.as_str()).collect();
        functions.sort_unstable();
        functions.dedup();
        let ways: Vec<(&str, &str)> = functions.iter().map(|f| (*f, *f)).collect();
        let title = format!("{}: the last call of each function", path.display());
        timeline::write(out, &title, &ways, &log.chunks)?;
        println!(
            "\nTimeline of {} function(s) in {}",
            ways.len(),
            out.display()
        );
    }
    Ok(())
}
