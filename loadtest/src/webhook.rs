//! A stand-in for a Slack incoming webhook: records every JSON body posted
//! to it, and can be told to fail the next N posts, or every post for a
//! while (a Slack outage: 500, like Slack's own). Any other request is
//! recorded as (method, path, body) and answered 200 (the ECS agent's
//! task-protection endpoint has its own stand-in, which checks the task
//! role: `ecs_agent`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

#[derive(Default)]
struct Received {
    messages: Vec<serde_json::Value>,
    fail_next: u32,
    /// Every post until then is answered 500 (and not recorded).
    fail_until: Option<Instant>,
    /// Posts refused by `fail_next` or `fail_until`.
    refused: u64,
    other: Vec<(String, String, serde_json::Value)>,
}

pub struct WebhookReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(Received::default()));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .fallback(record_other)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookReceiver {
            addr,
            state,
            server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every body received, in order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.state.lock().expect("webhook state").messages.clone()
    }

    /// The first line of each message's `text`.
    pub fn titles(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| {
                m["text"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// The base URL (for stand-ins of other endpoints, e.g. `ECS_AGENT_URI`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests to paths other than `/hook`: (method, path, JSON body or null).
    pub fn other_requests(&self) -> Vec<(String, String, serde_json::Value)> {
        self.state.lock().expect("webhook state").other.clone()
    }

    /// Answer 503 to the next `n` posts (they are not recorded).
    pub fn fail_next(&self, n: u32) {
        self.state.lock().expect("webhook state").fail_next = n;
    }

    /// An outage: answer 500 to every post from now for `duration` (they
    /// are not recorded); a later call moves the end.
    pub fn fail_for(&self, duration: Duration) {
        self.state.lock().expect("webhook state").fail_until = Some(Instant::now() + duration);
    }

    /// Posts refused so far (by `fail_next` or `fail_for`).
    pub fn refused(&self) -> u64 {
        self.state.lock().expect("webhook state").refused
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(state): State<Arc<Mutex<Received>>>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let mut state = state.lock().expect("webhook state");
    if state.fail_next > 0 {
        state.fail_next -= 1;
        state.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if state.fail_until.is_some_and(|until| Instant::now() < until) {
        state.refused += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    state.messages.push(body);
    StatusCode::OK
}

async fn record_other(
    State(state): State<Arc<Mutex<Received>>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> StatusCode {
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    state.lock().expect("webhook state").other.push((
        method.to_string(),
        uri.path().to_string(),
        json,
    ));
    StatusCode::OK
}
