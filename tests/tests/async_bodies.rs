//! `#[parallel_chunks]` on an `async fn`: chunks as concurrent futures on the caller's executor
//! (here `pollster`, which has no runtime at all), at most `workers` in flight, results in chunk
//! order, the same error contract.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use decor::{ChunkError, parallel_chunks};
use decor_tests::within;

const LATENCY: Duration = Duration::from_millis(60);

/// A loopback server that answers every request after `LATENCY` with the path it was asked.
fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                std::thread::sleep(LATENCY);
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{path}",
                    path.len()
                );
                let _ = conn.write_all(response.as_bytes());
            });
        }
    });
    addr
}

/// A future whose work runs on a thread of its own and wakes the task when done: an async
/// client that needs no runtime.
fn on_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = T> {
    let slot: Arc<Mutex<(Option<T>, Option<Waker>)>> = Arc::new(Mutex::new((None, None)));
    let theirs = slot.clone();
    std::thread::spawn(move || {
        let value = work();
        let mut s = theirs.lock().unwrap();
        s.0 = Some(value);
        if let Some(w) = s.1.take() {
            w.wake();
        }
    });
    std::future::poll_fn(move |cx| {
        let mut s = slot.lock().unwrap();
        match s.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
}

fn get(addr: &str, path: &str) -> impl Future<Output = String> {
    let (addr, path) = (addr.to_owned(), path.to_owned());
    on_thread(move || {
        let mut conn = TcpStream::connect(&addr).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
    })
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static MOST_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

#[parallel_chunks(chunk_size = 1, workers = 16, reduce = "concat")]
async fn fetch_all(paths: &[String], addr: &str) -> Vec<String> {
    let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_IN_FLIGHT.fetch_max(now, Ordering::SeqCst);
    let mut pages = Vec::new();
    for p in paths {
        pages.push(get(addr, p).await);
    }
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    pages
}

#[test]
fn a_fan_out_of_64_requests_with_16_in_flight_takes_about_four_latencies_in_order() {
    let addr = server();
    let paths: Vec<String> = (0..64).map(|i| format!("/page/{i}")).collect();
    let expected = paths.clone();
    let (pages, took) = within(Duration::from_secs(60), "async fan-out", move || {
        let start = Instant::now();
        let pages = pollster::block_on(fetch_all(&paths, &addr));
        (pages, start.elapsed())
    });
    assert_eq!(pages, expected, "every answer, in chunk order");
    assert_eq!(
        MOST_IN_FLIGHT.load(Ordering::SeqCst),
        16,
        "at most `workers` in flight"
    );
    let latencies = took.as_secs_f64() / LATENCY.as_secs_f64();
    assert!(
        (4.0..12.0).contains(&latencies),
        "64 requests, 16 at a time: about 4 latencies, took {latencies:.1}"
    );
}

#[derive(Debug)]
struct FetchError(ChunkError);

impl From<ChunkError> for FetchError {
    fn from(e: ChunkError) -> Self {
        FetchError(e)
    }
}

#[parallel_chunks(chunks = 4, workers = 2, reduce = "sum")]
async fn lengths(words: &[&str]) -> Result<usize, FetchError> {
    let n = on_thread({
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        move || words.iter().map(String::len).sum::<usize>()
    })
    .await;
    if words.contains(&"boom") {
        panic!("exploded on {}", words[0]);
    }
    let _ = decor::current_chunk().expect("a body knows its chunk");
    Ok(n)
}

#[test]
fn an_async_body_has_the_same_error_contract() {
    let ok = pollster::block_on(lengths(&["a", "bb", "ccc", "dddd"]));
    assert_eq!(ok.unwrap(), 10);
    let failed = pollster::block_on(lengths(&["a", "bb", "boom", "dddd"]));
    let Err(FetchError(e)) = failed else {
        panic!("a panicking chunk is an Err")
    };
    assert_eq!(e.chunk, 2);
    assert!(e.to_string().contains("exploded on boom"), "{e}");
}

#[parallel_chunks(chunks = 2, workers = 2, timeout = "10ms", reduce = "sum")]
async fn slow_lengths(words: &[&str]) -> usize {
    let n = words.len();
    on_thread(move || {
        std::thread::sleep(Duration::from_millis(40));
        n
    })
    .await
}

#[test]
fn an_async_chunk_over_its_timeout_is_reported_when_it_ends() {
    let (n, seen) = decor_tests::capture(|| pollster::block_on(slow_lengths(&["a", "b"])));
    assert_eq!(n, 2);
    let overruns = seen
        .events
        .iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .filter(|e| e.fields["message"].contains("over its timeout of 10.0ms"))
        .count();
    assert_eq!(overruns, 2, "{:#?}", seen.events);
}

#[parallel_chunks(chunk_size = 1, workers = 3, reduce = "sum")]
async fn slow_ones(xs: &[u8]) -> usize {
    on_thread(|| std::thread::sleep(Duration::from_millis(5))).await;
    xs.len()
}

#[test]
fn async_chunks_say_they_ran_as_futures_in_their_in_flight_slot() {
    let (n, seen) = within(Duration::from_secs(60), "async spans", || {
        decor_tests::capture(|| pollster::block_on(slow_ones(&[1; 9])))
    });
    assert_eq!(n, 9);
    assert_eq!(seen.span("parallel_chunks").fields["backend"], "futures");
    let chunks: Vec<_> = seen.spans.iter().filter(|s| s.name == "chunk").collect();
    assert_eq!(chunks.len(), 9);
    let slots: std::collections::BTreeSet<&str> = chunks
        .iter()
        .map(|s| {
            assert_eq!(s.fields["backend"], "futures");
            s.fields["worker"].as_str()
        })
        .collect();
    assert_eq!(
        slots.into_iter().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "three in flight, each in a slot of its own"
    );
}
