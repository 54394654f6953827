//! A client of an OpenAI-compatible chat-completions endpoint, over plain HTTP.

use std::time::Duration;

use serde_json::{Value, json};

/// Sends one chunk of text to be summarized and returns the model's answer.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    model: String,
    max_tokens: u64,
    key: Option<String>,
}

impl Client {
    /// `base` is the API's base URL, such as `http://127.0.0.1:8080/v1`.
    pub fn new(base: &str, model: &str, key: Option<String>, max_tokens: u64) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            agent,
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: model.to_owned(),
            max_tokens,
            key,
        }
    }

    pub fn complete(&self, text: &str) -> Result<String, String> {
        let body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [
                {"role": "system", "content": "Summarize the user's text in one sentence, in its own language."},
                {"role": "user", "content": text},
            ],
        });
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.key {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        let mut resp = req
            .send(body.to_string())
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        if status != 200 {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(format!("HTTP {status}: {detail}"));
        }
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the answer has no choices[0].message.content".to_owned())
    }
}
