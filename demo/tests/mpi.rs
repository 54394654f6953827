//! `decor-demo` as rank 0 of `mpirun -n 3`: the sum table gets an `mpi` row, checked like the
//! others. Built only with `--features mpi`; without `mpirun` it fails, it does not skip.
#![cfg(feature = "mpi")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn under_mpirun_the_sum_table_has_a_checked_mpi_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("mpirun")
        .args(["-n", "3", "--oversubscribe", "--allow-run-as-root"])
        .arg(env!("CARGO_BIN_EXE_decor-demo"))
        .args(["--n", "400000", "--runs", "2", "--trace-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("mpirun decor-demo: still running after 120 s (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.trim_start_matches('│').trim_start().starts_with("mpi "))
        .unwrap_or_else(|| panic!("no mpi row in\n{text}"));
    assert!(row.contains('✓'), "{row}");
    assert!(
        text.contains("MPI: ") && text.contains("2 serving rank(s)"),
        "{text}"
    );
}
