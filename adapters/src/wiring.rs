//! Building the ports from settings: the fleet's adapters on AWS or in
//! process, and from them each use case with exactly the ports it touches
//! (`Finisher`, `Reconciler`, `FleetPlanner`, `Replayer`, `WorkerPorts`);
//! a mirror store from a `--dest`; an external hash file from wherever it
//! lives. The shells (`src/`) call these; nothing else builds an adapter.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::fleet_config::{FleetConfig, SlackSource};
use bottlesync_core::model::key::ObjectKey;
use bottlesync_core::model::location::Location;
use bottlesync_core::ports::capacity::WorkerCapacity;
use bottlesync_core::ports::documents::Documents;
use bottlesync_core::ports::fleet_ledger::FleetLedger;
use bottlesync_core::ports::notifier::{LogNotifier, Notifier};
use bottlesync_core::ports::queue::Queue;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::{BlobStore, DocumentStore};
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::run::dispatch::WorkQueues;
use bottlesync_core::run::finish::Finisher;
use bottlesync_core::run::reconcile::Reconciler;
use bottlesync_planner::fleet::FleetPlanner;
use bottlesync_planner::replay::Replayer;
use bottlesync_worker::consumer::WorkerPorts;

use crate::aws::dynamo_ledger::DynamoLedger;
use crate::aws::ecs_capacity::EcsCapacity;
use crate::aws::s3_store::S3Store;
use crate::aws::sqs_queue::SqsQueue;
use crate::http::registry::{HttpSettings, RegistryClient};
use crate::http::slack::SlackWebhook;
use crate::local::local_store::LocalStore;
use crate::local::memory_ledger::MemoryLedger;
use crate::local::memory_queue::MemoryQueue;

/// The fleet's adapters, built once per process from its settings. Only
/// the composition root holds them all: each use case is handed the ports
/// it touches by the methods below. Tests swap a field (a faulty queue, a
/// Slack stand-in) before building the use case under test.
#[derive(Clone)]
pub struct FleetAdapters {
    pub config: FleetConfig,
    pub store: Arc<dyn BlobStore>,
    pub ledger: Arc<dyn FleetLedger>,
    pub registry: Arc<dyn Registry>,
    /// External hash files, wherever they are.
    pub documents: Arc<dyn Documents>,
    pub notifier: Arc<dyn Notifier>,
    pub retry: RetryPolicy,
    /// The Lambda and ECS work queues, each when configured.
    pub queues: WorkQueues,
    pub dlq: Option<Arc<dyn Queue>>,
    /// The ECS workers, when `BOTTLESYNC_ECS_CLUSTER`/`_SERVICE` are set.
    pub capacity: Option<Arc<dyn WorkerCapacity>>,
}

impl FleetAdapters {
    /// Finishing a drained run: compaction, publication, the summary.
    pub fn finisher(&self) -> Finisher {
        Finisher {
            ledger: self.ledger.clone(),
            store: self.store.clone(),
            notifier: self.notifier.clone(),
            dlq: self.dlq.clone(),
            context: self.config.message_context(),
            metrics: self.config.metrics(),
        }
    }

    /// Resuming, settling and finishing runs (the reconcile, `status`).
    pub fn reconciler(&self) -> Reconciler {
        Reconciler {
            finisher: self.finisher(),
            queues: self.queues.clone(),
            hosts: self.config.hosts.clone(),
            planning_lease: self.config.planning_lease,
            run_stall: self.config.run_stall,
        }
    }

    /// Planning a run (`bottlesync plan`, the planner Lambda).
    pub fn planner(&self) -> FleetPlanner {
        FleetPlanner {
            reconciler: self.reconciler(),
            registry: self.registry.clone(),
            documents: self.documents.clone(),
            retry: self.retry.clone(),
            capacity: self.capacity.clone(),
            config: self.config.clone(),
        }
    }

    /// `bottlesync dlq replay`.
    pub fn replayer(&self) -> Replayer {
        Replayer {
            reconciler: self.reconciler(),
            lambda_max_bottle_bytes: self.config.lambda_max_bottle_bytes,
        }
    }

    /// A worker's consumer (the worker Lambda, `bottlesync work`).
    pub fn worker(&self) -> WorkerPorts {
        WorkerPorts {
            finisher: self.finisher(),
            registry: self.registry.clone(),
            retry: self.retry.clone(),
            large_queue: self.queues.ecs.clone(),
            hosts: self.config.hosts.clone(),
            segments: self.config.segments,
            progress_interval: self.config.progress_interval,
        }
    }
}

/// The AWS implementations, with clients from the default chain
/// (`AWS_ENDPOINT_URL` is honoured, for moto).
pub async fn aws_adapters(config: FleetConfig) -> Result<FleetAdapters> {
    let sdk = crate::aws::sdk_config().await?;
    let registry: Arc<dyn Registry> = Arc::new(RegistryClient::new(&HttpSettings::default())?);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = |url: &Option<String>| -> Option<Arc<dyn Queue>> {
        url.as_ref()
            .map(|u| Arc::new(SqsQueue::new(sqs.clone(), u)) as Arc<dyn Queue>)
    };
    let notifier: Arc<dyn Notifier> = match &config.slack {
        SlackSource::SecretArn(arn) => {
            let url = crate::aws::secrets::slack_url_from_secret(
                &aws_sdk_secretsmanager::Client::new(&sdk),
                arn,
            )
            .await?;
            Arc::new(SlackWebhook::new(&url, RetryPolicy::notifications())?)
        }
        slack => notifier_for(slack)?,
    };
    Ok(FleetAdapters {
        store: Arc::new(S3Store::new(
            crate::aws::s3_client(&sdk),
            &config.bucket,
            &config.prefix,
        )),
        ledger: Arc::new(DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.ledger_table,
        )),
        registry: registry.clone(),
        documents: Arc::new(LocationReader { registry }),
        notifier,
        retry: RetryPolicy::default(),
        queues: WorkQueues {
            lambda: queue(&config.queue_url),
            ecs: queue(&config.large_queue_url),
        },
        dlq: queue(&config.dlq_url),
        capacity: config.ecs.clone().map(|service| {
            Arc::new(EcsCapacity::new(aws_sdk_ecs::Client::new(&sdk), service))
                as Arc<dyn WorkerCapacity>
        }),
        config,
    })
}

