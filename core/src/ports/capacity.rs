//! Waking the large-run workers. Target tracking cannot scale an ECS service
//! up from zero tasks (there is no metric at zero), so a planner that routes
//! a run to ECS raises the service's desired count itself; queue-depth
//! scaling does the rest (Terraform).

use async_trait::async_trait;

use crate::error::Result;

#[async_trait]
pub trait WorkerCapacity: Send + Sync {
    /// Makes sure at least `tasks` workers are wanted. Returns the desired
    /// count before and after.
    async fn ensure_at_least(&self, tasks: i32) -> Result<(i32, i32)>;
}
