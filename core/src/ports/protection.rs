//! ECS task scale-in protection, the port: the ECS agent's
//! `PUT $ECS_AGENT_URI/task-protection/v1/state` (the HTTP client is in
//! `bottlesync-adapters`; the worker's `TaskProtection` renews through it).

use async_trait::async_trait;

#[async_trait]
pub trait ProtectionAgent: Send + Sync + std::fmt::Debug {
    /// Asks for protection (`enabled`, lapsing after `expires_in_minutes`
    /// unless asked again) or drops it.
    async fn put_state(
        &self,
        enabled: bool,
        expires_in_minutes: u32,
    ) -> Result<(), ProtectionError>;
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
