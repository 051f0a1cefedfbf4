//! How a fleet run goes: progress, metrics, its clocks and leases, and how
//! large bottles come down.

use std::time::Duration;

use bottlesync_core::Error;
use bottlesync_core::fleet_config::{
    DEFAULT_CLAIM_LEASE_SECONDS, DEFAULT_PLANNING_LEASE_SECONDS, DEFAULT_PROGRESS_INTERVAL_SECONDS,
    DEFAULT_RUN_STALL_MINUTES, FleetConfig,
};
use bottlesync_core::segments::{DEFAULT_CONNECTIONS_PER_BOTTLE, SegmentPolicy};

use super::parse;
use super::setting::Setting;

/// The fleet's clocks, leases, metrics and download shape.
#[derive(clap::Args, Clone, Debug)]
pub struct FleetTuningArgs {
    /// Seconds between Slack progress messages of an ECS run, fleet-wide (0 = none).
    #[arg(long, env = "BOTTLESYNC_PROGRESS_INTERVAL_SECONDS", default_value_t = DEFAULT_PROGRESS_INTERVAL_SECONDS,
          value_parser = Setting(parse::non_negative))]
    pub progress_interval_seconds: f64,
    /// `emf` (CloudWatch Embedded Metric Format lines on stdout), `off`, or
    /// `auto`: `emf` when running in Lambda or ECS.
    #[arg(long, env = "BOTTLESYNC_METRICS", default_value = "auto", value_parser = Setting(parse::metrics))]
    pub metrics: String,
    /// Minutes a run may go without a bottle counted before the reconcile
    /// deals with what it lost (fractions allowed).
    #[arg(long, env = "BOTTLESYNC_RUN_STALL_MINUTES", default_value_t = DEFAULT_RUN_STALL_MINUTES,
          value_parser = Setting(parse::positive))]
    pub run_stall_minutes: f64,
    /// Seconds a planner's right to send a run's messages lasts without
    /// renewal; after that a rerun or the reconcile resumes the run.
    #[arg(long, env = "BOTTLESYNC_PLANNING_LEASE_SECONDS", hide = true,
          default_value_t = DEFAULT_PLANNING_LEASE_SECONDS, value_parser = Setting(parse::positive))]
    pub planning_lease_seconds: f64,
    /// Seconds a worker's claim on a bottle lasts without a heartbeat (the
    /// worker renews it every third of that).
    #[arg(long, env = "BOTTLESYNC_CLAIM_LEASE_SECONDS", default_value_t = DEFAULT_CLAIM_LEASE_SECONDS,
          value_parser = Setting(parse::lease_seconds))]
    pub claim_lease_seconds: u64,
    /// Bottles larger than this come down in segments of this size over
    /// several connections.
    #[arg(long, env = "BOTTLESYNC_SEGMENT_SIZE", default_value = "64MiB",
          value_parser = Setting(parse::size))]
    pub segment_size: u64,
    /// Connections one bottle's segments share (1: one stream per bottle).
    #[arg(long, env = "BOTTLESYNC_CONNECTIONS_PER_BOTTLE", default_value_t = DEFAULT_CONNECTIONS_PER_BOTTLE,
          value_parser = Setting(parse::whole))]
    pub connections_per_bottle: usize,
}

impl FleetTuningArgs {
    /// `config` running as these flags say.
    pub fn apply(self, config: FleetConfig) -> Result<FleetConfig, Error> {
        let in_aws = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_some();
        Ok(FleetConfig {
            progress_interval: (self.progress_interval_seconds > 0.0)
                .then(|| Duration::from_secs_f64(self.progress_interval_seconds)),
            emit_metrics: match self.metrics.as_str() {
                "emf" => true,
                "off" => false,
                _ => in_aws,
            },
            run_stall: Duration::from_secs_f64(self.run_stall_minutes * 60.0),
            planning_lease: Duration::from_secs_f64(self.planning_lease_seconds),
            claim_lease: Duration::from_secs(self.claim_lease_seconds),
            segments: SegmentPolicy::new(
                self.segment_size,
                self.connections_per_bottle,
                "BOTTLESYNC_SEGMENT_SIZE",
                "BOTTLESYNC_CONNECTIONS_PER_BOTTLE",
            )?,
            ..config
        })
    }
}
