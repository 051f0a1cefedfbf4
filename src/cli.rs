//! The command line. Every flag can also be set with `BOTTLESYNC_<FLAG>`.

use bottlesync::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};

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
    Sync(bottlesync::config::SyncArgs),
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
    /// Check a mirror as brew clients use it: every bottle the published API
    /// files name (formulae in scope) is in bottles/ with the right sha256,
    /// with its manifest. Exit 0 when complete, 1 when not, 2 on error.
    Verify(VerifyArgs),
    /// Serve a mirror to brew clients over HTTP: /api/..., /bottles/...,
    /// the registry view (/v2/homebrew/core/...) and /healthz.
    Serve(ServeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The mirror: a directory or s3://bucket[/prefix].
    #[arg(long, env = "BOTTLESYNC_SERVE_ROOT")]
    pub root: String,
    /// The address to listen on.
    #[arg(long, env = "BOTTLESYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// S3 root only: answer object requests with a 307 to a presigned
    /// GetObject URL (valid 15 minutes) instead of streaming the bytes.
    #[arg(long)]
    pub redirect: bool,
    /// Seconds a client has to send a complete request header (from
    /// connecting, TLS handshake included, or from a later request's
    /// first byte).
    #[arg(long, env = "BOTTLESYNC_SERVE_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a keep-alive connection is kept with no request, and a
    /// response may go without sending a byte (a client that stopped
    /// reading).
    #[arg(long, env = "BOTTLESYNC_SERVE_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Connections at once; more are closed as they come (a warning).
    #[arg(long, env = "BOTTLESYNC_SERVE_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Bytes a second a client must take while a response is open,
    /// averaged over each --idle-timeout; 0: no minimum.
    #[arg(long, env = "BOTTLESYNC_SERVE_MIN_SEND_RATE", default_value_t = 1024)]
    pub min_send_rate: u64,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate
    /// chain, leaf first; needs --tls-key. SIGHUP reads both files again.
    #[arg(long, env = "BOTTLESYNC_SERVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BOTTLESYNC_SERVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The mirror: a directory or s3://bucket[/prefix].
    #[arg(long, env = "BOTTLESYNC_DEST")]
    pub dest: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
