//! Waking the large-run workers. Target tracking cannot scale an ECS service
//! up from zero tasks (there is no metric at zero), so a planner that routes
//! a run to ECS raises the service's desired count itself; queue-depth
//! scaling does the rest (Terraform).

use async_trait::async_trait;
use aws_sdk_ecs::error::DisplayErrorContext;

use crate::error::{Error, Result};
use crate::fleet_config::EcsService;

#[async_trait]
pub trait WorkerCapacity: Send + Sync {
    /// Makes sure at least `tasks` workers are wanted. Returns the desired
    /// count before and after.
    async fn ensure_at_least(&self, tasks: i32) -> Result<(i32, i32)>;
}

pub struct EcsCapacity {
    client: aws_sdk_ecs::Client,
    service: EcsService,
}

impl EcsCapacity {
    pub fn new(client: aws_sdk_ecs::Client, service: EcsService) -> Self {
        EcsCapacity { client, service }
    }

    fn err(&self, what: &str, e: impl std::error::Error) -> Error {
        Error::store(
            format!(
                "ecs service {}/{}",
                self.service.cluster, self.service.service
            ),
            format!("{what}: {}", DisplayErrorContext(e)),
        )
    }
}

#[async_trait]
impl WorkerCapacity for EcsCapacity {
    async fn ensure_at_least(&self, tasks: i32) -> Result<(i32, i32)> {
        let described = self
            .client
            .describe_services()
            .cluster(&self.service.cluster)
            .services(&self.service.service)
            .send()
            .await
            .map_err(|e| self.err("DescribeServices", e))?;
        let current = described
            .services()
            .first()
            .map(|s| s.desired_count())
            .ok_or_else(|| {
                Error::store(&self.service.service, "DescribeServices: no such service")
            })?;
        if current >= tasks {
            return Ok((current, current));
        }
        self.client
            .update_service()
            .cluster(&self.service.cluster)
            .service(&self.service.service)
            .desired_count(tasks)
            .send()
            .await
            .map_err(|e| self.err("UpdateService", e))?;
        Ok((current, tasks))
    }
}
