//! A stand-in for an LLM API on 127.0.0.1: answers `POST …/chat/completions` in the
//! OpenAI chat-completions JSON shape after a set latency, and misbehaves as real services do if
//! asked ([`Faults`]): 500 to every K-th request, 429 with `Retry-After` to every K-th, no answer
//! at all to every K-th.
//!
//! A minimal HTTP/1.1 server, one thread per connection, keep-alive, `Content-Length` bodies.
//! Written here rather than taken from `tiny_http`, whose task pool, measured on this demo,
//! queued 14 simultaneous connections behind its 4 first threads, so that some requests waited a
//! whole extra latency: exactly the overlap the demo is about.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// Requests larger than this are refused (the demo's chunks are a few hundred characters).
const MAX_BODY: usize = 1 << 20;

/// How the server misbehaves, each by request number (the n-th request it is sent, from 1;
/// 0: never). A request that matches several gets the first of: no answer, 429, 500.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// HTTP 500 to every K-th request.
    pub fail_every: u64,
    /// HTTP 429 with `Retry-After: 1` to every K-th request, as a rate-limited API does.
    pub throttle_every: u64,
    /// No answer to every K-th request until the client gives up (or the server stops).
    pub hang_every: u64,
}

impl Faults {
    fn hits(every: u64, n: u64) -> bool {
        every > 0 && n.is_multiple_of(every)
    }
}

/// What every connection's thread reads.
struct Shared {
    latency: Duration,
    faults: Faults,
    requests: AtomicU64,
    stop: AtomicBool,
}

pub struct FakeLlm {
    pub base_url: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    port: u16,
}

impl FakeLlm {
    /// Listens on a free port of 127.0.0.1.
    pub fn start(latency: Duration, faults: Faults) -> Result<FakeLlm, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot start the LLM server: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let shared = Arc::new(Shared {
            latency,
            faults,
            requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(conn, &shared));
                }
            })
        };
        Ok(FakeLlm {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            shared,
            accept: Some(accept),
            port,
        })
    }

    /// Requests received so far, answered or not.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One request: method, path, body.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Result<Request, String>> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Some(Err("bad request line".into()));
    };
    let (mut length, mut close) = (0usize, false);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = match value.parse() {
                    Ok(n) if n <= MAX_BODY => n,
                    _ => return Some(Err("bad or too large Content-Length".into())),
                };
            } else if name == "connection" && value.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        body,
        close,
    }))
}

fn respond(w: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    let retry_after = if status == 429 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let body = body.to_string();
    // One write: a response in pieces meets Nagle's algorithm and the client's delayed ACK, 40 ms.
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{retry_after}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(response.as_bytes())?;
    w.flush()
}

fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_nodelay(true);
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r) {
        let (status, body, close) = match req {
            Err(e) => (
                400,
                json!({"error": {"message": e, "type": "invalid_request_error"}}),
                true,
            ),
            Ok(req) => match answer(&req, shared) {
                Some((status, body)) => (status, body, req.close),
                None => return, // hung up on: the client's timeout ends its wait
            },
        };
        if respond(&mut w, status, &body).is_err() || close {
            return;
        }
    }
}

/// The status and body for one request; `None` for a request not to answer (a hang, held
/// until the server stops or a minute passes).
fn answer(req: &Request, shared: &Shared) -> Option<(u16, Value)> {
    if req.method != "POST" || !req.path.ends_with("/chat/completions") {
        let body = json!({"error": {"message": "only POST /v1/chat/completions is served", "type": "invalid_request_error"}});
        return Some((404, body));
    }
    let parsed: Option<Value> = serde_json::from_slice(&req.body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v["messages"].as_array())
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str());
    let Some(text) = text else {
        let body = json!({"error": {"message": "the body needs messages with a user message", "type": "invalid_request_error"}});
        return Some((400, body));
    };
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let faults = shared.faults;
    if Faults::hits(faults.hang_every, n) {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while !shared.stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        return None;
    }
    std::thread::sleep(shared.latency);
    if Faults::hits(faults.throttle_every, n) {
        let body = json!({"error": {"message": format!("rate limit reached (request {n})"), "type": "rate_limit_error"}});
        return Some((429, body));
    }
    if Faults::hits(faults.fail_every, n) {
        let body = json!({"error": {"message": format!("injected failure (request {n})"), "type": "server_error"}});
        return Some((500, body));
    }
    let begins: String = text.chars().take(24).collect();
    let content = format!(
        "{} characters, {} words; it begins: {}…",
        text.chars().count(),
        text.split_whitespace().count(),
        begins.trim()
    );
    let body = json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": parsed.as_ref().and_then(|v| v["model"].as_str()).unwrap_or("decor-demo"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": text.chars().count(), "completion_tokens": 12},
    });
    Some((200, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Client;

    #[test]
    fn answers_in_the_chat_completions_shape_and_fails_on_demand() {
        let faults = Faults {
            fail_every: 3,
            ..Faults::default()
        };
        let server = FakeLlm::start(Duration::from_millis(1), faults).unwrap();
        let client = Client::new(&server.base_url, "m", None, 64, Duration::from_secs(30));
        let a = client.complete("日本語のテキスト and more").unwrap();
        assert!(
            a.starts_with("17 characters, 3 words; it begins: 日本語"),
            "{a}"
        );
        assert!(client.complete("two").is_ok());
        let err = client.complete("three").unwrap_err();
        assert_eq!(err.message, "HTTP 500: injected failure (request 3)");
        assert!(err.transient);
        assert_eq!(server.requests(), 3);
    }

    #[test]
    fn throttles_with_retry_after_and_hangs_until_the_client_gives_up() {
        let faults = Faults {
            throttle_every: 1,
            hang_every: 2,
            ..Faults::default()
        };
        let server = FakeLlm::start(Duration::ZERO, faults).unwrap();
        let addr = server
            .base_url
            .trim_start_matches("http://")
            .trim_end_matches("/v1");
        let mut conn = TcpStream::connect(addr).unwrap();
        let body = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests"), "{text}");
        assert!(text.contains("Retry-After: 1\r\n"), "{text}");
        let client = Client::new(&server.base_url, "m", None, 64, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = client.complete("second").unwrap_err();
        assert!(err.transient, "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{err:?}");
        let err = client.complete("third").unwrap_err();
        assert!(
            err.transient && err.message.starts_with("HTTP 429"),
            "{err:?}"
        );
        let err = async_io::block_on(client.complete_async("fourth")).unwrap_err();
        assert!(
            err.transient && err.message.contains("timed out"),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_what_is_not_a_chat_completion() {
        let server = FakeLlm::start(Duration::ZERO, Faults::default()).unwrap();
        let mut conn = TcpStream::connect(
            server
                .base_url
                .trim_start_matches("http://")
                .trim_end_matches("/v1"),
        )
        .unwrap();
        conn.write_all(b"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    }

    #[test]
    fn overlapping_requests_are_answered_together() {
        let latency = Duration::from_millis(100);
        let server = FakeLlm::start(latency, Faults::default()).unwrap();
        let client = Client::new(&server.base_url, "m", None, 64, Duration::from_secs(30));
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| client.complete("hello").unwrap());
            }
        });
        let took = start.elapsed();
        assert!(took < latency * 2, "16 requests in {took:?}");
    }
}
