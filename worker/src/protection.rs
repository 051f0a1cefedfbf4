//! ECS task scale-in protection: while a task has bottles in flight, scaling
//! in must not pick it (a stopped download is work thrown away). The ECS
//! agent offers `PUT $ECS_AGENT_URI/task-protection/v1/state` (the task role
//! needs `ecs:UpdateTaskProtection`, see terraform/modules/iam); outside ECS
//! (no `ECS_AGENT_URI`) this does nothing.
//!
//! Protection is asked for with an expiry, so that a task that dies without
//! dropping it holds it no longer than that. While bottles stay in flight a
//! background task renews it well before it expires (a large transfer, or a
//! busy worker taking bottle after bottle, outlasts any expiry), and it is
//! dropped as soon as the worker goes idle.

use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How long protection lasts unless renewed, and how often it is renewed
/// while bottles are in flight. Settable for tests (scaled down, ratios kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectionTiming {
    /// `ExpiresInMinutes` of each request (ECS accepts 1 to 2880).
    pub expires_in_minutes: u32,
    /// Time between renewals while protected: half the expiry, so that a
    /// failed renewal leaves time for retries before protection lapses.
    pub renew_every: Duration,
    /// Time before another attempt after a refused or unanswered request.
    pub retry_after_failure: Duration,
}

impl Default for ProtectionTiming {
    fn default() -> Self {
        ProtectionTiming {
            expires_in_minutes: 60,
            renew_every: Duration::from_secs(30 * 60),
            retry_after_failure: Duration::from_secs(60),
        }
    }
}

/// Why the agent did not grant a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectionError {
    /// No answer (connection refused, timeout).
    Unreachable(String),
    /// The agent answered with an error, e.g. `AccessDeniedException` when
    /// the task role lacks `ecs:UpdateTaskProtection`.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl std::fmt::Display for ProtectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtectionError::Unreachable(e) => write!(f, "ECS agent unreachable: {e}"),
            ProtectionError::Refused {
                status,
                code,
                message,
            } => write!(f, "ECS agent answered {status} {code}: {message}"),
        }
    }
}

impl std::error::Error for ProtectionError {}

pub struct TaskProtection {
    endpoint: Option<String>,
    http: reqwest::Client,
    timing: ProtectionTiming,
    /// Renews the protection while it is on.
    renewer: Mutex<Option<JoinHandle<()>>>,
}

impl TaskProtection {
    pub fn from_env() -> Self {
        Self::new(
            std::env::var("ECS_AGENT_URI")
                .ok()
                .filter(|v| !v.is_empty()),
        )
    }

    pub fn new(agent_uri: Option<String>) -> Self {
        Self::with_timing(agent_uri, ProtectionTiming::default())
    }

    pub fn with_timing(agent_uri: Option<String>, timing: ProtectionTiming) -> Self {
        assert!(
            (1..=2880).contains(&timing.expires_in_minutes),
            "ExpiresInMinutes must be between 1 and 2880, not {}",
            timing.expires_in_minutes
        );
        TaskProtection {
            endpoint: agent_uri
                .map(|uri| format!("{}/task-protection/v1/state", uri.trim_end_matches('/'))),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
            timing,
            renewer: Mutex::new(None),
        }
    }

    /// Turns protection on (renewed in the background until turned off) or
    /// off. Failures are logged with what happens next, never fatal.
    pub async fn set(&self, protected: bool) {
        let Some(endpoint) = &self.endpoint else {
            return;
        };
        // Whatever is asked now, the running renewer's job is over.
        let previous = self.renewer.lock().expect("renewer lock").take();
        if let Some(previous) = previous {
            previous.abort();
            let _ = previous.await;
        }
        let timing = self.timing;
        if !protected {
            match put_state(&self.http, endpoint, false, timing.expires_in_minutes).await {
                Ok(()) => tracing::debug!("task scale-in protection off"),
                Err(e) => tracing::warn!(
                    error = %e,
                    lapses_within_minutes = timing.expires_in_minutes,
                    "could not drop task scale-in protection: not retrying, it lapses by itself; until then scale-in passes over this idle task"
                ),
            }
            return;
        }
        let first_wait = match put_state(&self.http, endpoint, true, timing.expires_in_minutes)
            .await
        {
            Ok(()) => {
                tracing::debug!(
                    expires_in_minutes = timing.expires_in_minutes,
                    "task scale-in protection on"
                );
                timing.renew_every
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    retry_in_s = timing.retry_after_failure.as_secs_f64(),
                    "task scale-in protection refused: scale-in may stop this task mid-bottle; asking again"
                );
                timing.retry_after_failure
            }
        };
        let renewer = tokio::spawn(renew(
            self.http.clone(),
            endpoint.clone(),
            timing,
            first_wait,
        ));
        *self.renewer.lock().expect("renewer lock") = Some(renewer);
    }
}

impl Drop for TaskProtection {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.get_mut().expect("renewer lock").take() {
            renewer.abort();
        }
    }
}

/// Asks for protection again and again (each request resets the expiry),
/// until aborted by `set`.
async fn renew(
    http: reqwest::Client,
    endpoint: String,
    timing: ProtectionTiming,
    mut wait: Duration,
) {
    loop {
        tokio::time::sleep(wait).await;
        wait = match put_state(&http, &endpoint, true, timing.expires_in_minutes).await {
            Ok(()) => {
                tracing::debug!(
                    expires_in_minutes = timing.expires_in_minutes,
                    "task scale-in protection renewed"
                );
                timing.renew_every
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    retry_in_s = timing.retry_after_failure.as_secs_f64(),
                    "could not renew task scale-in protection: it lapses at its expiry unless a retry succeeds; retrying"
                );
                timing.retry_after_failure
            }
        };
    }
}

/// One `PUT .../task-protection/v1/state`. The agent answers
/// `{"protection": {...}}` when ECS granted it, `{"error": {Code, Message}}`
/// or `{"failure": {Reason, ...}}` when not.
async fn put_state(
    http: &reqwest::Client,
    endpoint: &str,
    enabled: bool,
    expires_in_minutes: u32,
) -> Result<(), ProtectionError> {
    let body = if enabled {
        serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": expires_in_minutes})
    } else {
        serde_json::json!({"ProtectionEnabled": false})
    };
    let response = http
        .put(endpoint)
        .json(&body)
        .send()
        .await
        .map_err(|e| ProtectionError::Unreachable(e.to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| ProtectionError::Unreachable(e.to_string()))?;
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let refused = |code: &str, message: &str| ProtectionError::Refused {
        status: status.as_u16(),
        code: code.to_string(),
        message: message.to_string(),
    };
    if let Some(error) = answer.get("error") {
        return Err(refused(
            error["Code"].as_str().unwrap_or("unknown"),
            error["Message"].as_str().unwrap_or_default(),
        ));
    }
    if let Some(failure) = answer.get("failure") {
        return Err(refused(
            failure["Reason"].as_str().unwrap_or("unknown"),
            failure["Detail"].as_str().unwrap_or_default(),
        ));
    }
    if !status.is_success() {
        return Err(refused(
            "HTTP",
            text.chars().take(200).collect::<String>().as_str(),
        ));
    }
    Ok(())
}