/// One SQS queue by URL (`bottlesync work --queue-url`), with clients from
/// the default chain.
pub async fn aws_queue(url: &str) -> Result<Arc<dyn Queue>> {
    let sdk = crate::aws::sdk_config().await?;
    Ok(Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), url)))
}

/// The in-process implementations: the mirror in a local directory, an
/// in-memory ledger, and in-memory Lambda and ECS queues that dead-letter
/// into an in-memory DLQ after `max_receive_count` receives. The fleet
/// code runs on them unchanged, at rates moto cannot serve (load tests)
/// and without any AWS endpoint (tests of the consumer's logic).
pub fn in_process_adapters(
    config: FleetConfig,
    mirror_root: &Path,
    visibility_timeout: Duration,
    max_receive_count: u32,
) -> Result<FleetAdapters> {
    let notifier = match &config.slack {
        SlackSource::SecretArn(_) => {
            return Err(Error::config(
                "BOTTLESYNC_SLACK_SECRET_ARN",
                "an in-process fleet has no Secrets Manager: give BOTTLESYNC_SLACK_WEBHOOK_URL",
            ));
        }
        slack => notifier_for(slack)?,
    };
    let registry: Arc<dyn Registry> = Arc::new(RegistryClient::new(&HttpSettings::default())?);
    let dlq = Arc::new(MemoryQueue::new("dlq", visibility_timeout));
    let queue = |name: &str| -> Arc<dyn Queue> {
        Arc::new(
            MemoryQueue::new(name, visibility_timeout)
                .with_dead_letter(dlq.clone(), max_receive_count),
        )
    };
    Ok(FleetAdapters {
        store: Arc::new(LocalStore::open(mirror_root)?),
        ledger: Arc::new(MemoryLedger::new()),
        registry: registry.clone(),
        documents: Arc::new(LocationReader { registry }),
        notifier,
        retry: RetryPolicy::default(),
        queues: WorkQueues {
            lambda: Some(queue("work")),
            ecs: Some(queue("work-large")),
        },
        dlq: Some(dlq.clone()),
        capacity: None,
        config,
    })
}

/// The notifier for a webhook given directly, or the log without one.
fn notifier_for(slack: &SlackSource) -> Result<Arc<dyn Notifier>> {
    Ok(match slack {
        SlackSource::Url(url) => Arc::new(SlackWebhook::new(url, RetryPolicy::notifications())?),
        SlackSource::None | SlackSource::SecretArn(_) => Arc::new(LogNotifier),
    })
}

/// The registry client: bottle downloads, and documents over HTTP(S).
pub fn registry_client(settings: &HttpSettings) -> Result<Arc<dyn Registry>> {
    Ok(Arc::new(RegistryClient::new(settings)?))
}

/// Documents (external hash files) from a path, S3 or HTTP(S).
pub fn documents(registry: Arc<dyn Registry>) -> Arc<dyn Documents> {
    Arc::new(LocationReader { registry })
}

/// Opens the mirror at `location` (a directory or an S3 prefix).
/// `read_only` (dry runs) creates nothing and takes no lock.
pub async fn open_store(location: &Location, read_only: bool) -> Result<Arc<dyn BlobStore>> {
    let store: Arc<dyn BlobStore> = match location {
        Location::Dir(path) if read_only => Arc::new(LocalStore::open_read_only(path)),
        Location::Dir(path) => Arc::new(LocalStore::open(path)?),
        Location::S3 { bucket, prefix } => {
            let config = crate::aws::sdk_config().await?;
            Arc::new(S3Store::new(crate::aws::s3_client(&config), bucket, prefix))
        }
        Location::Http(url) => {
            return Err(Error::destination(
                url.as_str(),
                "cannot store bottles over HTTP",
            ));
        }
    };
    store.check_usable().await?;
    Ok(store)
}

/// Documents from a path, S3 (with the default credentials) or HTTP(S).
pub struct LocationReader {
    pub registry: Arc<dyn Registry>,
}

#[async_trait::async_trait]
impl Documents for LocationReader {
    async fn read(
        &self,
        location: &Location,
        max_bytes: u64,
    ) -> std::result::Result<Vec<u8>, String> {
        match location {
            Location::Dir(path) => {
                let meta = tokio::fs::metadata(path).await.map_err(|e| e.to_string())?;
                if meta.len() > max_bytes {
                    return Err(format!(
                        "{} bytes is more than the {max_bytes} allowed",
                        meta.len()
                    ));
                }
                crate::local::local_store::read_at_most(path, max_bytes)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("more than the {max_bytes} bytes allowed"))
            }
            Location::S3 { bucket, prefix } => {
                let key = ObjectKey::parse(prefix).map_err(|e| e.to_string())?;
                let config = crate::aws::sdk_config().await.map_err(|e| e.to_string())?;
                let store = S3Store::new(crate::aws::s3_client(&config), bucket, "");
                store
                    .get(&key, max_bytes)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "no such object".to_string())
            }
            Location::Http(url) => self
                .registry
                .get_document(url, max_bytes)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}
