//! The command line. Every flag can also be set with `BOTTLESYNC_<FLAG>`.

use std::path::PathBuf;

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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mirror bottles on this machine: plan, fetch, verify, store, record.
    Sync(SyncArgs),
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
