//! The fleet's settings, typed: one set for Lambda, ECS and the CLI. Each
//! is an environment variable `BOTTLESYNC_*` and a flag, parsed and checked
//! where the flags are (`bottlesync::config::FleetArgs`: clap value parsers
//! that name the variable); here are the defaults and what a role requires.

use url::Url;

use crate::error::{Error, Result};
use crate::model::index::HostPolicy;
use crate::model::location::Location;
use crate::plan::portable_ruby::PortableRubySetting;
use crate::plan::select::TagSelection;
use crate::segments::{DEFAULT_CONNECTIONS_PER_BOTTLE, DEFAULT_SEGMENT_SIZE, SegmentPolicy};
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://formulae.brew.sh/api";
/// The variable the planner reads `--portable-ruby`'s setting from.
pub const PORTABLE_RUBY_VARIABLE: &str = "BOTTLESYNC_PORTABLE_RUBY";

/// The defaults of the settings a `FleetConfig` has ([`FleetConfig::new`]
/// starts from them; the flags show them in `--help`).
pub const DEFAULT_TAGS: &str = "auto";
pub const DEFAULT_SIZE_THRESHOLD_GB: f64 = 20.0;
pub const DEFAULT_ENVIRONMENT: &str = "default";
pub const DEFAULT_ECS_WAKE_TASKS: f64 = 1.0;
/// What cannot be streamed within a 15-minute Lambda at a conservative
/// ~6 MB/s.
pub const DEFAULT_LAMBDA_MAX_BOTTLE_GB: f64 = 5.0;
pub const DEFAULT_PROGRESS_INTERVAL_SECONDS: f64 = 900.0;
pub const DEFAULT_RUN_STALL_MINUTES: f64 = 30.0;
pub const DEFAULT_PLANNING_LEASE_SECONDS: f64 = 60.0;

/// How the Slack webhook is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlackSource {
    None,
    Url(String),
    SecretArn(String),
}

#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub bucket: String,
    pub prefix: String,
    pub queue_url: Option<String>,
    pub large_queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub ledger_table: String,
    pub api_url: Url,
    pub tags: TagSelection,
    pub size_threshold_bytes: u64,
    pub slack: SlackSource,
    pub external_hash_file: Option<Location>,
    pub environment: String,
    pub log_group: Option<String>,
    pub hosts: HostPolicy,
    pub ecs: Option<EcsService>,
    pub ecs_wake_tasks: i32,
    pub lambda_max_bottle_bytes: u64,
    /// `None`: no progress messages.
    pub progress_interval: Option<Duration>,
    pub external_hash_file_required: bool,
    pub emit_metrics: bool,
    /// How long a running run may go without progress before the reconcile
    /// re-sends or gives up what it lost.
    pub run_stall: Duration,
    /// How long a planner's right to send a run's messages lasts unrenewed.
    pub planning_lease: Duration,
    /// How long a claim on a bottle lasts without a heartbeat.
    pub claim_lease: Duration,
    /// How large bottles are downloaded.
    pub segments: SegmentPolicy,
    /// Which Portable Ruby versions the planner mirrors.
    pub portable_ruby: PortableRubySetting,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsService {
    pub cluster: String,
    pub service: String,
}

/// Production's claim lease: longer than any bottle's transfer between two
/// heartbeats, short enough that a dead worker's bottle is retried soon.
pub const DEFAULT_CLAIM_LEASE_SECONDS: u64 = 900;

