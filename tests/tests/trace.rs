//! `decor::trace`: stderr lines filtered by `RUST_LOG`, JSON lines and Chrome trace files.
//!
//! Installing a global subscriber happens once per process, so each case runs in a child process:
//! this test binary, started again on one test with `DECOR_TRACE_CHILD` set.

use std::process::Command;

use decor::{logged, timed};

#[timed]
fn checksum(data: &[u8]) -> u32 {
    data.iter().map(|&b| u32::from(b)).sum()
}

#[decor::parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "sum")]
fn remote_sum(xs: &[u64]) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(20));
    xs.iter().sum()
}

#[logged(level = "warn")]
fn risky(x: u32) -> Result<u32, String> {
    if x > 10 {
        Err(format!("{x} is too big"))
    } else {
        Ok(x)
    }
}

/// Runs `test` of this binary in a child process with `env`; returns its stderr.
fn run_child(test: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("DECOR_TRACE_CHILD", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {test} failed:\n{stderr}");
    stderr
}

fn is_child() -> bool {
    std::env::var_os("DECOR_TRACE_CHILD").is_some()
}

#[test]
fn child_writes_everything() {
    if !is_child() {
        return;
    }
    let dir = std::env::var("DECOR_TRACE_DIR").ok();
    let mut trace = decor::trace::Trace::new().stderr();
    if let Some(dir) = &dir {
        trace = trace
            .json_file(format!("{dir}/logs/trace.jsonl"))
            .chrome_file(format!("{dir}/trace.chrome.json"));
    }
    let guard = trace.init().expect("first init works");
    let again = decor::trace::Trace::new().stderr().init();
    assert!(matches!(again, Err(decor::trace::TraceError::AlreadySet)));
    checksum(b"abc");
    let _ = risky(3);
    let _ = risky(30);
    assert_eq!(remote_sum(&[1, 2, 3, 4, 5, 6, 7, 8]), 36);
    drop(guard);
}

#[test]
fn stderr_lines_follow_rust_log() {
    if is_child() {
        return;
    }
    let all = run_child("child_writes_everything", &[("RUST_LOG", "info")]);
    assert!(all.contains("checksum took"), "{all}");
    assert!(all.contains("risky returned"), "{all}");
    assert!(all.contains("30 is too big"), "{all}");
    let quiet = run_child("child_writes_everything", &[("RUST_LOG", "warn")]);
    assert!(!quiet.contains("checksum took"), "{quiet}");
    assert!(quiet.contains("risky returned"), "{quiet}");
    let default = run_child("child_writes_everything", &[]);
    assert!(
        default.contains("checksum took"),
        "info is the default: {default}"
    );
}

#[test]
fn json_and_chrome_files_hold_the_calls() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    run_child(
        "child_writes_everything",
        &[("RUST_LOG", "info"), ("DECOR_TRACE_DIR", path)],
    );

    let json = std::fs::read_to_string(dir.path().join("logs/trace.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let timed = lines
        .iter()
        .find(|v| v["fields"]["function"] == "trace::checksum")
        .expect("the timed event");
    assert_eq!(timed["level"], "INFO");
    assert_eq!(timed["target"], "trace");
    assert!(timed["fields"]["elapsed_ns"].is_u64());
    let failed = lines
        .iter()
        .find(|v| v["fields"]["message"] == "risky failed")
        .expect("the error event");
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["fields"]["error"], "30 is too big");
    assert_eq!(failed["span"]["name"], "risky");
    assert_eq!(failed["span"]["x"], "30");

    let chrome: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("trace.chrome.json")).unwrap(),
    )
    .expect("the Chrome trace is one JSON document");
    let events = chrome.as_array().expect("an array of trace events");
    let risky_spans = events
        .iter()
        .filter(|e| e["name"] == "risky" && e["ph"] == "B")
        .count();
    assert_eq!(risky_spans, 2, "{chrome:#}");
    assert!(events.iter().all(|e| e["ts"].is_number() || e["ph"] == "M"));

    // Chunks on processes: one row per worker process, named after its pool slot.
    let row_names: std::collections::HashMap<u64, String> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut chunk_rows: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "chunk" && e["ph"] == "B")
        .map(|e| row_names[&e["tid"].as_u64().unwrap()].as_str())
        .collect();
    assert_eq!(chunk_rows.len(), 4, "{chunk_rows:?}");
    chunk_rows.sort();
    chunk_rows.dedup();
    assert_eq!(chunk_rows, ["decor-process-0", "decor-process-1"]);

    // Each processes chunk is drawn from when its worker ran it: as long as the body ran there
    // (each sleeps 20 ms), not as long as the parent waited for the reply.
    let mut open: std::collections::HashMap<u64, (f64, u64)> = Default::default();
    let mut widths = vec![];
    for e in events {
        let tid = e["tid"].as_u64().unwrap_or(0);
        match (e["name"].as_str(), e["ph"].as_str()) {
            (Some("chunk"), Some("B")) => {
                let busy = e["args"]["run.busy_ns"]
                    .as_u64()
                    .expect("the worker's timing");
                assert!(e["args"]["run.start_unix_ns"].is_u64(), "{e}");
                open.insert(tid, (e["ts"].as_f64().unwrap(), busy));
            }
            (Some("chunk"), Some("E")) => {
                let (from, busy) = open.remove(&tid).expect("a B before its E");
                let width = e["ts"].as_f64().unwrap() - from;
                assert!(
                    (width - busy as f64 / 1e3).abs() < 1.0,
                    "{width} µs, {busy} ns"
                );
                widths.push(width);
            }
            _ => {}
        }
    }
    assert_eq!(widths.len(), 4);
    assert!(widths.iter().all(|&w| w >= 20_000.0), "{widths:?} µs");

    // A #[timed] call is a slice of its duration.
    let checksum = events
        .iter()
        .find(|e| e["name"] == "trace::checksum")
        .expect("the timed call");
    assert_eq!(checksum["ph"], "X", "{checksum}");
    let elapsed = checksum["args"]["elapsed_ns"].as_u64().unwrap() as f64;
    assert!((checksum["dur"].as_f64().unwrap() - elapsed / 1e3).abs() < 1e-3);
}

#[test]
fn a_trace_file_that_cannot_be_created_is_an_error() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let err = decor::trace::Trace::new()
        .json_file(blocker.join("trace.jsonl"))
        .init()
        .unwrap_err();
    assert!(
        err.to_string().starts_with("cannot create trace file"),
        "{err}"
    );
    let err = decor::trace::Trace::new()
        .filter("=bad=")
        .init()
        .unwrap_err();
    assert!(err.to_string().starts_with("bad trace filter"), "{err}");
}
