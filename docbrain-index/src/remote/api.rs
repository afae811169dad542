//! The two wire formats: request bodies, answers and error bodies.

use serde_json::{json, Value};

/// Which embeddings API a service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteApi {
    /// `POST {base}/embeddings` with `{"model", "input": [...]}` (OpenAI and compatibles).
    OpenAi,
    /// `POST {base}/api/embed` with `{"model", "input": [...], "truncate": true}` (Ollama).
    Ollama,
}

impl RemoteApi {
    /// Returns the provider name used in model ids and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Ollama => "ollama",
        }
    }

    pub(crate) fn url_setting(self) -> &'static str {
        match self {
            Self::OpenAi => "OPENAI_BASE_URL",
            Self::Ollama => "OLLAMA_BASE_URL",
        }
    }

    pub(crate) fn key_setting(self) -> &'static str {
        match self {
            Self::OpenAi => "OPENAI_API_KEY",
            Self::Ollama => "OLLAMA_BASE_URL (a proxy in front of Ollama refused the request)",
        }
    }

    /// Returns the endpoint under `base`. OpenAI-style bases usually end in `/v1`; one that does
    /// not gets it added.
    pub(crate) fn endpoint(self, base: &str) -> Option<String> {
        let base = base.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return None;
        }
        Some(match self {
            Self::OpenAi if base.ends_with("/v1") => format!("{base}/embeddings"),
            Self::OpenAi => format!("{base}/v1/embeddings"),
            Self::Ollama => format!("{base}/api/embed"),
        })
    }

    pub(crate) fn request(self, model: &str, inputs: &[&str], dimensions: Option<usize>) -> Value {
        match self {
            Self::OpenAi => {
                let mut body =
                    json!({ "model": model, "input": inputs, "encoding_format": "float" });
                if let Some(d) = dimensions {
                    body["dimensions"] = json!(d);
                }
                body
            }
            Self::Ollama => json!({ "model": model, "input": inputs, "truncate": true }),
        }
    }

    /// Returns the vectors of an answer, in input order.
    pub(crate) fn parse(self, answer: &Value) -> Result<Vec<Vec<f32>>, String> {
        let vector = |v: &Value| -> Result<Vec<f32>, String> {
            v.as_array()
                .ok_or("an embedding is not an array")?
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map(|f| f as f32)
                        .ok_or_else(|| "a vector holds a non-number".to_string())
                })
                .collect()
        };
        match self {
            Self::OpenAi => {
                let data = answer["data"].as_array().ok_or("no `data` array")?;
                let mut indexed = data
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let index = item["index"].as_u64().map_or(i, |n| n as usize);
                        Ok((index, vector(&item["embedding"])?))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                indexed.sort_by_key(|(i, _)| *i);
                Ok(indexed.into_iter().map(|(_, v)| v).collect())
            }
            Self::Ollama => answer["embeddings"]
                .as_array()
                .ok_or("no `embeddings` array")?
                .iter()
                .map(vector)
                .collect(),
        }
    }

    /// Returns the service's own error message from an error body (JSON or not).
    pub(crate) fn error_message(self, body: &str) -> String {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let message = parsed.as_ref().and_then(|v| match &v["error"] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_string),
            _ => v["message"].as_str().map(str::to_string),
        });
        message.unwrap_or_else(|| {
            let s = super::http::snippet(body);
            if s.is_empty() {
                "(empty body)".into()
            } else {
                s
            }
        })
    }

    /// Returns whether a 400 answer says an input was longer than the model accepts.
    pub(crate) fn is_too_long(self, body: &str) -> bool {
        let message = self.error_message(body).to_lowercase();
        message.contains("maximum context length")
            || message.contains("too long")
            || message.contains("context length")
            || message.contains("exceeds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_bodies() {
        assert_eq!(
            RemoteApi::OpenAi
                .endpoint("https://api.openai.com/v1/")
                .unwrap(),
            "https://api.openai.com/v1/embeddings"
        );
        assert_eq!(
            RemoteApi::OpenAi.endpoint("http://vllm:8000").unwrap(),
            "http://vllm:8000/v1/embeddings"
        );
        assert_eq!(
            RemoteApi::Ollama
                .endpoint("http://localhost:11434")
                .unwrap(),
            "http://localhost:11434/api/embed"
        );
        assert!(RemoteApi::Ollama.endpoint("localhost:11434").is_none());
        let body = RemoteApi::OpenAi.request("m", &["a"], Some(256));
        assert_eq!(
            body,
            json!({"model": "m", "input": ["a"], "encoding_format": "float", "dimensions": 256})
        );
        assert_eq!(
            RemoteApi::Ollama.request("m", &["a"], None)["truncate"],
            json!(true)
        );
    }

    #[test]
    fn parses_answers_in_input_order() {
        let answer = json!({"object": "list", "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}
        ], "model": "m", "usage": {"prompt_tokens": 2, "total_tokens": 2}});
        assert_eq!(
            RemoteApi::OpenAi.parse(&answer).unwrap(),
            vec![vec![1.0, 0.0], vec![0.0, 1.0]]
        );
        let answer = json!({"model": "m", "embeddings": [[0.5, 0.5]], "total_duration": 1});
        assert_eq!(
            RemoteApi::Ollama.parse(&answer).unwrap(),
            vec![vec![0.5, 0.5]]
        );
        assert!(RemoteApi::Ollama.parse(&json!({"error": "x"})).is_err());
    }

    #[test]
    fn reads_error_messages_of_both_shapes_and_html() {
        let openai = r#"{"error": {"message": "Incorrect API key provided: sk-abc***xyz.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}"#;
        assert_eq!(
            RemoteApi::OpenAi.error_message(openai),
            "Incorrect API key provided: sk-abc***xyz."
        );
        let ollama = r#"{"error":"model \"nomic-embed-text\" not found, try pulling it first"}"#;
        assert!(RemoteApi::Ollama
            .error_message(ollama)
            .starts_with("model \"nomic-embed-text\" not found"));
        assert_eq!(
            RemoteApi::Ollama.error_message("<html><body>Bad Gateway</body></html>"),
            "<html><body>Bad Gateway</body></html>"
        );
        let long = r#"{"error": {"message": "This model's maximum context length is 8192 tokens, however you requested 9000 tokens.", "type": "invalid_request_error"}}"#;
        assert!(RemoteApi::OpenAi.is_too_long(long));
        assert!(!RemoteApi::OpenAi.is_too_long(openai));
    }
}
