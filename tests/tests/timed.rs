//! `#[timed]`: one event per call, every function shape, every exit path, statistics.

use std::time::Duration;

use decor::timed;
use decor_tests::{Seen, SeenEvent, capture};
use tracing::Level;

fn stats_of(name: &str) -> decor::stats::FnStats {
    decor::stats::snapshot()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no statistics for {name}"))
}

fn only_event(seen: &Seen) -> &SeenEvent {
    assert_eq!(seen.events.len(), 1, "{:#?}", seen.events);
    &seen.events[0]
}

#[timed]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[test]
fn each_call_emits_one_event_with_function_and_elapsed() {
    let (sum, seen) = capture(|| add(2, 3));
    assert_eq!(sum, 5);
    let e = only_event(&seen);
    assert_eq!(e.level, Level::INFO);
    assert_eq!(e.target, module_path!());
    assert_eq!(e.fields["function"], concat!(module_path!(), "::add"));
    let ns: u64 = e.fields["elapsed_ns"]
        .parse()
        .expect("elapsed_ns is a number");
    assert!(ns < 1_000_000_000);
    let msg = &e.fields["message"];
    assert!(msg.starts_with("add took "), "{msg}");
    assert!(!e.fields.contains_key("panicked"));
}

#[timed(level = "debug", name = "parse_doc")]
fn parse(s: &str) -> usize {
    s.len()
}

#[test]
fn level_and_name_options_apply_to_event_and_statistics() {
    let (_, seen) = capture(|| parse("abc"));
    let e = only_event(&seen);
    assert_eq!(e.level, Level::DEBUG);
    assert_eq!(e.fields["function"], concat!(module_path!(), "::parse_doc"));
    assert!(e.fields["message"].starts_with("parse_doc took "));
    assert_eq!(stats_of(concat!(module_path!(), "::parse_doc")).calls, 1);
}

#[timed(warn_over = "20ms")]
fn maybe_slow(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn calls_over_the_limit_are_reported_at_warn() {
    let (_, seen) = capture(|| {
        maybe_slow(0);
        maybe_slow(40);
    });
    assert_eq!(seen.events.len(), 2);
    assert_eq!(seen.events[0].level, Level::INFO);
    assert_eq!(seen.events[1].level, Level::WARN);
    assert!(seen.events[1].fields["message"].contains("over 20.0ms"));
    let ns: u64 = seen.events[1].fields["elapsed_ns"].parse().unwrap();
    assert!(ns >= 40_000_000);
}

#[timed]
fn early(x: i32) -> &'static str {
    if x < 0 {
        return "negative";
    }
    "other"
}

#[timed]
fn parse_num(s: &str) -> Result<i64, std::num::ParseIntError> {
    let n: i64 = s.parse()?;
    Ok(n * 2)
}

#[timed]
fn explode(msg: &str) -> u8 {
    panic!("{msg}")
}

#[test]
fn every_exit_path_is_timed() {
    let (_, seen) = capture(|| {
        assert_eq!(early(-1), "negative");
        assert_eq!(early(1), "other");
        assert!(parse_num("x").is_err());
        assert_eq!(parse_num("21"), Ok(42));
    });
    assert_eq!(seen.events.len(), 4);
    assert_eq!(stats_of(concat!(module_path!(), "::early")).calls, 2);
    assert_eq!(stats_of(concat!(module_path!(), "::parse_num")).calls, 2);
    // A call that returned `Err` (here through `?`) says so; an `Ok` says that too; a function
    // that returns no `Result` has no `ok`.
    let ok: Vec<Option<&str>> = seen
        .events
        .iter()
        .map(|e| e.fields.get("ok").map(String::as_str))
        .collect();
    assert_eq!(ok, [None, None, Some("false"), Some("true")], "{seen:#?}");
    assert!(seen.events[2].fields["message"].starts_with("parse_num failed after "));
    assert!(seen.events[3].fields["message"].starts_with("parse_num took "));
}

#[test]
fn a_panic_is_reported_with_its_duration_and_goes_on() {
    let (r, seen) = capture(|| std::panic::catch_unwind(|| explode("boom")));
    let payload = r.expect_err("the panic goes on");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("boom")
    );
    let e = only_event(&seen);
    assert_eq!(e.level, Level::WARN);
    assert_eq!(e.fields["panicked"], "true");
    assert!(e.fields["message"].starts_with("explode panicked after "));
    assert!(e.fields.contains_key("elapsed_ns"));
    assert_eq!(stats_of(concat!(module_path!(), "::explode")).calls, 1);
}

#[derive(Debug, Default)]
struct Counter {
    n: u64,
}

impl Counter {
    #[timed]
    fn new_at(n: u64) -> Self {
        Counter { n }
    }

    #[timed]
    fn get(&self) -> u64 {
        self.n
    }

