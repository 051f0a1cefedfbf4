//! The ECS agent's task-protection endpoint over HTTP: the real
//! `ProtectionAgent` (the task role needs `ecs:UpdateTaskProtection`, see
//! terraform/modules/iam).

use std::time::Duration;

use async_trait::async_trait;
use bottlesync_core::ports::protection::{ProtectionAgent, ProtectionError};

#[derive(Debug)]
pub struct EcsAgent {
    endpoint: String,
    http: reqwest::Client,
}

impl EcsAgent {
    /// The agent at `$ECS_AGENT_URI`, or none outside ECS.
    pub fn from_env() -> Option<Self> {
        std::env::var("ECS_AGENT_URI")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|uri| Self::new(&uri))
    }

    pub fn new(agent_uri: &str) -> Self {
        EcsAgent {
            endpoint: format!(
                "{}/task-protection/v1/state",
                agent_uri.trim_end_matches('/')
            ),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
        }
    }
}

/// One `PUT .../task-protection/v1/state`. The agent answers
/// `{"protection": {...}}` when ECS granted it, `{"error": {Code, Message}}`
/// or `{"failure": {Reason, ...}}` when not.
#[async_trait]
impl ProtectionAgent for EcsAgent {
    async fn put_state(
        &self,
        enabled: bool,
        expires_in_minutes: u32,
    ) -> Result<(), ProtectionError> {
        let body = if enabled {
            serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": expires_in_minutes})
        } else {
            serde_json::json!({"ProtectionEnabled": false})
        };
        let response = self
            .http
            .put(&self.endpoint)
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
}
