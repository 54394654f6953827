//! `decor-demo` end to end, with small sizes: tables, trace files, inspection, the LLM pipeline.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the demo in `dir`; a run that takes over two minutes is killed and fails the test.
fn demo(args: &[&str], dir: &Path) -> Output {
    use std::io::Read;
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
    let mut child = Command::new(env!("CARGO_BIN_EXE_decor-demo"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("DECOR_BACKEND")
        .env_remove("DECOR_WORKERS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("decor-demo {args:?} still ran after {LIMIT:?}: killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn row<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start_matches('│').trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no row {label} in\n{text}"))
}

#[test]
fn the_sum_experiment_prints_a_checked_table_and_writes_trace_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = stdout(&demo(
        &[
            "--n",
            "400000",
            "--runs",
            "3",
            "--chunks",
            "8",
            "--workers",
            "2",
            "--trace-dir",
            "t",
        ],
        dir.path(),
    ));
    for way in [
        "plain loop",
        "chunked, serial",
        "threads",
        "processes",
        "processes, copied",
    ] {
        let r = row(&text, way);
        assert!(r.contains('✓'), "{r}");
        assert!(r.contains("ms") || r.contains("µs"), "{r}");
    }
    assert!(
        row(&text, "plain loop").contains("965ms"),
        "the seed's figure is beside it"
    );
    assert!(text.contains("How to read it"));
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "fits 80 columns:\n{text}"
    );

    // JSON lines: every line parses; the timed events count warm-up + runs per way.
    let log = dir.path().join("t/trace.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls = |f: &str| {
        lines
            .iter()
            .filter(|v| v["fields"]["function"] == format!("decor_demo::sum::{f}"))
            .count()
    };
    assert_eq!(calls("plain_loop"), 4);
    assert_eq!(calls("threads"), 4);

    // The Chrome trace is one JSON array; processes chunks sit on the pool's rows.
    let chrome: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("t/trace.chrome.json")).unwrap(),
    )
    .unwrap();
    let events = chrome.as_array().unwrap();
    assert!(events.iter().any(|e| e["name"] == "chunk"));
    assert!(events.iter().any(|e| {
        e["ph"] == "M"
            && e["args"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("decor-process-"))
    }));

    // The SVG is well-formed, with a bar per chunk of the last run of each of three ways.
    let svg = std::fs::read_to_string(dir.path().join("t/timeline.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.children().any(|c| c.has_tag_name("title")))
        .count();
    assert_eq!(bars, 3 * 8);

    // inspect counts what was run.
    let report = stdout(&demo(&["inspect", "t/trace.jsonl"], dir.path()));
    let r = row(&report, "decor_demo::sum::plain_loop");
    assert_eq!(r.split_whitespace().nth(2), Some("4"), "{r}");
    assert!(
        report.contains("process "),
        "workers of processes are listed:\n{report}"
    );
    let threads: u64 = report
        .lines()
        .filter(|l| l.contains("threads worker"))
        .map(|l| l.split_whitespace().nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        threads,
        4 * 8,
        "every threads chunk is counted once:\n{report}"
    );

    // inspect --timeline draws the same picture from the JSON trace alone: a section per
    // parallel_chunks function, its last call, a bar per chunk.
    let report = stdout(&demo(
        &["inspect", "t/trace.jsonl", "--timeline", "mine.svg"],
        dir.path(),
    ));
    assert!(report.contains("mine.svg"), "{report}");
    let svg = std::fs::read_to_string(dir.path().join("mine.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let headings: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("font-weight") == Some("bold"))
        .filter_map(|n| n.text())
        .collect();
    for f in ["chunked_serial", "on_threads", "on_processes"] {
        let h = headings
            .iter()
            .find(|h| h.starts_with(&format!("decor_demo::sum::{f} ")))
            .unwrap_or_else(|| panic!("no section for {f}: {headings:?}"));
        assert!(h.contains("8 chunks"), "{h}");
    }
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.children().any(|c| c.has_tag_name("title")))
        .count();
    assert!(bars >= 3 * 8, "{bars} bars");
}

#[test]
fn inspect_rejects_a_file_that_is_not_a_trace_log_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notes.jsonl"),
        "{\"level\":\"INFO\",\"fields\":{}}\nhello\n",
    )
    .unwrap();
    let out = demo(&["inspect", "notes.jsonl"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.jsonl:2 is not a trace log line"),
        "{err}"
    );
    let out = demo(&["inspect", "missing.jsonl"], dir.path());
    assert!(!out.status.success());
}

#[test]
fn the_llm_pipeline_writes_every_chunk_once_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let text = stdout(&demo(
        &[
            "llm",
            "--latency",
            "30ms",
            "--fail-every",
            "5",
            "--runs",
            "1",
            "--chunk-size",
            "200",
            "--trace-dir",
            "t",
        ],
        dir.path(),
    ));
    for way in [
        "one at a time",
        "under a lock",
        "collect, then write",
        "OrderedWriter",
        "async, one thread",
    ] {
        let r = row(&text, way);
        assert!(r.contains('✓'), "{r}");
    }
    assert!(
        text.contains(", chunk ") && text.contains(": HTTP 500: injected failure"),
        "{text}"
    );
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "fits 80 columns:\n{text}"
    );
    let chunks: usize = text
        .split(" chunks of ")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    for (file, ordered) in [
        ("llm-one_at_a_time.txt", true),
        ("llm-under_a_lock.txt", false),
        ("llm-collect_then_write.txt", true),
        ("llm-ordered_writer.txt", true),
        ("llm-async_one_thread.txt", true),
    ] {
        let body = std::fs::read_to_string(dir.path().join("t").join(file)).unwrap();
        let mut seen: Vec<usize> = body
            .lines()
            .filter_map(|l| l.strip_prefix("### chunk "))
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect();
        if ordered {
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{file}: {seen:?}");
        }
        seen.sort();
        assert_eq!(seen, (0..chunks).collect::<Vec<_>>(), "{file}");
        assert!(
            body.contains("FAILED: HTTP 500"),
            "{file} marks its failed chunk"
        );
    }
    let svg = std::fs::read_to_string(dir.path().join("t/llm-timeline.svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
}

#[test]
fn help_is_there_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["llm", "--help"], &["inspect", "--help"]] {
        let text = stdout(&demo(args, dir.path()));
        assert!(text.contains("Usage"), "{text}");
    }
    let out = demo(&["--n", "0"], dir.path());
    assert!(!out.status.success(), "a bad count is refused");
}

