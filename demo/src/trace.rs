//! The demo's trace outputs: JSON lines and a Chrome trace in the trace folder, and readable
//! lines on stderr only when `RUST_LOG` asks for them; the timeline is drawn from the JSON lines.

use std::path::{Path, PathBuf};

use decor::trace::{Trace, TraceGuard};

pub struct Outputs {
    guard: TraceGuard,
    pub json: PathBuf,
}

impl Outputs {
    /// Ends the trace files, then draws the timeline of the last call of each way
    /// (`(label, function)`) from the JSON lines, as `decor-demo inspect --timeline` does.
    pub fn finish(self, svg: &Path, title: &str, ways: &[(&str, &str)]) -> Result<(), String> {
        drop(self.guard);
        let log = crate::trace_log::read(&self.json)?;
        crate::timeline::write(svg, title, ways, &log.chunks)
    }
}

pub fn start(dir: &Path, prefix: &str) -> Result<Outputs, String> {
    let json = dir.join(format!("{prefix}.jsonl"));
    let chrome = dir.join(format!("{prefix}.chrome.json"));
    let mut trace = Trace::new().json_file(&json).chrome_file(&chrome);
    // The tables are the demo's output; per-call lines on stderr only when asked for.
    if std::env::var_os("RUST_LOG").is_some() {
        trace = trace.stderr();
    } else {
        trace = trace.filter("info");
    }
    let guard = trace.init().map_err(|e| e.to_string())?;
    Ok(Outputs { guard, json })
}
