//! `#[logged]`: a span with the arguments, an event with the outcome, values cut at `max_len`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use decor::{logged, timed};
use decor_tests::capture;
use tracing::Level;
use tracing::level_filters::LevelFilter;

#[derive(Debug)]
struct AuthError(String);

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access denied: {}", self.0)
    }
}

#[logged(skip(password), max_len = 64)]
fn login(user: &str, password: &str) -> Result<u32, AuthError> {
    if password == "s3cret-pw" {
        Ok(7)
    } else {
        Err(AuthError(user.to_owned()))
    }
}

#[test]
fn span_records_arguments_and_event_records_return() {
    let (r, seen) = capture(|| login("ana", "s3cret-pw"));
    assert_eq!(r.unwrap(), 7);
    let span = seen.span("login");
    assert_eq!(span.level, Level::INFO);
    assert_eq!(span.target, module_path!());
    assert_eq!(span.fields["user"], "\"ana\"");
    assert_eq!(seen.events.len(), 1);
    let e = &seen.events[0];
    assert_eq!(e.level, Level::INFO);
    assert_eq!(e.fields["ret"], "7");
    assert!(e.fields["elapsed_ns"].parse::<u64>().is_ok());
    assert_eq!(e.scope, ["login"]);
}

#[test]
fn skipped_arguments_never_appear_anywhere() {
    let (_, seen) = capture(|| {
        let _ = login("ana", "s3cret-pw");
        let _ = login("bob", "s3cret-wrong");
    });
    assert!(!seen.mentions("s3cret"), "{seen:#?}");
    assert!(!seen.spans.iter().any(|s| s.fields.contains_key("password")));
}

#[test]
fn an_err_is_reported_at_error_with_its_display() {
    let (r, seen) = capture(|| login("bob", "nope"));
    assert!(r.is_err());
    assert_eq!(seen.events.len(), 1, "{seen:#?}");
    let e = &seen.events[0];
    assert_eq!(e.level, Level::ERROR);
    assert_eq!(e.fields["error"], "access denied: bob");
    assert!(e.fields["message"].contains("login failed"));
    assert!(!e.fields.contains_key("ret"));
    assert_eq!(e.scope, ["login"]);
}

#[test]
fn errors_are_reported_even_when_the_span_level_is_off() {
    let (_, seen) = decor_tests::capture_at(LevelFilter::ERROR, || {
        let _ = login("ana", "s3cret-pw");
        let _ = login("bob", "nope");
    });
    assert!(seen.spans.is_empty());
    assert_eq!(seen.events.len(), 1);
    assert_eq!(seen.events[0].level, Level::ERROR);
    // With no span to hold them, the error event carries the recorded arguments itself; the
    // skipped one is still nowhere.
    assert_eq!(seen.events[0].fields["user"], "\"bob\"", "{seen:#?}");
    assert!(!seen.mentions("nope"), "{seen:#?}");
    assert!(!seen.events[0].fields.contains_key("password"));
}

#[test]
fn a_panic_with_the_span_filtered_out_carries_the_arguments_too() {
    let (r, seen) = decor_tests::capture_at(LevelFilter::ERROR, || {
        std::panic::catch_unwind(|| risky_parse("not a number"))
    });
    assert!(r.is_err());
    let e = &seen.events_with("risky_parse panicked")[0];
    assert_eq!(
        e.fields.get("text").map(String::as_str),
        Some("\"not a number\""),
        "{seen:#?}"
    );
}

#[logged]
fn risky_parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    if text.starts_with('n') {
        panic!("refusing {text}");
    }
    text.parse()
}

#[logged(err = false, ret = true)]
fn lookup(key: u8) -> Result<u8, String> {
    if key > 9 {
        Err("too big".into())
    } else {
        Ok(key)
    }
}

#[test]
fn err_false_records_the_whole_result_as_ret() {
    let (_, seen) = capture(|| lookup(12));
    assert_eq!(seen.events.len(), 1);
    assert_eq!(seen.events[0].level, Level::INFO);
    assert_eq!(seen.events[0].fields["ret"], "Err(\"too big\")");
}

#[logged(ret = false, level = "debug", name = "store_item")]
fn store(key: &str, value: Vec<u8>) -> usize {
    key.len() + value.len()
}

#[logged]
fn note(text: String) {
    drop(text);
}

