//! ECS task scale-in protection: while a task has bottles in flight, scaling
//! in must not pick it (a stopped download is work thrown away). The ECS
//! agent offers `PUT $ECS_AGENT_URI/task-protection/v1/state`; outside ECS
//! (no `ECS_AGENT_URI`) this does nothing.

use std::time::Duration;

/// Protection lasts this long unless renewed; a task that dies keeps it no longer.
const EXPIRES_IN_MINUTES: u32 = 60;

pub struct TaskProtection {
    endpoint: Option<String>,
    http: reqwest::Client,
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
        TaskProtection {
            endpoint: agent_uri
                .map(|uri| format!("{}/task-protection/v1/state", uri.trim_end_matches('/'))),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
        }
    }

    /// Turns protection on or off; failures are logged, never fatal.
    pub async fn set(&self, protected: bool) {
        let Some(endpoint) = &self.endpoint else {
            return;
        };
        let body = if protected {
            serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": EXPIRES_IN_MINUTES})
        } else {
            serde_json::json!({"ProtectionEnabled": false})
        };
        match self.http.put(endpoint).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(protected, "task scale-in protection set")
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), protected, "ECS agent refused task protection")
            }
            Err(e) => {
                tracing::warn!(error = %e, protected, "could not reach the ECS agent for task protection")
            }
        }
    }
}
