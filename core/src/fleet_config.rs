//! The fleet's settings: one set of names for Lambda, ECS and the CLI.
//! Each is an environment variable `BOTTLESYNC_*` and a flag; a missing or
//! malformed one is a startup error that names it.

use url::Url;

use crate::error::{Error, Result};
use crate::model::index::HostPolicy;
use crate::plan::portable_ruby::PortableRubySetting;
use crate::segments::{
    DEFAULT_CONNECTIONS_PER_BOTTLE, DEFAULT_SEGMENT_SIZE, SegmentPolicy, parse_size,
};

pub const DEFAULT_API_URL: &str = "https://formulae.brew.sh/api";
/// The variable the planner reads `--portable-ruby`'s setting from.
pub const PORTABLE_RUBY_VARIABLE: &str = "BOTTLESYNC_PORTABLE_RUBY";

/// The fleet's settings as given (flags or `BOTTLESYNC_*` variables, read
/// by the shells), before they are checked into a `FleetConfig`.
#[derive(Clone, Debug, Default)]
pub struct FleetSettings {
    /// The mirror bucket.
    pub bucket: Option<String>,
    /// Key prefix of the mirror inside the bucket.
    pub prefix: Option<String>,
    /// The queue the Lambda workers consume.
    pub queue_url: Option<String>,
    /// The queue the ECS workers consume (large runs).
    pub large_queue_url: Option<String>,
    /// The dead-letter queue of both.
    pub dlq_url: Option<String>,
    /// The DynamoDB ledger table (partition key `pk`, string).
    pub ledger_table: Option<String>,
    pub api_url: Option<String>,
    pub tags: Option<String>,
    /// Runs estimated at or above this many GB (10^9 bytes) go to ECS.
    pub size_threshold_gb: Option<String>,
    /// Slack incoming webhook (never logged).
    pub slack_webhook_url: Option<String>,
    /// Secrets Manager secret holding the webhook URL (plain, or JSON with `webhook_url`).
    pub slack_secret_arn: Option<String>,
    /// s3:// or https:// hash file whose bottles count as mirrored.
    pub external_hash_file: Option<String>,
    /// Shown in messages (e.g. prod, staging).
    pub environment: Option<String>,
    /// CloudWatch log group named in failure messages.
    pub log_group: Option<String>,
    /// ECS cluster of the large-run workers (the planner wakes the service).
    pub ecs_cluster: Option<String>,
    /// ECS service of the large-run workers.
    pub ecs_service: Option<String>,
    /// Tasks the planner asks for when a run goes to ECS and the service is at 0.
    pub ecs_wake_tasks: Option<String>,
    /// A single bottle larger than this many GB goes to the ECS queue even in
    /// a small run (default 5: what cannot be streamed within a 15-minute
    /// Lambda at a conservative ~6 MB/s).
    pub lambda_max_bottle_gb: Option<String>,
    /// Seconds between Slack progress messages of an ECS run, fleet-wide (default 900; 0 = none).
    pub progress_interval_seconds: Option<String>,
    /// `true`: an unreachable external hash file fails the plan (default: plan without it, and say so).
    pub external_hash_file_required: Option<String>,
    /// `emf` (CloudWatch Embedded Metric Format lines on stdout), `off`, or
    /// unset: `emf` when running in Lambda or ECS.
    pub metrics: Option<String>,
    /// Minutes a run may go without a bottle counted before the reconcile
    /// deals with what it lost (default 30; fractions allowed).
    pub run_stall_minutes: Option<String>,
    /// Seconds a planner's right to send a run's messages lasts without
    /// renewal; after that a rerun or the reconcile resumes the run
    /// (default 60).
    pub planning_lease_seconds: Option<String>,
    /// Seconds a worker's claim on a bottle lasts without a heartbeat
    /// (default 900; the worker renews it every third of that).
    pub claim_lease_seconds: Option<String>,
    /// Bottles larger than this come down in segments of this size over
    /// several connections (default 64MiB; units B, KiB, MiB, GiB).
    pub segment_size: Option<String>,
    /// Connections one bottle's segments share (default 4; 1: one stream).
    pub connections_per_bottle: Option<String>,
    /// Extra hosts bottle URLs may use.
    pub allow_hosts: Vec<String>,
    /// Portable Ruby: `auto` (default: the two newest versions), a
    /// version, or `off`.
    pub portable_ruby: Option<String>,
}

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
    pub tags: String,
    pub size_threshold_bytes: u64,
    pub slack: SlackSource,
    pub external_hash_file: Option<String>,
    pub environment: String,
    pub log_group: Option<String>,
    pub hosts: HostPolicy,
    pub ecs: Option<EcsService>,
    pub ecs_wake_tasks: i32,
    pub lambda_max_bottle_bytes: u64,
    /// `None`: no progress messages.
    pub progress_interval: Option<std::time::Duration>,
    pub external_hash_file_required: bool,
    pub emit_metrics: bool,
    /// How long a running run may go without progress before the reconcile
    /// re-sends or gives up what it lost.
    pub run_stall: std::time::Duration,
    /// How long a planner's right to send a run's messages lasts unrenewed.
    pub planning_lease: std::time::Duration,
    /// How long a claim on a bottle lasts without a heartbeat.
    pub claim_lease: std::time::Duration,
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

