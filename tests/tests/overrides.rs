//! `DECOR_BACKEND` and `DECOR_WORKERS` override every attribute, so one binary can be compared
//! across backends. The overrides are read once per process, so each case is a child process:
//! this test binary started again on `child_reports` with the variables set.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Mutex;
use std::thread::ThreadId;

use decor::parallel_chunks;

#[parallel_chunks(chunks = 6, workers = 3, backend = "threads")]
fn spread(xs: &[u8], seen: &Mutex<HashSet<ThreadId>>) {
    let _ = xs;
    std::thread::sleep(std::time::Duration::from_millis(20));
    seen.lock().unwrap().insert(std::thread::current().id());
}

#[test]
fn child_reports() {
    if std::env::var_os("DECOR_OVERRIDE_CHILD").is_none() {
        return;
    }
    let seen = Mutex::new(HashSet::new());
    let ((), captured) = decor_tests::capture(|| spread(&[0; 6], &seen));
    let call = captured.span("parallel_chunks");
    let threads = seen.into_inner().unwrap();
    let on_caller = threads.len() == 1 && threads.contains(&std::thread::current().id());
    for e in captured
        .events
        .iter()
        .filter(|e| e.level == tracing::Level::WARN)
    {
        println!("WARNED {}", e.fields["message"]);
    }
    println!(
        "REPORT backend={} workers={} threads={} on_caller={on_caller}",
        call.fields["backend"],
        call.fields["workers"],
        threads.len()
    );
}

fn report(env: &[(&str, &str)]) -> String {
    report_and_warnings(env).0
}

fn report_and_warnings(env: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_reports",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("DECOR_OVERRIDE_CHILD", "1")
    .env_remove("DECOR_BACKEND")
    .env_remove("DECOR_WORKERS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report in {stdout}"))
        .to_owned();
    let warnings = stdout
        .lines()
        .filter_map(|l| l.split_once("WARNED ").map(|(_, w)| w.to_owned()))
        .collect();
    (report, warnings)
}

#[test]
fn decor_backend_processes_leaves_a_function_without_a_worker_entry_on_threads_and_says_so() {
    if std::env::var_os("DECOR_OVERRIDE_CHILD").is_some() {
        return;
    }
    let (r, warnings) = report_and_warnings(&[("DECOR_BACKEND", "processes")]);
    assert!(
        r.starts_with("backend=threads workers=3 threads=3 "),
        "the span says where the chunks ran: {r}"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("overrides::spread runs on threads, not processes"),
        "{warnings:?}"
    );
}

#[test]
fn without_overrides_the_attribute_decides() {
    if std::env::var_os("DECOR_OVERRIDE_CHILD").is_some() {
        return;
    }
    let r = report(&[]);
    assert!(r.starts_with("backend=threads workers=3 threads=3 "), "{r}");
}

#[test]
fn decor_backend_serial_runs_every_chunk_on_the_caller() {
    if std::env::var_os("DECOR_OVERRIDE_CHILD").is_some() {
        return;
    }
    let r = report(&[("DECOR_BACKEND", "serial")]);
    assert_eq!(r, "backend=serial workers=1 threads=1 on_caller=true");
}

#[test]
fn decor_workers_sets_the_number_of_workers() {
    if std::env::var_os("DECOR_OVERRIDE_CHILD").is_some() {
        return;
    }
    let r = report(&[("DECOR_WORKERS", "1")]);
    assert_eq!(r, "backend=threads workers=1 threads=1 on_caller=true");
    let r = report(&[("DECOR_WORKERS", "2")]);
    assert!(r.starts_with("backend=threads workers=2 threads=2 "), "{r}");
}

#[test]
fn a_bad_override_is_a_clear_error() {
    if std::env::var_os("DECOR_OVERRIDE_CHILD").is_some() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_reports", "--nocapture"])
        .env("DECOR_OVERRIDE_CHILD", "1")
        .env("DECOR_BACKEND", "gpu")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "DECOR_BACKEND=\"gpu\": expected \"serial\", \"threads\", \"processes\" or \"mpi\""
        ),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("running"),
        "reported before main, before any work: {stdout}"
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_reports", "--nocapture"])
        .env("DECOR_OVERRIDE_CHILD", "1")
        .env("DECOR_WORKERS", "many")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("DECOR_WORKERS=\"many\": expected a whole number of at least 1"),
        "{stderr}"
    );
}
