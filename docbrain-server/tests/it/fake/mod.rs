//! A loopback server that speaks OpenAI's `/v1/embeddings` and Ollama's `/api/embed` with
//! their real request, answer and error shapes, plus injectable failures and a restart.

#![allow(clippy::disallowed_methods)] // collects request bodies the test itself sent

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What the fake serves.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) api_key: Option<String>,
    pub(crate) models: Vec<String>,
    pub(crate) dimension: usize,
    /// OpenAI: inputs longer than this are refused with a context-length 400.
    pub(crate) max_input_chars: Option<usize>,
    /// Latency added to every embedding answer.
    pub(crate) delay: std::time::Duration,
}

impl Settings {
    pub(crate) fn openai(key: &str) -> Self {
        Self {
            api_key: Some(key.into()),
            models: vec!["text-embedding-3-small".into()],
            dimension: 64,
            max_input_chars: None,
            delay: std::time::Duration::ZERO,
        }
    }

    pub(crate) fn ollama() -> Self {
        Self {
            api_key: None,
            models: vec!["nomic-embed-text".into(), "nomic-embed-text:latest".into()],
            dimension: 48,
            max_input_chars: None,
            delay: std::time::Duration::ZERO,
        }
    }
}

/// Counters and injected failures.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) settings: Mutex<Option<Settings>>,
    failures: Mutex<VecDeque<(u16, Option<String>)>>,
    pub(crate) requests: AtomicUsize,
    pub(crate) served: AtomicUsize,
    pub(crate) failed: AtomicUsize,
    pub(crate) rejected_too_long: AtomicUsize,
    pub(crate) saw_truncate: AtomicBool,
}

impl State {
    /// Makes the next `n` embedding requests fail with `status` (and `Retry-After`).
    pub(crate) fn fail_next(&self, status: u16, retry_after: Option<&str>, n: usize) {
        let mut f = self.failures.lock().unwrap();
        for _ in 0..n {
            f.push_back((status, retry_after.map(str::to_string)));
        }
    }
}

pub(crate) struct Fake {
    addr: SocketAddr,
    pub(crate) state: Arc<State>,
    tasks: Option<JoinSet<()>>,
}

impl Fake {
    pub(crate) async fn start(settings: Settings) -> Self {
        let state = Arc::new(State {
            settings: Mutex::new(Some(settings)),
            ..State::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fake = Self {
            addr,
            state,
            tasks: None,
        };
        fake.serve(listener);
        fake
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let state = self.state.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Stops listening and drops every open connection.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    /// Listens again on the same address.
    pub(crate) async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

fn embed(text: &str, dimension: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dimension];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        v[(h % dimension as u64) as usize] += 1.0;
    }
    v // deliberately not normalised: the client must normalise
}

fn reply(status: u16, body: &Value, retry_after: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(ra) = retry_after {
        r = r.header("retry-after", ra);
    }
    r.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

fn openai_error(
    status: u16,
    message: &str,
    kind: &str,
    code: Option<&str>,
) -> Response<Full<Bytes>> {
    reply(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        None,
    )
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let settings = state.settings.lock().unwrap().clone().unwrap();
    let openai = match path.as_str() {
        "/v1/embeddings" => true,
        "/api/embed" => false,
        _ => {
            return Ok(Response::builder()
                .status(404)
                .body(Full::new(Bytes::from_static(b"404 page not found")))
                .unwrap())
        }
    };
    if openai {
        if let Some(key) = &settings.api_key {
            if auth.as_deref() != Some(&format!("Bearer {key}")) {
                let shown = auth
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .unwrap_or("");
                let masked = format!(
                    "{}***{}",
                    &shown[..shown.len().min(6)],
                    &shown[shown.len().saturating_sub(3)..]
                );
                return Ok(openai_error(
                    401,
                    &format!("Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."),
                    "invalid_request_error",
                    Some("invalid_api_key"),
                ));
            }
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return Ok(if openai {
            openai_error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
                None,
            )
        } else {
            reply(
                400,
                &json!({"error": "invalid character 'x' looking for beginning of value"}),
                None,
            )
        });
    };
    let model = request["model"].as_str().unwrap_or_default().to_string();
    if !settings.models.contains(&model) {
        return Ok(if openai {
            openai_error(
                404,
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                Some("model_not_found"),
            )
        } else {
            reply(
                404,
                &json!({"error": format!("model \"{model}\" not found, try pulling it first")}),
                None,
            )
        });
    }
    if let Some((status, retry_after)) = state.failures.lock().unwrap().pop_front() {
        state.failed.fetch_add(1, Ordering::SeqCst);
        let body = if openai {
            json!({"error": {"message": format!("Rate limit reached for {model} in organization org-test on requests per min (RPM): Limit 3000, Used 3000, Requested 1. Please try again in 20ms."), "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        } else {
            json!({"error": "server busy, please try again.  maximum pending requests exceeded"})
        };
        return Ok(reply(status, &body, retry_after.as_deref()));
    }
    tokio::time::sleep(settings.delay).await;
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if openai {
        if let Some(max) = settings.max_input_chars {
            if let Some(long) = inputs.iter().find(|i| i.chars().count() > max) {
                state.rejected_too_long.fetch_add(1, Ordering::SeqCst);
                let tokens = long.len() / 4;
                return Ok(openai_error(
                    400,
                    &format!("This model's maximum context length is {} tokens, however you requested {tokens} tokens ({tokens} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.", max / 4),
                    "invalid_request_error",
                    None,
                ));
            }
        }
        let dimension = request["dimensions"]
            .as_u64()
            .map_or(settings.dimension, |d| d as usize);
        // Answer in reverse order: clients must sort by `index`.
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t, dimension)}))
            .collect();
        let tokens: usize = inputs.iter().map(|i| i.split_whitespace().count()).sum();
        state.served.fetch_add(1, Ordering::SeqCst);
        return Ok(reply(
            200,
            &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
            None,
        ));
    }
    if request["truncate"] == json!(true) {
        state.saw_truncate.store(true, Ordering::SeqCst);
    }
    let embeddings: Vec<Vec<f32>> = inputs
        .iter()
        .map(|t| embed(t, settings.dimension))
        .collect();
    state.served.fetch_add(1, Ordering::SeqCst);
    Ok(reply(
        200,
        &json!({"model": model, "embeddings": embeddings, "total_duration": 14_143_917, "load_duration": 1_019_500, "prompt_eval_count": inputs.len() * 8}),
        None,
    ))
}
