//! A stand-in for a Slack incoming webhook: records every JSON body posted
//! to it, and can be told to fail the next N posts (503, 500, or 429 with
//! `Retry-After`), or every post for a while (a Slack outage: 500, like
//! Slack's own), and to answer slowly. Like Slack, it refuses a message
//! that breaks Block Kit's limits with `400 invalid_blocks`, and a revoked
//! webhook answers `404 no_service` to every post. Every post is logged
//! with its time and answer. Any other request is recorded as (method, path, body) and
//! answered 200 (the ECS agent's task-protection endpoint has its own
//! stand-in, which checks the task role: `ecs_agent`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Default)]
struct Received {
    messages: Vec<serde_json::Value>,
    fail_next: u32,
    /// Every post until then is answered 500 (and not recorded).
    fail_until: Option<Instant>,
    /// Posts refused by `fail_next` or `fail_until`.
    refused: u64,
    fail_status: Option<StatusCode>,
    fail_retry_after: Option<u64>,
    /// How long each post waits before it is answered.
    delay: Duration,
    /// The webhook was removed (or its app uninstalled): `404 no_service`.
    revoked: bool,
    attempts: Vec<Attempt>,
    other: Vec<(String, String, serde_json::Value)>,
}

/// One post to the hook: when it arrived and the status it got.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub at: Instant,
    pub status: u16,
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
        self.fail_next_with(n, 503, None);
    }

    /// Answer `status` to the next `n` posts (not recorded as messages),
    /// with `Retry-After: <seconds>` when given.
    pub fn fail_next_with(&self, n: u32, status: u16, retry_after_secs: Option<u64>) {
        let mut state = self.state.lock().expect("webhook state");
        state.fail_next = n;
        state.fail_status = Some(StatusCode::from_u16(status).expect("a valid status"));
        state.fail_retry_after = retry_after_secs;
    }

    /// Posts that are still going to be failed.
    pub fn failures_left(&self) -> u32 {
        self.state.lock().expect("webhook state").fail_next
    }

    /// Wait `delay` before answering each post (a slow Slack).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().expect("webhook state").delay = delay;
    }

    /// Every post to the hook, in order of arrival, with its answer.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.lock().expect("webhook state").attempts.clone()
    }

    /// An outage: answer 500 to every post from now for `duration` (they
    /// are not recorded); a later call moves the end.
    pub fn fail_for(&self, duration: Duration) {
        self.state.lock().expect("webhook state").fail_until = Some(Instant::now() + duration);
    }

    /// The webhook is removed from now on: every post is answered
    /// `404 no_service`, as Slack answers for a revoked webhook.
    pub fn revoke(&self) {
        self.state.lock().expect("webhook state").revoked = true;
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
) -> Response {
    let at = Instant::now();
    let delay = state.lock().expect("webhook state").delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut state = state.lock().expect("webhook state");
    if state.fail_next > 0 {
        state.fail_next -= 1;
        state.refused += 1;
        let status = state.fail_status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        state.attempts.push(Attempt {
            at,
            status: status.as_u16(),
        });
        return match state.fail_retry_after {
            Some(seconds) => (status, [("retry-after", seconds.to_string())]).into_response(),
            None => status.into_response(),
        };
    }
    if state.fail_until.is_some_and(|until| Instant::now() < until) {
        state.refused += 1;
        state.attempts.push(Attempt { at, status: 500 });
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if state.revoked {
        state.attempts.push(Attempt { at, status: 404 });
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    if let Err(problem) = check_block_kit(&body) {
        tracing::warn!(%problem, "webhook stand-in: invalid_blocks");
        state.attempts.push(Attempt { at, status: 400 });
        return (StatusCode::BAD_REQUEST, "invalid_blocks").into_response();
    }
    state.attempts.push(Attempt { at, status: 200 });
    state.messages.push(body);
    StatusCode::OK.into_response()
}

/// Block Kit's limits, which Slack enforces by refusing the whole message
/// (<https://api.slack.com/reference/block-kit/blocks>): at most 50 blocks;
/// a header's text at most 150 characters; a section's text at most 3,000,
/// its fields at most 10, each at most 2,000.
pub fn check_block_kit(body: &serde_json::Value) -> Result<(), String> {
    let Some(blocks) = body.get("blocks") else {
        return Ok(());
    };
    let blocks = blocks.as_array().ok_or("blocks is not a list")?;
    if blocks.len() > 50 {
        return Err(format!("{} blocks, more than 50", blocks.len()));
    }
    let chars = |v: &serde_json::Value| v["text"].as_str().map_or(0, |t| t.chars().count());
    for (i, block) in blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("header") if chars(&block["text"]) > 150 => {
                return Err(format!("block {i}: header text over 150 characters"));
            }
            Some("section") => {
                if chars(&block["text"]) > 3000 {
                    return Err(format!(
                        "block {i}: section text of {} characters, over 3000",
                        chars(&block["text"])
                    ));
                }
                let fields = block["fields"].as_array().map_or(&[][..], Vec::as_slice);
                if fields.len() > 10 {
                    return Err(format!("block {i}: {} fields, over 10", fields.len()));
                }
                if let Some(field) = fields.iter().find(|f| chars(f) > 2000) {
                    return Err(format!(
                        "block {i}: a field of {} characters, over 2000",
                        chars(field)
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
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