#[test]
fn ret_false_unit_returns_level_and_name() {
    let (_, seen) = capture(|| {
        assert_eq!(store("k", vec![1, 2]), 3);
        note("hello".into());
    });
    let span = seen.span("store_item");
    assert_eq!(span.level, Level::DEBUG);
    assert_eq!(span.fields["value"], "[1, 2]");
    assert_eq!(seen.events[0].level, Level::DEBUG);
    assert!(!seen.events[0].fields.contains_key("ret"));
    assert_eq!(seen.span("note").fields["text"], "\"hello\"");
    assert!(!seen.events[1].fields.contains_key("ret"));
    assert!(seen.events[1].fields.contains_key("elapsed_ns"));
}

#[logged(skip_all)]
fn secret_sum(a: u64, b: u64) -> u64 {
    a + b
}

#[test]
fn skip_all_records_no_argument() {
    let (_, seen) = capture(|| secret_sum(123_456, 654_321));
    assert!(seen.span("secret_sum").fields.is_empty());
    assert_eq!(seen.events[0].fields["ret"], "777777");
}

#[logged(max_len = 16)]
fn count(xs: &[u64]) -> Vec<u64> {
    xs.iter().take(20).copied().collect()
}

#[test]
fn long_values_are_cut_at_max_len_with_a_mark() {
    let big = vec![1u64; 8_000_000];
    let (_, seen) = capture(|| count(&big));
    let xs = &seen.span("count").fields["xs"];
    assert_eq!(xs, "[1, 1, 1, 1, 1, …");
    assert_eq!(xs.chars().count(), 17);
    let ret = &seen.events[0].fields["ret"];
    assert!(ret.ends_with('…') && ret.chars().count() == 17, "{ret}");
}

#[logged(max_len = 6)]
fn scalars(n: u64, word: &str, quoted: String, x: f64, c: char, on: &bool) -> i128 {
    n as i128 + word.len() as i128 + quoted.len() as i128 + x as i128 + c as i128 + *on as i128
}

#[test]
fn numbers_strings_and_chars_are_cut_like_any_value() {
    // Each of these types is written straight through when its longest form fits `max_len`,
    // and through the cut otherwise: the output is the same either way.
    let (_, seen) = capture(|| scalars(12_345_678, "ab", "a\"b\\c".to_owned(), -0.5, '\'', &true));
    let span = &seen.span("scalars").fields;
    assert_eq!(span["n"], "123456…");
    assert_eq!(span["word"], "\"ab\"");
    assert_eq!(span["quoted"], r#""a\"b\…"#);
    assert_eq!(span["x"], "-0.5");
    assert_eq!(span["c"], r"'\''");
    assert_eq!(span["on"], "true");
    assert_eq!(seen.events[0].fields["ret"], "123457…");
}

/// An element that counts how often it is formatted.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl std::fmt::Debug for Counted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f.write_str("7")
    }
}

#[derive(Debug)]
struct Batch<'a> {
    #[expect(dead_code, reason = "read by its Debug only")]
    id: u32,
    xs: Vec<Counted<'a>>,
}

#[logged(max_len = 32)]
fn batch_len(batch: &Batch<'_>) -> usize {
    batch.xs.len()
}

#[logged(max_len = 24)]
fn locked_len(xs: &std::sync::Mutex<Vec<Counted<'_>>>) -> usize {
    xs.lock().unwrap().len()
}

#[test]
#[cfg(panic = "unwind")]
fn a_derived_debug_over_a_big_vec_stops_soon_after_the_cut() {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let batch = Batch {
        id: 3,
        xs: (0..1_000_000).map(|_| Counted(&seen)).collect(),
    };
    let (n, log) = capture(|| batch_len(&batch));
    assert_eq!(n, 1_000_000);
    assert_eq!(
        log.span("batch_len").fields["batch"],
        "Batch { id: 3, xs: [7, 7, 7, 7, …"
    );
    // Four shown, a few dozen swallowed past the cut, never the million.
    let formatted = seen.load(std::sync::atomic::Ordering::Relaxed);
    assert!(formatted < 100, "{formatted} elements formatted");
}

