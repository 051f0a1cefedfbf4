//! The ECS service of the large-run workers, as `WorkerCapacity`.

use async_trait::async_trait;
use aws_sdk_ecs::error::DisplayErrorContext;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::fleet_config::EcsService;
use bottlesync_core::ports::capacity::WorkerCapacity;

pub struct EcsCapacity {
    client: aws_sdk_ecs::Client,
    service: EcsService,
}

impl EcsCapacity {
    pub fn new(client: aws_sdk_ecs::Client, service: EcsService) -> Self {
        EcsCapacity { client, service }
    }

    fn err(&self, what: &str, e: impl std::error::Error) -> Error {
        Error::capacity(
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
                Error::capacity(&self.service.service, "DescribeServices: no such service")
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
