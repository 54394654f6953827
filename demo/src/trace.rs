//! The demo's trace outputs: JSON lines and a Chrome trace in the trace folder, the timeline
//! recorder, and readable lines on stderr only when `RUST_LOG` asks for them.

use std::path::{Path, PathBuf};

use decor::trace::{Trace, TraceGuard};

use crate::timeline::Timeline;

pub struct Outputs {
    pub guard: TraceGuard,
    pub timeline: Timeline,
    pub json: PathBuf,
}

impl Outputs {
    /// Writes the timeline of the recorded chunks, one section per way (`(label, function)`).
    pub fn write_timeline(
        &self,
        path: &Path,
        title: &str,
        ways: &[(&str, &str)],
    ) -> Result<(), String> {
        let svg = crate::timeline::svg(title, ways, &self.timeline.bars());
        std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
    }
}

pub fn start(dir: &Path, prefix: &str) -> Result<Outputs, String> {
    let json = dir.join(format!("{prefix}.jsonl"));
    let chrome = dir.join(format!("{prefix}.chrome.json"));
    let timeline = Timeline::default();
    let mut trace = Trace::new()
        .json_file(&json)
        .chrome_file(&chrome)
        .layer(timeline.clone());
    // The tables are the demo's output; per-call lines on stderr only when asked for.
    if std::env::var_os("RUST_LOG").is_some() {
        trace = trace.stderr();
    } else {
        trace = trace.filter("info");
    }
    let guard = trace.init().map_err(|e| e.to_string())?;
    Ok(Outputs {
        guard,
        timeline,
        json,
    })
}