    #[timed]
    fn bump(&mut self) {
        self.n += 1;
    }

    #[timed]
    fn into_inner(self) -> u64 {
        self.n
    }

    #[allow(clippy::boxed_local)]
    #[timed]
    fn boxed(self: Box<Self>) -> u64 {
        self.n
    }

    #[timed]
    fn evens(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.n).filter(|x| x % 2 == 0)
    }
}

#[timed]
fn largest<T>(xs: &[T]) -> Option<T>
where
    T: PartialOrd + Copy,
{
    xs.iter().copied().fold(None, |m, x| match m {
        Some(m) if m >= x => Some(m),
        _ => Some(x),
    })
}

/// # Safety
/// `p` must point to a valid `u32`.
#[timed]
unsafe fn read_raw(p: *const u32) -> u32 {
    // SAFETY: the caller promises `p` is valid.
    unsafe { *p }
}

#[test]
fn methods_associated_generic_unsafe_and_impl_trait_functions_are_timed() {
    let (_, seen) = capture(|| {
        let mut c = Counter::new_at(4);
        c.bump();
        assert_eq!(c.get(), 5);
        assert_eq!(c.evens().count(), 3);
        assert_eq!(Box::new(Counter { n: 9 }).boxed(), 9);
        assert_eq!(c.into_inner(), 5);
        assert_eq!(largest(&[3, 9, 2]), Some(9));
        assert_eq!(largest(&[1.5, 0.5]), Some(1.5));
        let x = 7u32;
        // SAFETY: `x` is a live u32.
        assert_eq!(unsafe { read_raw(&x) }, 7);
    });
    let names: Vec<&str> = seen
        .events
        .iter()
        .map(|e| e.fields["function"].rsplit("::").next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "new_at",
            "bump",
            "get",
            "evens",
            "boxed",
            "into_inner",
            "largest",
            "largest",
            "read_raw"
        ]
    );
}

#[timed]
async fn fetch(delay_ms: u64) -> Result<u64, String> {
    if delay_ms == 0 {
        return Err("no delay".into());
    }
    std::thread::sleep(Duration::from_millis(delay_ms));
    let v: u64 = "5".parse().map_err(|_| "bad".to_string())?;
    Ok(v)
}

#[test]
fn async_fn_is_timed_from_first_poll_to_completion() {
    let (r, seen) = capture(|| {
        let fut = fetch(5);
        // Time spent before the first poll does not count.
        std::thread::sleep(Duration::from_millis(300));
        pollster::block_on(fut)
    });
    assert_eq!(r, Ok(5));
    let ns: u64 = only_event(&seen).fields["elapsed_ns"].parse().unwrap();
    assert!((5_000_000..300_000_000).contains(&ns), "{ns}");
    assert_eq!(only_event(&seen).fields["ok"], "true");
    let (r, seen) = capture(|| pollster::block_on(fetch(0)));
    assert_eq!(r, Err("no delay".into()));
    assert_eq!(only_event(&seen).fields["ok"], "false");
}

#[timed]
fn counted(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[test]
fn statistics_count_every_call_from_many_threads_without_a_subscriber() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    std::hint::black_box(counted(t * i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = stats_of(concat!(module_path!(), "::counted"));
    assert_eq!(s.calls, 40_000);
    assert!(s.min <= s.p50 && s.p50 <= s.p99 && s.p99 <= s.max, "{s:?}");
    assert!(s.min <= s.mean && s.mean <= s.max, "{s:?}");
    assert_eq!(s.mean, s.total / 40_000);
}

#[timed]
fn sleeps(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn percentiles_follow_the_distribution() {
    for _ in 0..98 {
        sleeps(1);
    }
    sleeps(30);
    sleeps(30);
    let s = stats_of(concat!(module_path!(), "::sleeps"));
    assert_eq!(s.calls, 100);
    assert!(
        s.p50 >= Duration::from_millis(1) && s.p50 < Duration::from_millis(20),
        "{s:?}"
    );
    assert!(s.p99 >= Duration::from_millis(29), "{s:?}");
    assert!(s.max >= Duration::from_millis(30), "{s:?}");
    let report = decor::stats::report();
    let row = report
        .lines()
        .find(|l| l.contains("timed::sleeps"))
        .expect("a row for sleeps");
    assert!(row.contains(" 100 "), "{report}");
    let header = report.lines().next().unwrap();
    for col in [
        "function", "calls", "total", "mean", "min", "p50", "p99", "max",
    ] {
        assert!(header.contains(col), "{report}");
    }
}

#[decor::timed]
#[track_caller]
fn called_from() -> u32 {
    std::panic::Location::caller().line()
}

#[test]
fn track_caller_reaches_through_timed() {
    let line = line!() + 1;
    let reported = called_from();
    assert_eq!(reported, line, "the caller's line, not the attribute's");
}
