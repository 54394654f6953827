//! A client of an OpenAI-compatible chat-completions endpoint, over plain HTTP.

use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use serde_json::{Value, json};

/// Why a request brought no answer.
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    /// As it reads: `HTTP 429: slow down`, `request failed: timed out`.
    pub message: String,
    /// Worth another attempt: the service was busy (429), failed on its side (5xx), or the
    /// request was lost on the way (a timeout, a dropped connection). Not a 4xx we caused.
    pub transient: bool,
}

impl Failure {
    fn on_the_way(message: String) -> Failure {
        Failure {
            message,
            transient: true,
        }
    }
}

/// As the message reads, so that decor's retry WARN says `failed (HTTP 429: …)`.
impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `retry_if` of the pipeline: retry what [`Failure::transient`] says.
pub fn is_transient(f: &Failure) -> bool {
    f.transient
}

/// Sends one chunk of text to be summarized and returns the model's answer.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    model: String,
    max_tokens: u64,
    key: Option<String>,
    /// The longest a request may take, from connecting to the answer's last byte.
    timeout: Duration,
}

impl Client {
    /// `base` is the API's base URL, such as `http://127.0.0.1:8080/v1`; a request that takes
    /// longer than `timeout` fails (transient).
    pub fn new(
        base: &str,
        model: &str,
        key: Option<String>,
        max_tokens: u64,
        timeout: Duration,
    ) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            agent,
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: model.to_owned(),
            max_tokens,
            key,
            timeout,
        }
    }

    fn request_body(&self, text: &str) -> String {
        json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [
                {"role": "system", "content": "Summarize the user's text in one sentence, in its own language."},
                {"role": "user", "content": text},
            ],
        })
        .to_string()
    }

    /// Sends `text` and waits for the answer, blocking the thread.
    pub fn complete(&self, text: &str) -> Result<String, Failure> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.key {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        let mut resp = req
            .send(self.request_body(text))
            .map_err(|e| Failure::on_the_way(format!("request failed: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::on_the_way(format!("reading the answer: {e}")))?;
        answer(status, text)
    }

    /// Sends `text` and awaits the answer: plain HTTP/1.1 on a non-blocking socket, so one
    /// thread keeps many requests in flight; it fails after the client's timeout.
    pub async fn complete_async(&self, text: &str) -> Result<String, Failure> {
        let timed_out = async {
            async_io::Timer::after(self.timeout).await;
            Err(Failure::on_the_way(format!(
                "request failed: timed out after {}",
                decor::fmt::HumanDuration(self.timeout)
            )))
        };
        futures_lite::future::or(self.request_async(text), timed_out).await
    }

    async fn request_async(&self, text: &str) -> Result<String, Failure> {
        let fatal = |message: String| Failure {
            message,
            transient: false,
        };
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| fatal("the async way speaks plain http:// only".into()))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        let body = self.request_body(text);
        let auth = self
            .key
            .as_ref()
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let io = |e: std::io::Error| Failure::on_the_way(format!("request failed: {e}"));
        let mut stream = async_io::Async::<std::net::TcpStream>::connect(
            std::net::ToSocketAddrs::to_socket_addrs(&addr)
                .map_err(io)?
                .next()
                .ok_or_else(|| fatal(format!("request failed: {addr} has no address")))?,
        )
        .await
        .map_err(io)?;
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(io)?;
        let (status, body) = parse_response(&raw).map_err(Failure::on_the_way)?;
        answer(status, body)
    }
}

/// The status and body of a whole HTTP/1.1 response (`Connection: close`), chunked or not.
fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("reading the answer: it ended early".into()),
        Err(e) => return Err(format!("reading the answer: {e}")),
    };
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value).contains("chunked")
    });
    let mut body = &raw[head..];
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let line_end = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("reading the answer: a bad chunk")?;
            let size = std::str::from_utf8(&body[..line_end])
                .ok()
                .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
                .ok_or("reading the answer: a bad chunk size")?;
            body = &body[line_end + 2..];
            if size == 0 {
                break out;
            }
            out.extend_from_slice(
                body.get(..size)
                    .ok_or("reading the answer: a short chunk")?,
            );
            body = body.get(size + 2..).unwrap_or_default();
        }
    } else {
        body.to_vec()
    };
    let text = String::from_utf8(body).map_err(|e| format!("reading the answer: {e}"))?;
    Ok((resp.code.unwrap_or(0), text))
}

/// The model's answer in a response, or why there is none.
fn answer(status: u16, text: String) -> Result<String, Failure> {
    if status != 200 {
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(Failure {
            message: format!("HTTP {status}: {detail}"),
            transient: status == 429 || status >= 500,
        });
    }
    let fatal = |message: String| Failure {
        message,
        transient: false,
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| fatal(format!("the answer is not JSON: {e}")))?;
    v["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| fatal("the answer has no choices[0].message.content".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(plain), Ok((200, "hello".into())));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok((404, "hello".into())));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-").is_err());
    }
}
