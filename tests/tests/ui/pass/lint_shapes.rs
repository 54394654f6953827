//! Lints see a decorated function as they see the function written: a one-line body does not
//! trip `unused_braces`, and an unused decorated function is still dead code, so an
//! `#[expect(dead_code)]` on it is fulfilled.
#![deny(unused_braces, unfulfilled_lint_expectations)]

use decor::{logged, parallel_chunks, timed};

#[timed]
fn timed_one_line(x: u32) -> u32 { x + 1 }

#[logged]
fn logged_one_line(x: u32) -> u32 { x + 1 }

#[timed]
async fn timed_async_one_line(x: u32) -> u32 { x + 1 }

#[logged]
async fn logged_async_one_line(x: u32) -> u32 { x + 1 }

#[parallel_chunks(reduce = "sum")]
fn parallel_one_line(xs: &[u32]) -> u32 { xs.iter().sum() }

#[expect(dead_code)]
#[timed]
fn timed_unused() {}

#[expect(dead_code)]
#[logged]
fn logged_unused() {}

#[expect(dead_code)]
#[timed]
async fn timed_async_unused() {}

#[expect(dead_code)]
#[logged]
async fn logged_async_unused() {}

fn main() {
    assert_eq!(timed_one_line(1), 2);
    assert_eq!(logged_one_line(1), 2);
    assert_eq!(parallel_one_line(&[1, 2]), 3);
    let _ = timed_async_one_line(1);
    let _ = logged_async_one_line(1);
}
