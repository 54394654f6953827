//! Functions that never return (`-> !`) take both attributes.
#![deny(warnings)]
use decor::{logged, timed};

#[logged]
fn logged_exits(code: i32) -> ! {
    std::process::exit(code)
}

#[timed]
fn timed_exits(code: i32) -> ! {
    std::process::exit(code)
}

#[logged]
#[timed]
fn both_panic(why: &str) -> ! {
    panic!("{why}")
}

fn main() {
    if std::env::args().count() > 100 {
        logged_exits(1);
    }
    if std::env::args().count() > 100 {
        timed_exits(1);
    }
    if std::env::args().count() > 100 {
        both_panic("never");
    }
}
