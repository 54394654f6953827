//! A progress bar for long parallel calls: seen on a terminal, absent in a pipe. Each case is
//! this test binary started again, its stderr a pseudo-terminal or a pipe.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use decor::parallel_chunks;

#[parallel_chunks(chunks = 8, workers = 2)]
fn slow(xs: &[u8]) {
    let _ = xs;
    std::thread::sleep(Duration::from_millis(350));
}

#[test]
fn child_runs_a_long_call() {
    if std::env::var_os("DECOR_PROGRESS_CHILD").is_none() {
        return;
    }
    let _guard = decor::trace::Trace::new().init().unwrap();
    slow(&[0; 8]);
}

fn child() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_runs_a_long_call", "--nocapture"])
        .env("DECOR_PROGRESS_CHILD", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

#[test]
fn a_long_call_shows_a_progress_bar_on_a_terminal() {
    if std::env::var_os("DECOR_PROGRESS_CHILD").is_some() {
        return;
    }
    let (mut master, mut slave) = (0, 0);
    // SAFETY: `openpty` fills in two new descriptors, which we own from here on.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened for us.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut proc = child().stderr(Stdio::from(slave)).spawn().unwrap();
    let mut terminal = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Ends with an error (EIO) once the child has closed the terminal.
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = proc.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            proc.kill().unwrap();
            panic!("the child hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let shown = reader.join().unwrap();
    assert!(
        shown.contains("progress::slow") && shown.contains("/8 chunks"),
        "a bar with the function and the chunks: {shown:?}"
    );
}

#[test]
fn no_progress_bar_in_a_pipe() {
    if std::env::var_os("DECOR_PROGRESS_CHILD").is_some() {
        return;
    }
    let out = decor_tests::output_within(&mut child(), Duration::from_secs(60));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("chunks,"),
        "nothing drawn in a pipe: {stderr:?}"
    );
}
