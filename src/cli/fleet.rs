//! The flags of the fleet's own commands: `plan` (the planner Lambda's
//! job) and `work` (the ECS worker).

use bottlesync::config::FleetArgs;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Work out the run and print it; write and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The dated folder (default: today, UTC).
    #[arg(long, value_parser = bottlesync::config::parse_date_arg)]
    pub date: Option<chrono::NaiveDate>,
    /// Only these formulae (repeatable).
    #[arg(long = "formula", value_delimiter = ',')]
    pub formulae: Vec<String>,
    #[arg(long)]
    pub with_deps: bool,
    /// With --with-deps, for Linux tags: also glibc and gcc (see `sync --help`). on|off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "on|off",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub linux_host_formulae: bool,
    #[arg(long)]
    pub include_disabled: bool,
}

#[derive(Args, Debug, Clone)]
pub struct WorkArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The queue to consume (default: BOTTLESYNC_LARGE_QUEUE_URL).
    #[arg(long = "queue-url")]
    pub consume_queue_url: Option<String>,
    /// Bottles worked on at once.
    #[arg(long, env = "BOTTLESYNC_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Exit 0 once the queue has stayed empty (visible and in flight) for --drain-grace seconds.
    #[arg(long)]
    pub drain: bool,
    #[arg(long, default_value_t = 5)]
    pub drain_grace: u64,
    /// The queue's visibility timeout in seconds; in-flight messages are extended by it.
    #[arg(long, env = "BOTTLESYNC_VISIBILITY_TIMEOUT", default_value_t = 300)]
    pub visibility_timeout: u64,
    /// Seconds in-flight bottles may still finish after SIGTERM before they are abandoned.
    #[arg(long, default_value_t = 80)]
    pub shutdown_grace: u64,
    /// Seconds before a failed bottle is retried (doubling per attempt).
    #[arg(long, env = "BOTTLESYNC_RETRY_DELAY", default_value_t = 10)]
    pub retry_delay: u64,
    /// Seconds a claim lasts without a heartbeat (default:
    /// BOTTLESYNC_CLAIM_LEASE_SECONDS, 900).
    #[arg(long, env = "BOTTLESYNC_LEASE_SECONDS")]
    pub lease_seconds: Option<u64>,
}