fn positive_number(value: &Option<String>, name: &str, default: f64) -> Result<f64> {
    let text = optional(value).unwrap_or_else(|| default.to_string());
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| Error::config(name, format!("{text:?} is not a non-negative number")))
}

fn boolean(value: &Option<String>, name: &str) -> Result<bool> {
    match optional(value).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => Err(Error::config(
            name,
            format!("{other:?} is not true or false"),
        )),
    }
}

fn required(value: &Option<String>, name: &str) -> Result<String> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(Error::config(name, "is not set")),
    }
}

fn optional(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

fn queue_url(value: &Option<String>, name: &str) -> Result<Option<String>> {
    match optional(value) {
        None => Ok(None),
        Some(v) => match Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(v)),
            _ => Err(Error::config(name, format!("{v:?} is not a queue URL"))),
        },
    }
}

/// Production's claim lease: longer than any bottle's transfer between two
/// heartbeats, short enough that a dead worker's bottle is retried soon.
pub const DEFAULT_CLAIM_LEASE_SECONDS: u64 = 900;

fn claim_lease(value: &Option<String>) -> Result<std::time::Duration> {
    const NAME: &str = "BOTTLESYNC_CLAIM_LEASE_SECONDS";
    let Some(text) = optional(value) else {
        return Ok(std::time::Duration::from_secs(DEFAULT_CLAIM_LEASE_SECONDS));
    };
    text.parse::<u64>()
        .ok()
        .filter(|secs| (1..=86_400).contains(secs))
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| {
            Error::config(
                NAME,
                format!("{text:?} is not a whole number of seconds from 1 to 86400"),
            )
        })
}

fn segment_policy(args: &FleetSettings) -> Result<SegmentPolicy> {
    const SIZE: &str = "BOTTLESYNC_SEGMENT_SIZE";
    const CONNECTIONS: &str = "BOTTLESYNC_CONNECTIONS_PER_BOTTLE";
    let size = match optional(&args.segment_size) {
        None => DEFAULT_SEGMENT_SIZE,
        Some(text) => parse_size(SIZE, &text)?,
    };
    let connections = match optional(&args.connections_per_bottle) {
        None => DEFAULT_CONNECTIONS_PER_BOTTLE,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| Error::config(CONNECTIONS, format!("{text:?} is not a whole number")))?,
    };
    SegmentPolicy::new(size, connections, SIZE, CONNECTIONS)
}

