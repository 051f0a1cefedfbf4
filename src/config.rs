//! Settings from flags and `BOTTLESYNC_*` variables (clap), turned into the
//! plain `FleetSettings` the core checks; `sync`'s in `config/sync.rs`.

mod sync;
pub use sync::{ProgressMode, SyncArgs, SyncSettings, store_lease_length};

use bottlesync_core::Error;
use bottlesync_core::fleet_config::{FleetConfig, FleetSettings};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct FleetArgs {
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
    #[arg(long = "api-url", env = "BOTTLESYNC_API_URL")]
    pub api_url: Option<String>,
    #[arg(long = "tags", env = "BOTTLESYNC_TAGS")]
    pub tags: Option<String>,
    /// Runs estimated at or above this many GB (10^9 bytes) go to ECS.
    #[arg(long, env = "BOTTLESYNC_SIZE_THRESHOLD_GB")]
    pub size_threshold_gb: Option<String>,
    /// Slack incoming webhook (never logged).
    #[arg(long, env = "BOTTLESYNC_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// Secrets Manager secret holding the webhook URL (plain, or JSON with `webhook_url`).
    #[arg(long, env = "BOTTLESYNC_SLACK_SECRET_ARN")]
    pub slack_secret_arn: Option<String>,
    /// s3:// or https:// hash file whose bottles count as mirrored.
    #[arg(long, env = "BOTTLESYNC_EXTERNAL_HASH_FILE")]
    pub external_hash_file: Option<String>,
    /// Shown in messages (e.g. prod, staging).
    #[arg(long, env = "BOTTLESYNC_ENVIRONMENT")]
    pub environment: Option<String>,
    /// CloudWatch log group named in failure messages.
    #[arg(long, env = "BOTTLESYNC_LOG_GROUP")]
    pub log_group: Option<String>,
    /// ECS cluster of the large-run workers (the planner wakes the service).
    #[arg(long, env = "BOTTLESYNC_ECS_CLUSTER")]
    pub ecs_cluster: Option<String>,
    /// ECS service of the large-run workers.
    #[arg(long, env = "BOTTLESYNC_ECS_SERVICE")]
    pub ecs_service: Option<String>,
    /// Tasks the planner asks for when a run goes to ECS and the service is at 0.
    #[arg(long, env = "BOTTLESYNC_ECS_WAKE_TASKS")]
    pub ecs_wake_tasks: Option<String>,
    /// A single bottle larger than this many GB goes to the ECS queue even in
    /// a small run (default 5: what cannot be streamed within a 15-minute
    /// Lambda at a conservative ~6 MB/s).
    #[arg(long, env = "BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB")]
    pub lambda_max_bottle_gb: Option<String>,
    /// Seconds between Slack progress messages of an ECS run, fleet-wide (default 900; 0 = none).
    #[arg(long, env = "BOTTLESYNC_PROGRESS_INTERVAL_SECONDS")]
    pub progress_interval_seconds: Option<String>,
    /// `true`: an unreachable external hash file fails the plan (default: plan without it, and say so).
    #[arg(long, env = "BOTTLESYNC_EXTERNAL_HASH_FILE_REQUIRED")]
    pub external_hash_file_required: Option<String>,
    /// `emf` (CloudWatch Embedded Metric Format lines on stdout), `off`, or
    /// unset: `emf` when running in Lambda or ECS.
    #[arg(long, env = "BOTTLESYNC_METRICS")]
    pub metrics: Option<String>,
    /// Minutes a run may go without a bottle counted before the reconcile
    /// deals with what it lost (default 30; fractions allowed).
    #[arg(long, env = "BOTTLESYNC_RUN_STALL_MINUTES")]
    pub run_stall_minutes: Option<String>,
    /// Seconds a planner's right to send a run's messages lasts without
    /// renewal; after that a rerun or the reconcile resumes the run
    /// (default 60).
    #[arg(long, env = "BOTTLESYNC_PLANNING_LEASE_SECONDS", hide = true)]
    pub planning_lease_seconds: Option<String>,
    /// Seconds a worker's claim on a bottle lasts without a heartbeat
    /// (default 900; the worker renews it every third of that).
    #[arg(long, env = "BOTTLESYNC_CLAIM_LEASE_SECONDS")]
    pub claim_lease_seconds: Option<String>,
    /// Bottles larger than this come down in segments of this size over
    /// several connections (default 64MiB).
    #[arg(long, env = "BOTTLESYNC_SEGMENT_SIZE")]
    pub segment_size: Option<String>,
    /// Connections one bottle's segments share (default 4; 1: one stream
    /// per bottle).
    #[arg(long, env = "BOTTLESYNC_CONNECTIONS_PER_BOTTLE")]
    pub connections_per_bottle: Option<String>,
    /// Extra hosts bottle URLs may use.
    #[arg(
        long = "allow-host",
        env = "BOTTLESYNC_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,
    /// Portable Ruby the planner mirrors: `auto` (default: the two newest
    /// versions), a version (`4.0.6`), or `off`.
    #[arg(long, env = "BOTTLESYNC_PORTABLE_RUBY")]
    pub portable_ruby: Option<String>,
}

impl From<FleetArgs> for FleetSettings {
    fn from(args: FleetArgs) -> Self {
        FleetSettings {
            bucket: args.bucket,
            prefix: args.prefix,
            queue_url: args.queue_url,
            large_queue_url: args.large_queue_url,
            dlq_url: args.dlq_url,
            ledger_table: args.ledger_table,
            api_url: args.api_url,
            tags: args.tags,
            size_threshold_gb: args.size_threshold_gb,
            slack_webhook_url: args.slack_webhook_url,
            slack_secret_arn: args.slack_secret_arn,
            external_hash_file: args.external_hash_file,
            environment: args.environment,
            log_group: args.log_group,
            ecs_cluster: args.ecs_cluster,
            ecs_service: args.ecs_service,
            ecs_wake_tasks: args.ecs_wake_tasks,
            lambda_max_bottle_gb: args.lambda_max_bottle_gb,
            progress_interval_seconds: args.progress_interval_seconds,
            external_hash_file_required: args.external_hash_file_required,
            metrics: args.metrics,
            run_stall_minutes: args.run_stall_minutes,
            planning_lease_seconds: args.planning_lease_seconds,
            claim_lease_seconds: args.claim_lease_seconds,
            segment_size: args.segment_size,
            connections_per_bottle: args.connections_per_bottle,
            allow_hosts: args.allow_hosts,
            portable_ruby: args.portable_ruby,
        }
    }
}

/// A Lambda's settings: `BOTTLESYNC_*` only (it has no command line).
pub fn fleet_config_from_env(binary: &str) -> Result<FleetConfig, Error> {
    #[derive(clap::Parser)]
    struct FromEnv {
        #[command(flatten)]
        fleet: FleetArgs,
    }
    let settings = <FromEnv as clap::Parser>::parse_from([binary]);
    FleetConfig::from_settings(&settings.fleet.into())
}

/// A `--date`: YYYY-MM-DD.
pub fn parse_date_arg(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a date YYYY-MM-DD: {e}"))
}
