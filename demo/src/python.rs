//! `--python`: the seed's four ways in the machine's `python3`, measured in the same run.

use std::collections::HashMap;
use std::process::Command;

const SCRIPT: &str = include_str!("../python/seed_sum.py");

/// Median seconds per way, or why there are none.
pub fn run(n: usize, chunks: usize, runs: usize) -> Result<Option<HashMap<String, f64>>, String> {
    let dir = std::env::temp_dir().join(format!("decor-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("seed_sum.py");
    std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
    eprintln!("Running the same four ways in python3 (this takes a while)…");
    let out = Command::new("python3")
        .arg(&script)
        .args([n.to_string(), chunks.to_string(), runs.to_string()])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("python3 was not found: the table has no Python column.".into());
        }
        Err(e) => return Err(format!("python3 could not run: {e}")),
    };
    if !out.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| format!("python3 printed something unexpected: {e}"))
}
