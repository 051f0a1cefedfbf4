//! The command line. Every flag can also be set with `BOTTLESYNC_<FLAG>`.

use std::path::PathBuf;

use bottlesync::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "bottlesync",
    version,
    about = "Mirror Homebrew bottles into a directory or S3, verified by SHA-256"
)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "BOTTLESYNC_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mirror bottles on this machine: plan, fetch, verify, store, record.
    Sync(SyncArgs),
    /// Plan a fleet run: one SQS message per missing bottle (as the planner Lambda does).
    Plan(PlanArgs),
    /// Consume a queue as an ECS worker (as the worker Lambda does, but long-running).
    Work(WorkArgs),
    /// Compact the ledger into bottles_hash.json now (and finish a drained run).
    Compact(CompactArgs),
    /// The dead-letter queue: list it, or replay it as a new run.
    Dlq(DlqArgs),
    /// Queue depths and the current (or last) run.
    Status(StatusArgs),
    /// Settle every open run: resume runs an interrupted planner left, re-send
    /// what a stalled run lost, count what cannot progress as failed, finish
    /// and report drained runs (what the scheduled reconcile does).
    Reconcile(CompactArgs),
    /// Seed the ledger from an external hash file (PATH, s3://, https://).
    ImportHashes(ImportArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DlqAction {
    /// Show the dead letters (bottle, run, receive count, last error); they stay in the DLQ.
    List {
        #[command(flatten)]
        fleet: bottlesync::config::FleetArgs,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// Move dead letters back to work as a new run (send first, then delete).
    Replay {
        #[command(flatten)]
        fleet: bottlesync::config::FleetArgs,
        #[arg(long, default_value_t = 10_000)]
        max: usize,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub fleet: bottlesync::config::FleetArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    #[command(flatten)]
    pub fleet: bottlesync::config::FleetArgs,
    /// The hash file: a bottles_hash.json, a JSON array of sha256, or an object keyed by sha256.
    pub source: String,
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub fleet: bottlesync::config::FleetArgs,
    /// Work out the run and print it; write and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The dated folder (default: today, UTC).
    #[arg(long, value_parser = parse_date)]
    pub date: Option<chrono::NaiveDate>,
    /// Only these formulae (repeatable).
    #[arg(long = "formula", value_delimiter = ',')]
    pub formulae: Vec<String>,
    #[arg(long)]
    pub with_deps: bool,
    #[arg(long)]
    pub include_disabled: bool,
}

#[derive(Args, Debug, Clone)]
pub struct WorkArgs {
    #[command(flatten)]
    pub fleet: bottlesync::config::FleetArgs,
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

#[derive(Args, Debug, Clone)]
pub struct CompactArgs {
    #[command(flatten)]
    pub fleet: bottlesync::config::FleetArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// Where the mirror lives: a directory or s3://BUCKET[/PREFIX].
    #[arg(long, env = "BOTTLESYNC_DEST")]
    pub dest: String,

    /// Homebrew API base; the index is {api-url}/formula.json.
    #[arg(
        long,
        env = "BOTTLESYNC_API_URL",
        default_value = "https://formulae.brew.sh/api"
    )]
    pub api_url: String,

    /// `auto` (the newest three macOS releases with bottles, both
    /// architectures) or a comma-separated list of bottle tags.
    #[arg(long, env = "BOTTLESYNC_TAGS", default_value = "auto")]
    pub tags: String,

    /// Mirror only this formula (repeatable; comma-separated in the variable).
    #[arg(long = "formula", env = "BOTTLESYNC_FORMULA", value_delimiter = ',')]
    pub formulae: Vec<String>,

    /// With --formula: also mirror their runtime dependencies, recursively.
    #[arg(long, env = "BOTTLESYNC_WITH_DEPS")]
    pub with_deps: bool,

    /// Parallel downloads.
    #[arg(long, env = "BOTTLESYNC_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,

    /// The dated folder for this run (default: today, UTC).
    #[arg(long, env = "BOTTLESYNC_DATE", value_parser = parse_date)]
    pub date: Option<chrono::NaiveDate>,

    /// An external hash file (PATH, s3://... or https://...) whose bottles
    /// count as already mirrored.
    #[arg(long, env = "BOTTLESYNC_HASH_FILE")]
    pub hash_file: Option<String>,

    /// Also mirror disabled formulae.
    #[arg(long, env = "BOTTLESYNC_INCLUDE_DISABLED")]
    pub include_disabled: bool,

    /// Another host bottle URLs may point at (repeatable; comma-separated in
    /// the variable). ghcr.io and the API's host are always allowed.
    #[arg(
        long = "allow-host",
        env = "BOTTLESYNC_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,

    /// Print the plan (bottles, bytes, tags) and write nothing.
    #[arg(long, env = "BOTTLESYNC_DRY_RUN")]
    pub dry_run: bool,

    /// Retries per bottle after a transient failure.
    #[arg(long, env = "BOTTLESYNC_RETRIES", default_value_t = 6)]
    pub retries: usize,

    /// Seconds a download may stall before it is retried.
    #[arg(long, env = "BOTTLESYNC_READ_TIMEOUT", default_value_t = 60)]
    pub read_timeout: u64,

    /// Seconds in-flight bottles may still finish after SIGINT or SIGTERM
    /// before they are abandoned (a second signal abandons them at once).
    #[arg(long, env = "BOTTLESYNC_SHUTDOWN_GRACE", default_value_t = 80)]
    pub shutdown_grace: u64,

    /// Progress display: a bar on a terminal, log lines otherwise.
    #[arg(long, env = "BOTTLESYNC_PROGRESS", default_value = "auto")]
    pub progress: ProgressMode,

    /// Write the plan (with --dry-run) or the run summary as JSON to this file.
    #[arg(long, env = "BOTTLESYNC_REPORT")]
    pub report: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Bar,
    Log,
}

fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a date YYYY-MM-DD: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
