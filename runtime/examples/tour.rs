//! A tour of `#[timed]` and `#[logged]`: `cargo run -p decor --example tour`.
//!
//! Prints trace lines on stderr (try `RUST_LOG=debug` or `RUST_LOG=warn`), writes
//! `decor-trace/tour.jsonl` and `decor-trace/tour.chrome.json`, then the statistics table.

use std::time::Duration;

use decor::{logged, timed};

#[derive(Debug)]
struct Session {
    user: String,
}

#[timed]
#[logged(skip(password))]
fn login(user: &str, password: &str) -> Result<Session, String> {
    std::thread::sleep(Duration::from_millis(2));
    if password == "hunter2" {
        Ok(Session {
            user: user.to_owned(),
        })
    } else {
        Err(format!("wrong password for {user}"))
    }
}

#[timed(warn_over = "15ms")]
fn render(page: u32) -> usize {
    std::thread::sleep(Duration::from_millis(if page == 3 { 20 } else { 1 }));
    page as usize * 100
}

#[logged(max_len = 24)]
fn checksum(data: &[u8]) -> u32 {
    data.iter().map(|&b| u32::from(b)).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = decor::trace::Trace::new()
        .stderr()
        .json_file("decor-trace/tour.jsonl")
        .chrome_file("decor-trace/tour.chrome.json")
        .init()?;
    let session = login("ana", "hunter2")?;
    let _ = login("bob", "1234");
    for page in 1..=4 {
        render(page);
    }
    checksum(&vec![7u8; 1_000_000]);
    drop(session.user);
    println!("{}", decor::stats::report());
    Ok(())
}