#[test]
fn a_mutex_argument_is_shown_cut_and_left_unpoisoned() {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let xs = std::sync::Mutex::new((0..10_000).map(|_| Counted(&seen)).collect());
    let (n, log) = capture(|| locked_len(&xs));
    assert_eq!(n, 10_000);
    assert_eq!(
        log.span("locked_len").fields["xs"],
        "Mutex { data: [7, 7, 7, …"
    );
    assert!(!xs.is_poisoned(), "formatting the argument poisoned it");
    assert_eq!(xs.lock().unwrap().len(), 10_000);
}

#[logged]
fn long_text(s: &str) -> usize {
    s.len()
}

#[test]
fn default_max_len_is_128_characters() {
    let text = "语".repeat(500);
    let (_, seen) = capture(|| long_text(&text));
    let shown = &seen.span("long_text").fields["s"];
    assert_eq!(shown.chars().count(), 129);
    assert!(shown.starts_with("\"语语") && shown.ends_with('…'));
}

#[logged]
fn fail_hard(reason: &str) -> u8 {
    panic!("gave up: {reason}")
}

#[test]
fn a_panic_is_reported_at_error_then_goes_on() {
    let (r, seen) = capture(|| std::panic::catch_unwind(|| fail_hard("disk full")));
    let payload = r.expect_err("the panic goes on");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("gave up: disk full")
    );
    assert_eq!(seen.events.len(), 1);
    let e = &seen.events[0];
    assert_eq!(e.level, Level::ERROR);
    assert_eq!(e.fields["panicked"], "gave up: disk full");
    assert_eq!(e.scope, ["fail_hard"]);
}

#[logged]
fn inner(x: u8) -> u8 {
    x + 1
}

#[logged]
fn outer(x: u8) -> u8 {
    tracing::info!("between");
    inner(x) * 2
}

#[test]
fn nested_calls_nest_their_spans() {
    let (r, seen) = capture(|| outer(1));
    assert_eq!(r, 4);
    assert_eq!(seen.span("inner").parent.as_deref(), Some("outer"));
    assert_eq!(seen.events_with("between")[0].scope, ["outer"]);
    assert_eq!(
        seen.events_with("inner returned")[0].scope,
        ["outer", "inner"]
    );
}

/// Pending once, then ready: makes an `async fn` be polled twice.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[logged]
async fn download(url: &str) -> Result<usize, AuthError> {
    tracing::info!("before await");
    YieldOnce(false).await;
    tracing::info!("after await");
    if url.is_empty() {
        return Err(AuthError("empty url".into()));
    }
    let n: usize = url
        .len()
        .to_string()
        .parse()
        .map_err(|_| AuthError("nan".into()))?;
    Ok(n)
}

#[test]
fn async_fn_span_is_entered_on_every_poll() {
    let (r, seen) = capture(|| pollster::block_on(download("https://example.org")));
    assert_eq!(r.unwrap(), 19);
    assert_eq!(
        seen.span("download").fields["url"],
        "\"https://example.org\""
    );
    assert_eq!(seen.events_with("before await")[0].scope, ["download"]);
    assert_eq!(seen.events_with("after await")[0].scope, ["download"]);
    assert_eq!(seen.events_with("download returned")[0].fields["ret"], "19");
    let (r, seen) = capture(|| pollster::block_on(download("")));
    assert!(r.is_err());
    assert_eq!(seen.events_with("download failed")[0].level, Level::ERROR);
}

#[derive(Debug)]
struct Account {
    id: u32,
}

struct NotDebug;

impl Account {
    #[logged]
    fn deposit(&mut self, amount: u64) -> u64 {
        amount + u64::from(self.id)
    }

    #[logged]
    fn close(self) -> u32 {
        self.id
    }

    #[logged(skip(amount))]
    fn open(id: u32, amount: u64) -> Self {
        let _ = amount;
        Account { id }
    }
}

impl NotDebug {
    #[logged]
    fn answer(&self, q: &str) -> usize {
        q.len()
    }
}

#[logged]
fn first<T: fmt::Debug + Clone>(xs: &[T]) -> Option<T> {
    xs.first().cloned()
}

#[logged]
fn evens(n: u32) -> impl Iterator<Item = u32> {
    (0..n).filter(|x| x % 2 == 0)
}

#[logged]
fn make_opaque() -> NotDebug {
    NotDebug
}