impl FleetConfig {
    /// Validates everything that is set; bucket and ledger table are always
    /// required. Callers then `require_*` what their role needs.
    pub fn from_settings(args: &FleetSettings) -> Result<Self> {
        let bucket = required(&args.bucket, "BOTTLESYNC_BUCKET")?;
        crate::model::location::Location::parse(
            "BOTTLESYNC_BUCKET",
            &format!("s3://{bucket}"),
            false,
        )?;
        let prefix = optional(&args.prefix)
            .unwrap_or_default()
            .trim_matches('/')
            .to_string();
        if !prefix.is_empty() {
            crate::model::key::ObjectKey::parse(&prefix)
                .map_err(|e| Error::config("BOTTLESYNC_PREFIX", e.to_string()))?;
        }
        let ledger_table = required(&args.ledger_table, "BOTTLESYNC_LEDGER_TABLE")?;
        let api_text = optional(&args.api_url).unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let api_url = Url::parse(api_text.trim_end_matches('/'))
            .map_err(|e| Error::config("BOTTLESYNC_API_URL", format!("{api_text:?}: {e}")))?;
        let threshold_text = optional(&args.size_threshold_gb).unwrap_or_else(|| "20".into());
        let gb: f64 = threshold_text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                Error::config(
                    "BOTTLESYNC_SIZE_THRESHOLD_GB",
                    format!("{threshold_text:?} is not a positive number"),
                )
            })?;
        let slack = match (
            optional(&args.slack_webhook_url),
            optional(&args.slack_secret_arn),
        ) {
            (Some(url), _) => {
                let parsed = Url::parse(&url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"));
                if parsed.is_none() {
                    return Err(Error::config(
                        "BOTTLESYNC_SLACK_WEBHOOK_URL",
                        "is not an http(s) URL",
                    ));
                }
                SlackSource::Url(url)
            }
            (None, Some(arn)) => {
                if !arn.starts_with("arn:") {
                    return Err(Error::config(
                        "BOTTLESYNC_SLACK_SECRET_ARN",
                        format!("{arn:?} is not an ARN"),
                    ));
                }
                SlackSource::SecretArn(arn)
            }
            (None, None) => SlackSource::None,
        };
        let external_hash_file = optional(&args.external_hash_file);
        if let Some(location) = &external_hash_file
            && !(location.starts_with("s3://")
                || location.starts_with("https://")
                || location.starts_with("http://"))
        {
            return Err(Error::config(
                "BOTTLESYNC_EXTERNAL_HASH_FILE",
                format!("{location:?} must be s3:// or https://"),
            ));
        }
        let hosts = HostPolicy::new(&api_url, &args.allow_hosts);
        let ecs = match (optional(&args.ecs_cluster), optional(&args.ecs_service)) {
            (Some(cluster), Some(service)) => Some(EcsService { cluster, service }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::config(
                    "BOTTLESYNC_ECS_SERVICE",
                    "is not set (BOTTLESYNC_ECS_CLUSTER is)",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "BOTTLESYNC_ECS_CLUSTER",
                    "is not set (BOTTLESYNC_ECS_SERVICE is)",
                ));
            }
        };
        let wake = positive_number(&args.ecs_wake_tasks, "BOTTLESYNC_ECS_WAKE_TASKS", 1.0)?;
        let lambda_max_gb = positive_number(
            &args.lambda_max_bottle_gb,
            "BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB",
            5.0,
        )?;
        let progress = positive_number(
            &args.progress_interval_seconds,
            "BOTTLESYNC_PROGRESS_INTERVAL_SECONDS",
            900.0,
        )?;
        let stall_minutes = positive_number(
            &args.run_stall_minutes,
            "BOTTLESYNC_RUN_STALL_MINUTES",
            30.0,
        )?;
        let planning_lease = positive_number(
            &args.planning_lease_seconds,
            "BOTTLESYNC_PLANNING_LEASE_SECONDS",
            60.0,
        )?;
        if stall_minutes <= 0.0 || planning_lease <= 0.0 {
            return Err(Error::config(
                if stall_minutes <= 0.0 {
                    "BOTTLESYNC_RUN_STALL_MINUTES"
                } else {
                    "BOTTLESYNC_PLANNING_LEASE_SECONDS"
                },
                "must be more than 0",
            ));
        }
        let claim_lease = claim_lease(&args.claim_lease_seconds)?;
        let segments = segment_policy(args)?;
        let in_aws = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_some();
        let emit_metrics = match optional(&args.metrics).as_deref() {
            None => in_aws,
            Some("emf") => true,
            Some("off") => false,
            Some(other) => {
                return Err(Error::config(
                    "BOTTLESYNC_METRICS",
                    format!("{other:?} is not emf or off"),
                ));
            }
        };
        Ok(FleetConfig {
            portable_ruby: PortableRubySetting::parse(
                PORTABLE_RUBY_VARIABLE,
                &optional(&args.portable_ruby).unwrap_or_else(|| "auto".into()),
            )?,
            claim_lease,
            segments,
            ecs,
            ecs_wake_tasks: (wake as i32).max(1),
            lambda_max_bottle_bytes: (lambda_max_gb * 1e9) as u64,
            progress_interval: (progress > 0.0)
                .then(|| std::time::Duration::from_secs_f64(progress)),
            external_hash_file_required: boolean(
                &args.external_hash_file_required,
                "BOTTLESYNC_EXTERNAL_HASH_FILE_REQUIRED",
            )?,
            emit_metrics,
            run_stall: std::time::Duration::from_secs_f64(stall_minutes * 60.0),
            planning_lease: std::time::Duration::from_secs_f64(planning_lease),
            bucket,
            prefix,
            queue_url: queue_url(&args.queue_url, "BOTTLESYNC_QUEUE_URL")?,
            large_queue_url: queue_url(&args.large_queue_url, "BOTTLESYNC_LARGE_QUEUE_URL")?,
            dlq_url: queue_url(&args.dlq_url, "BOTTLESYNC_DLQ_URL")?,
            ledger_table,
            api_url,
            tags: optional(&args.tags).unwrap_or_else(|| "auto".into()),
            size_threshold_bytes: (gb * 1e9) as u64,
            slack,
            external_hash_file,
            environment: optional(&args.environment).unwrap_or_else(|| "default".into()),
            log_group: optional(&args.log_group),
            hosts,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> FleetSettings {
        FleetSettings {
            bucket: Some("mirror".into()),
            ledger_table: Some("ledger".into()),
            ..FleetSettings::default()
        }
    }

    #[test]
    fn portable_ruby_is_auto_unless_set_and_checked() {
        let config = FleetConfig::from_settings(&args()).unwrap();
        assert_eq!(config.portable_ruby, PortableRubySetting::Auto);
        let mut pinned = args();
        pinned.portable_ruby = Some("4.0.6".into());
        assert_eq!(
            FleetConfig::from_settings(&pinned).unwrap().portable_ruby,
            PortableRubySetting::Version("4.0.6".into())
        );
        pinned.portable_ruby = Some("latest".into());
        let err = FleetConfig::from_settings(&pinned).unwrap_err().to_string();
        assert!(
            err.contains("BOTTLESYNC_PORTABLE_RUBY") && err.contains("latest"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_names_in_errors() {
        let config = FleetConfig::from_settings(&args()).unwrap();
        assert_eq!(config.size_threshold_bytes, 20_000_000_000);
        assert_eq!(config.tags, "auto");
        assert_eq!(config.slack, SlackSource::None);
        assert_eq!(config.claim_lease, std::time::Duration::from_secs(900));
        let mut short = args();
        short.claim_lease_seconds = Some(" 60 ".into());
        assert_eq!(
            FleetConfig::from_settings(&short).unwrap().claim_lease,
            std::time::Duration::from_secs(60)
        );
        let err = config.require_queue().unwrap_err().to_string();
        assert!(err.contains("BOTTLESYNC_QUEUE_URL"), "{err}");

        for (mutate, name) in [
            (
                Box::new(|a: &mut FleetSettings| a.bucket = None)
                    as Box<dyn Fn(&mut FleetSettings)>,
                "BOTTLESYNC_BUCKET",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.ledger_table = Some(" ".into())),
                "BOTTLESYNC_LEDGER_TABLE",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.size_threshold_gb = Some("-1".into())),
                "BOTTLESYNC_SIZE_THRESHOLD_GB",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.queue_url = Some("not a url".into())),
                "BOTTLESYNC_QUEUE_URL",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.slack_webhook_url = Some("ftp://x".into())),
                "BOTTLESYNC_SLACK_WEBHOOK_URL",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.prefix = Some("a/../b".into())),
                "BOTTLESYNC_PREFIX",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.external_hash_file = Some("/local".into())),
                "BOTTLESYNC_EXTERNAL_HASH_FILE",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.claim_lease_seconds = Some("0".into())),
                "BOTTLESYNC_CLAIM_LEASE_SECONDS",
            ),
            (
                Box::new(|a: &mut FleetSettings| a.claim_lease_seconds = Some("15m".into())),
                "BOTTLESYNC_CLAIM_LEASE_SECONDS",
            ),
        ] {
            let mut a = args();
            mutate(&mut a);
            let err = FleetConfig::from_settings(&a).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn the_webhook_url_is_not_in_errors() {
        let mut a = args();
        a.slack_webhook_url = Some("ftp://secret-token".into());
        let err = FleetConfig::from_settings(&a).unwrap_err().to_string();
        assert!(!err.contains("secret-token"), "{err}");
    }
}
