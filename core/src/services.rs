//! The outside systems the fleet talks to, built once from `FleetConfig`:
//! the mirror store, the ledger, the queues, the registry and the notifier.
//! Lambda handlers, the ECS loop and the CLI all start from this.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fleet_config::{FleetConfig, SlackSource};
use crate::fleet_ledger::FleetLedger;
use crate::notifier::{LogNotifier, MessageContext, Notifier, SlackWebhook};
use crate::queue::Queue;
use crate::registry::{HttpSettings, RegistryClient};
use crate::retry::RetryPolicy;
use crate::store::BlobStore;

#[derive(Clone)]
pub struct FleetServices {
    pub config: FleetConfig,
    pub store: Arc<dyn BlobStore>,
    pub ledger: Arc<dyn FleetLedger>,
    pub registry: Arc<RegistryClient>,
    pub notifier: Arc<dyn Notifier>,
    pub retry: RetryPolicy,
    /// The Lambda queue, when configured.
    pub queue: Option<Arc<dyn Queue>>,
    pub large_queue: Option<Arc<dyn Queue>>,
    pub dlq: Option<Arc<dyn Queue>>,
    /// The ECS workers, when `BOTTLESYNC_ECS_CLUSTER`/`_SERVICE` are set.
    pub capacity: Option<Arc<dyn crate::capacity::WorkerCapacity>>,
}

impl FleetServices {
    /// The AWS implementations, with clients from the default chain
    /// (`AWS_ENDPOINT_URL` is honoured, for moto).
    pub async fn aws(config: FleetConfig) -> Result<Self> {
        let sdk = crate::aws::sdk_config().await?;
        let s3 = crate::aws::s3_client(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue = |url: &Option<String>| -> Option<Arc<dyn Queue>> {
            url.as_ref().map(|u| {
                Arc::new(crate::sqs_queue::SqsQueue::new(sqs.clone(), u)) as Arc<dyn Queue>
            })
        };
        let notifier: Arc<dyn Notifier> = match &config.slack {
            SlackSource::None => Arc::new(LogNotifier),
            SlackSource::Url(url) => {
                Arc::new(SlackWebhook::new(url, RetryPolicy::notifications())?)
            }
            SlackSource::SecretArn(arn) => {
                let url =
                    slack_url_from_secret(&aws_sdk_secretsmanager::Client::new(&sdk), arn).await?;
                Arc::new(SlackWebhook::new(&url, RetryPolicy::notifications())?)
            }
        };
        Ok(FleetServices {
            store: Arc::new(crate::s3_store::S3Store::new(
                s3,
                &config.bucket,
                &config.prefix,
            )),
            ledger: Arc::new(crate::dynamo_ledger::DynamoLedger::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &config.ledger_table,
            )),
            registry: Arc::new(RegistryClient::new(&HttpSettings::default())?),
            notifier,
            retry: RetryPolicy::default(),
            queue: queue(&config.queue_url),
            large_queue: queue(&config.large_queue_url),
            dlq: queue(&config.dlq_url),
            capacity: config.ecs.clone().map(|service| {
                Arc::new(crate::capacity::EcsCapacity::new(
                    aws_sdk_ecs::Client::new(&sdk),
                    service,
                )) as Arc<dyn crate::capacity::WorkerCapacity>
            }),
            config,
        })
    }

    /// The in-process implementations: the mirror in a local directory, an
    /// in-memory ledger, and in-memory Lambda and ECS queues that dead-letter
    /// into an in-memory DLQ after `max_receive_count` receives. The fleet
    /// code runs on them unchanged, at rates moto cannot serve (load tests)
    /// and without any AWS endpoint (tests of the consumer's logic).
    pub fn in_process(
        config: FleetConfig,
        mirror_root: &std::path::Path,
        visibility_timeout: std::time::Duration,
        max_receive_count: u32,
    ) -> Result<Self> {
        use crate::memory_queue::MemoryQueue;
        let notifier: Arc<dyn Notifier> = match &config.slack {
            SlackSource::None => Arc::new(LogNotifier),
            SlackSource::Url(url) => {
                Arc::new(SlackWebhook::new(url, RetryPolicy::notifications())?)
            }
            SlackSource::SecretArn(_) => {
                return Err(Error::config(
                    "BOTTLESYNC_SLACK_SECRET_ARN",
                    "an in-process fleet has no Secrets Manager: give BOTTLESYNC_SLACK_WEBHOOK_URL",
                ));
            }
        };
        let dlq = Arc::new(MemoryQueue::new("dlq", visibility_timeout));
        let queue = |name: &str| -> Arc<dyn Queue> {
            Arc::new(
                MemoryQueue::new(name, visibility_timeout)
                    .with_dead_letter(dlq.clone(), max_receive_count),
            )
        };
        Ok(FleetServices {
            store: Arc::new(crate::local_store::LocalStore::open(mirror_root)?),
            ledger: Arc::new(crate::memory_ledger::MemoryLedger::new()),
            registry: Arc::new(RegistryClient::new(&HttpSettings::default())?),
            notifier,
            retry: RetryPolicy::default(),
            queue: Some(queue("work")),
            large_queue: Some(queue("work-large")),
            dlq: Some(dlq.clone()),
            capacity: None,
            config,
        })
    }

    pub fn message_context(&self) -> MessageContext {
        MessageContext {
            environment: self.config.environment.clone(),
            mirror: self.config.mirror_location(),
            log_group: self.config.log_group.clone(),
            dlq: self.config.dlq_url.clone(),
        }
    }
}

/// The webhook URL in a Secrets Manager secret: the plain string, or JSON
/// with `webhook_url` (or `url`). Errors never include the secret.
async fn slack_url_from_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String> {
    let secret = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            Error::config(
                "BOTTLESYNC_SLACK_SECRET_ARN",
                format!(
                    "cannot read {arn}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ),
            )
        })?;
    let text = secret
        .secret_string()
        .ok_or_else(|| {
            Error::config(
                "BOTTLESYNC_SLACK_SECRET_ARN",
                format!("{arn} has no string value"),
            )
        })?
        .trim()
        .to_string();
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            Error::config(
                "BOTTLESYNC_SLACK_SECRET_ARN",
                format!("{arn} is JSON but not an object"),
            )
        })?;
        return ["webhook_url", "url", "slack_webhook_url"]
            .iter()
            .find_map(|k| value.get(k).and_then(|v| v.as_str()).map(String::from))
            .ok_or_else(|| {
                Error::config(
                    "BOTTLESYNC_SLACK_SECRET_ARN",
                    format!("{arn} has no webhook_url field"),
                )
            });
    }
    Ok(text)
}