impl FleetConfig {
    /// Every setting at its default, for `bucket` and `ledger_table` (the
    /// two always required). The shells set what their flags say
    /// (`bottlesync::config::FleetArgs`); tests set what they need.
    pub fn new(bucket: impl Into<String>, ledger_table: impl Into<String>) -> FleetConfig {
        let api_url = Url::parse(DEFAULT_API_URL).expect("the default API URL parses");
        FleetConfig {
            bucket: bucket.into(),
            prefix: String::new(),
            queue_url: None,
            large_queue_url: None,
            dlq_url: None,
            ledger_table: ledger_table.into(),
            hosts: HostPolicy::new(&api_url, &[]),
            api_url,
            tags: TagSelection::parse("BOTTLESYNC_TAGS", DEFAULT_TAGS).expect("auto parses"),
            size_threshold_bytes: gb_to_bytes(DEFAULT_SIZE_THRESHOLD_GB),
            slack: SlackSource::None,
            external_hash_file: None,
            environment: DEFAULT_ENVIRONMENT.into(),
            log_group: None,
            ecs: None,
            ecs_wake_tasks: DEFAULT_ECS_WAKE_TASKS as i32,
            lambda_max_bottle_bytes: gb_to_bytes(DEFAULT_LAMBDA_MAX_BOTTLE_GB),
            progress_interval: Some(Duration::from_secs_f64(DEFAULT_PROGRESS_INTERVAL_SECONDS)),
            external_hash_file_required: false,
            emit_metrics: false,
            run_stall: Duration::from_secs_f64(DEFAULT_RUN_STALL_MINUTES * 60.0),
            planning_lease: Duration::from_secs_f64(DEFAULT_PLANNING_LEASE_SECONDS),
            claim_lease: Duration::from_secs(DEFAULT_CLAIM_LEASE_SECONDS),
            segments: SegmentPolicy::new(
                DEFAULT_SEGMENT_SIZE,
                DEFAULT_CONNECTIONS_PER_BOTTLE,
                "BOTTLESYNC_SEGMENT_SIZE",
                "BOTTLESYNC_CONNECTIONS_PER_BOTTLE",
            )
            .expect("the default segments are valid"),
            portable_ruby: PortableRubySetting::Auto,
        }
    }

    /// Plans from another Homebrew API: its host is allowed in bottle URLs,
    /// and so are `extra_hosts` (`BOTTLESYNC_ALLOW_HOST`).
    pub fn with_api_url(mut self, api_url: Url, extra_hosts: &[String]) -> FleetConfig {
        self.hosts = HostPolicy::new(&api_url, extra_hosts);
        self.api_url = api_url;
        self
    }

    pub fn require_queue(&self) -> Result<&str> {
        self.queue_url
            .as_deref()
            .ok_or_else(|| Error::config("BOTTLESYNC_QUEUE_URL", "is not set"))
    }

    pub fn require_large_queue(&self) -> Result<&str> {
        self.large_queue_url
            .as_deref()
            .ok_or_else(|| Error::config("BOTTLESYNC_LARGE_QUEUE_URL", "is not set"))
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn mirror_location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// What the fleet's Slack messages name (environment, mirror, logs, DLQ).
    pub fn message_context(&self) -> crate::run::messages::MessageContext {
        crate::run::messages::MessageContext {
            environment: self.environment.clone(),
            mirror: self.mirror_location(),
            log_group: self.log_group.clone(),
            dlq: self.dlq_url.clone(),
        }
    }

    /// Where the fleet's metrics go.
    pub fn metrics(&self) -> crate::metrics::Metrics {
        crate::metrics::Metrics {
            environment: self.environment.clone(),
            enabled: self.emit_metrics,
        }
    }
}

/// `gb` GB (10^9 bytes) in bytes.
pub fn gb_to_bytes(gb: f64) -> u64 {
    (gb * 1e9) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let config = FleetConfig::new("mirror", "ledger");
        assert_eq!(config.size_threshold_bytes, 20_000_000_000);
        assert_eq!(config.lambda_max_bottle_bytes, 5_000_000_000);
        assert_eq!(config.tags, TagSelection::parse("t", "auto").unwrap());
        assert_eq!(config.slack, SlackSource::None);
        assert_eq!(config.claim_lease, Duration::from_secs(900));
        assert_eq!(config.run_stall, Duration::from_secs(1800));
        assert_eq!(config.planning_lease, Duration::from_secs(60));
        assert_eq!(config.progress_interval, Some(Duration::from_secs(900)));
        assert_eq!(config.portable_ruby, PortableRubySetting::Auto);
        assert!(
            config
                .hosts
                .allows(&Url::parse("https://ghcr.io/v2/x").unwrap())
        );
        let err = config.require_queue().unwrap_err().to_string();
        assert!(err.contains("BOTTLESYNC_QUEUE_URL"), "{err}");
    }

    #[test]
    fn another_api_url_allows_its_host_and_the_extra_ones() {
        let api = Url::parse("http://127.0.0.1:8080/api").unwrap();
        let config = FleetConfig::new("m", "l").with_api_url(api, &["cdn.example".into()]);
        assert!(
            config
                .hosts
                .allows(&Url::parse("http://127.0.0.1:9/x").unwrap())
        );
        assert!(
            config
                .hosts
                .allows(&Url::parse("https://cdn.example/x").unwrap())
        );
        assert!(
            !config
                .hosts
                .allows(&Url::parse("https://elsewhere/x").unwrap())
        );
    }
}
