//! A stand-in for an LLM API on 127.0.0.1: answers `POST …/chat/completions` in the
//! OpenAI chat-completions JSON shape after a set latency, and fails every K-th request if asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use tiny_http::{Header, Method, Response, Server};

pub struct FakeLlm {
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
    pub base_url: String,
    requests: Arc<AtomicU64>,
}

impl FakeLlm {
    /// Listens on a free port of 127.0.0.1 with enough threads to answer `concurrency` requests
    /// at once.
    pub fn start(
        latency: Duration,
        fail_every: u64,
        concurrency: usize,
    ) -> Result<FakeLlm, String> {
        let server = Arc::new(
            Server::http("127.0.0.1:0").map_err(|e| format!("cannot start the LLM server: {e}"))?,
        );
        let port = server
            .server_addr()
            .to_ip()
            .ok_or("the LLM server has no IP address")?
            .port();
        let requests = Arc::new(AtomicU64::new(0));
        let threads = (0..concurrency.max(1))
            .map(|_| {
                let (server, requests) = (server.clone(), requests.clone());
                std::thread::spawn(move || {
                    while let Ok(req) = server.recv() {
                        answer(req, latency, fail_every, &requests);
                    }
                })
            })
            .collect();
        Ok(FakeLlm {
            server,
            threads,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            requests,
        })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn json_response(status: u16, body: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                .expect("a valid header"),
        )
}

fn answer(mut req: tiny_http::Request, latency: Duration, fail_every: u64, requests: &AtomicU64) {
    if *req.method() != Method::Post || !req.url().ends_with("/chat/completions") {
        let body = json!({"error": {"message": "only POST /v1/chat/completions is served", "type": "invalid_request_error"}});
        let _ = req.respond(json_response(404, &body));
        return;
    }
    let mut body = String::new();
    let parsed: Option<Value> = req
        .as_reader()
        .read_to_string(&mut body)
        .ok()
        .and_then(|_| serde_json::from_str(&body).ok());
    let text = parsed
        .as_ref()
        .and_then(|v| v["messages"].as_array())
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .map(str::to_owned);
    let Some(text) = text else {
        let body = json!({"error": {"message": "the body needs messages with a user message", "type": "invalid_request_error"}});
        let _ = req.respond(json_response(400, &body));
        return;
    };
    let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
    std::thread::sleep(latency);
    if fail_every > 0 && n.is_multiple_of(fail_every) {
        let body = json!({"error": {"message": format!("injected failure (request {n})"), "type": "server_error"}});
        let _ = req.respond(json_response(500, &body));
        return;
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
    let _ = req.respond(json_response(200, &body));
}
