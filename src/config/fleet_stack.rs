//! Where the fleet's parts are: the bucket, the queues, the ledger, the
//! ECS service, Slack, and what messages name: names and URLs, checked by
//! `resources` (an empty one is unset: Terraform sets absent ones to "").

use bottlesync_core::Error;
use bottlesync_core::fleet_config::{DEFAULT_ENVIRONMENT, FleetConfig};

use super::resources::{self, set};

/// The fleet's AWS resources and where its messages go.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct FleetStackArgs {
    /// The mirror bucket.
    #[arg(long, env = "BOTTLESYNC_BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix of the mirror inside the bucket.
    #[arg(long, env = "BOTTLESYNC_PREFIX")]
    pub prefix: Option<String>,
    /// The queue the Lambda workers consume.
    #[arg(long = "lambda-queue-url", env = "BOTTLESYNC_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// The queue the ECS workers consume (large runs).
    #[arg(long, env = "BOTTLESYNC_LARGE_QUEUE_URL")]
    pub large_queue_url: Option<String>,
    /// The dead-letter queue of both.
    #[arg(long, env = "BOTTLESYNC_DLQ_URL")]
    pub dlq_url: Option<String>,
    /// The DynamoDB ledger table (partition key `pk`, string).
    #[arg(long, env = "BOTTLESYNC_LEDGER_TABLE")]
    pub ledger_table: Option<String>,
    /// ECS cluster of the large-run workers (the planner wakes the service).
    #[arg(long, env = "BOTTLESYNC_ECS_CLUSTER")]
    pub ecs_cluster: Option<String>,
    /// ECS service of the large-run workers.
    #[arg(long, env = "BOTTLESYNC_ECS_SERVICE")]
    pub ecs_service: Option<String>,
    /// Slack incoming webhook (never logged).
    #[arg(long, env = "BOTTLESYNC_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// Secrets Manager secret holding the webhook URL (plain, or JSON with `webhook_url`).
    #[arg(long, env = "BOTTLESYNC_SLACK_SECRET_ARN")]
    pub slack_secret_arn: Option<String>,
    /// Shown in messages (e.g. prod, staging).
    #[arg(long, env = "BOTTLESYNC_ENVIRONMENT")]
    pub environment: Option<String>,
    /// CloudWatch log group named in failure messages.
    #[arg(long, env = "BOTTLESYNC_LOG_GROUP")]
    pub log_group: Option<String>,
}

impl FleetStackArgs {
    /// `config` with these resources (bucket and table are `config`'s own).
    pub fn apply(self, config: FleetConfig) -> Result<FleetConfig, Error> {
        Ok(FleetConfig {
            prefix: resources::prefix(&self.prefix)?,
            queue_url: resources::queue_url(&self.queue_url, "BOTTLESYNC_QUEUE_URL")?,
            large_queue_url: resources::queue_url(
                &self.large_queue_url,
                "BOTTLESYNC_LARGE_QUEUE_URL",
            )?,
            dlq_url: resources::queue_url(&self.dlq_url, "BOTTLESYNC_DLQ_URL")?,
            slack: resources::slack(&self.slack_webhook_url, &self.slack_secret_arn)?,
            ecs: resources::ecs(&self.ecs_cluster, &self.ecs_service)?,
            environment: set(&self.environment).unwrap_or_else(|| DEFAULT_ENVIRONMENT.into()),
            log_group: set(&self.log_group),
            ..config
        })
    }
}