/// # Safety
/// `p` must be valid.
#[logged]
unsafe fn deref(p: *const u8) -> u8 {
    // SAFETY: the caller promises `p` is valid.
    unsafe { *p }
}

#[test]
fn methods_generics_impl_trait_and_unsafe_functions_are_logged() {
    let (_, seen) = capture(|| {
        let mut a = Account::open(3, 100);
        assert_eq!(a.deposit(10), 13);
        assert_eq!(a.close(), 3);
        assert_eq!(NotDebug.answer("why"), 3);
        assert_eq!(first(&["a", "b"]), Some("a"));
        assert_eq!(evens(5).count(), 3);
        let NotDebug = make_opaque();
        let x = 9u8;
        // SAFETY: `x` is live.
        assert_eq!(unsafe { deref(&x) }, 9);
    });
    assert_eq!(seen.span("deposit").fields["self"], "Account { id: 3 }");
    assert_eq!(seen.span("deposit").fields["amount"], "10");
    assert_eq!(seen.span("close").fields["self"], "Account { id: 3 }");
    assert!(!seen.span("open").fields.contains_key("amount"));
    // A receiver that is not `Debug` is left out rather than refused.
    assert!(!seen.span("answer").fields.contains_key("self"));
    assert_eq!(seen.span("answer").fields["q"], "\"why\"");
    assert_eq!(seen.span("first").fields["xs"], "[\"a\", \"b\"]");
    assert_eq!(
        seen.events_with("first returned")[0].fields["ret"],
        "Some(\"a\")"
    );
    // The concrete type behind `impl Iterator` is `Debug` here, so it is recorded.
    assert_eq!(
        seen.events_with("evens returned")[0].fields["ret"],
        "Filter { iter: 0..5 }"
    );
    // A return value that is not `Debug` is left out of the event.
    assert!(
        !seen.events_with("make_opaque returned")[0]
            .fields
            .contains_key("ret")
    );
    assert!(seen.span("deref").fields["p"].starts_with("0x"));
}

#[timed]
#[logged]
fn timed_outside(x: u8) -> u8 {
    x
}

#[logged]
#[timed]
fn logged_outside(x: u8) -> u8 {
    x
}

#[test]
fn timed_and_logged_stack_in_either_order() {
    let (_, seen) = capture(|| {
        timed_outside(1);
        logged_outside(2);
    });
    // The outer attribute wraps the inner one, as Python decorators do.
    let t = seen.events_with("timed_outside took");
    assert_eq!(t.len(), 1);
    assert!(
        t[0].scope.is_empty(),
        "#[timed] outside reports after the span closed"
    );
    let l = seen.events_with("logged_outside took");
    assert_eq!(l.len(), 1);
    assert_eq!(
        l[0].scope,
        ["logged_outside"],
        "#[logged] outside holds the timed call"
    );
    assert_eq!(seen.span("timed_outside").fields["x"], "1");
    assert_eq!(
        seen.events_with("logged_outside returned")[0].fields["ret"],
        "2"
    );
}

#[logged(level = "debug")]
fn quiet(x: u8) -> Result<u8, String> {
    if x == 0 { Err("zero".into()) } else { Ok(x) }
}

#[test]
fn a_disabled_level_records_nothing_but_still_works() {
    let (r, seen) = decor_tests::capture_at(LevelFilter::INFO, || quiet(4));
    assert_eq!(r, Ok(4));
    assert!(seen.spans.is_empty() && seen.events.is_empty(), "{seen:#?}");
}

#[logged(level = "debug")]
fn quiet_panics(x: u8) -> u8 {
    if x > 2 {
        panic!("boom {x}");
    }
    x
}

#[test]
fn a_panic_in_a_call_that_records_nothing_is_still_reported_at_error() {
    let (r, seen) = decor_tests::capture_at(LevelFilter::INFO, || {
        let calm = quiet_panics(1);
        (calm, std::panic::catch_unwind(|| quiet_panics(3)))
    });
    assert_eq!(r.0, 1);
    assert!(r.1.is_err(), "the panic goes on");
    assert!(seen.spans.is_empty(), "{seen:#?}");
    let e = &seen.events_with("quiet_panics panicked");
    assert_eq!(e.len(), 1, "{seen:#?}");
    assert_eq!(e[0].level, Level::ERROR);
    assert_eq!(e[0].fields["panicked"], "boom 3");
}