#[test]
fn without_python3_the_python_column_is_skipped_with_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_decor-demo"))
        .args([
            "--n",
            "10000",
            "--runs",
            "1",
            "--python",
            "--trace-dir",
            "t",
        ])
        .current_dir(dir.path())
        .env("PATH", "")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("python3 was not found"), "{text}");
    assert!(!text.contains("Python here"));
    assert!(row(&text, "threads").contains('✓'));
}

#[test]
fn an_unreachable_endpoint_is_one_clear_error_and_a_failed_exit_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}/v1");
    let out = demo(
        &["llm", "--endpoint", &endpoint, "--trace-dir", "t"],
        dir.path(),
    );
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{text}\n{err}");
    assert!(
        err.contains(&format!("no request to {endpoint} succeeded"))
            && err.contains("request failed"),
        "names the endpoint and the first failure: {err}"
    );
    assert!(
        !text.contains("How to read it") && !text.contains("faster"),
        "no speed-up from requests that never happened: {text}"
    );
    let body = std::fs::read_to_string(dir.path().join("t/llm-one_at_a_time.txt")).unwrap();
    let entries: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("### chunk "))
        .collect();
    assert!(
        !entries.is_empty() && entries.iter().all(|l| l.contains("FAILED: request failed")),
        "every chunk is in the file, marked failed: {body}"
    );
}

#[test]
fn when_some_requests_fail_the_summary_counts_only_the_answered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let text = stdout(&demo(
        &[
            "llm",
            "--latency",
            "1ms",
            "--fail-every",
            "3",
            "--runs",
            "1",
            "--trace-dir",
            "t",
        ],
        dir.path(),
    ));
    assert!(
        text.lines()
            .any(|l| l.contains("one request at a time takes") && l.contains(" answered)")),
        "{text}"
    );
}

#[test]
fn durations_on_the_command_line_take_units_and_bad_ones_say_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(
        &["llm", "--latency", "2 fortnights", "--runs", "1"],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--latency") && err.contains("20ms or 2s"),
        "{err}"
    );
}

#[test]
fn with_retries_every_chunk_completes_against_a_server_that_throttles_fails_and_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let text = stdout(&demo(
        &[
            "llm",
            "--latency",
            "10ms",
            "--runs",
            "1",
            "--chunk-size",
            "200",
            "--throttle-every",
            "4",
            "--fail-every",
            "7",
            "--hang-every",
            "9",
            "--request-timeout",
            "300ms",
            "--retries",
            "8",
            "--rate",
            "1200/min",
            "--trace-dir",
            "t",
        ],
        dir.path(),
    ));
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "fits 80 columns:\n{text}"
    );
    assert!(!text.contains("Failed requests"), "{text}");
    let retried: u64 = text
        .split("Retried requests: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("says how many were retried: {text}"))
        .parse()
        .unwrap();
    assert!(retried > 0, "{text}");
    for file in [
        "llm-one_at_a_time.txt",
        "llm-under_a_lock.txt",
        "llm-collect_then_write.txt",
        "llm-ordered_writer.txt",
        "llm-async_one_thread.txt",
    ] {
        let body = std::fs::read_to_string(dir.path().join("t").join(file)).unwrap();
        assert!(!body.contains("FAILED"), "{file}: {body}");
        let mut seen: Vec<usize> = body
            .lines()
            .filter_map(|l| l.strip_prefix("### chunk "))
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect();
        if [
            "llm-collect_then_write.txt",
            "llm-ordered_writer.txt",
            "llm-async_one_thread.txt",
        ]
        .contains(&file)
        {
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{file}: {seen:?}");
        }
        seen.sort();
        let chunks = seen.len();
        assert!(chunks > 1, "{file}");
        assert_eq!(
            seen,
            (0..chunks).collect::<Vec<_>>(),
            "{file}: every chunk once"
        );
    }
    // Each retry is a WARN in the trace, naming the attempt and why.
    let log = std::fs::read_to_string(dir.path().join("t/llm-trace.jsonl")).unwrap();
    let warns = log
        .lines()
        .filter(|l| l.contains("\"attempt\"") && l.contains("WARN"))
        .count();
    assert_eq!(warns as u64, retried, "one WARN per retry");
    assert!(
        log.contains("HTTP 429") && log.contains("timed out"),
        "the errors are named"
    );
    // The timeline draws each attempt; inspect counts the retries per function.
    let svg = std::fs::read_to_string(dir.path().join("t/llm-timeline.svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert!(svg.contains("failed and retried"), "{svg}");
    let seen = stdout(&demo(&["inspect", "t/llm-trace.jsonl"], dir.path()));
    let counted: u64 = seen
        .split("Retries")
        .nth(1)
        .unwrap_or_else(|| panic!("inspect shows retries: {seen}"))
        .lines()
        .filter(|l| l.contains("decor_demo::llm::"))
        .filter_map(|l| {
            let cells = l.trim_matches(|c| c == '│' || c == ' ');
            cells.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(counted, retried, "{seen}");
}
