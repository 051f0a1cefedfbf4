//! `bottlesync sync`'s flags, and the settings they make: any error names
//! the flag and exits 2 with nothing written.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bottlesync_adapters::http::registry::{HttpSettings, RegistryClient};
use bottlesync_core::Error;
use bottlesync_core::model::index::HostPolicy;
use bottlesync_core::model::location::Location;
use bottlesync_core::plan::portable_ruby::PortableRubySetting;
use bottlesync_core::plan::select::TagSelection;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::segments::{SegmentPolicy, parse_size};
use bottlesync_core::store_lease::LEASE_LENGTH;
use url::Url;

#[derive(clap::Args, Debug, Clone)]
pub struct SyncArgs {
    /// Where the mirror lives: a directory or s3://BUCKET[/PREFIX].
    #[arg(long, env = "BOTTLESYNC_DEST")]
    pub dest: String,

    /// Homebrew API base: the index is {api-url}/formula.jws.json (else
    /// formula.json), the per-tag files {api-url}/internal/packages.<tag>.jws.json.
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

    /// With --with-deps, for Linux tags: also glibc and gcc, which brew
    /// installs with everything on hosts with glibc < 2.39 or libstdc++ <
    /// 6.0.33 (Debian 12, Ubuntu 22.04). on|off.
    #[arg(long, env = "BOTTLESYNC_LINUX_HOST_FORMULAE", default_value_t = true,
          action = clap::ArgAction::Set, value_name = "on|off",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub linux_host_formulae: bool,

    /// Parallel downloads.
    #[arg(long, env = "BOTTLESYNC_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,

    /// The dated folder for this run (default: today, UTC).
    #[arg(long, env = "BOTTLESYNC_DATE", value_parser = crate::config::parse_date_arg)]
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

    /// Portable Ruby, which a fresh machine's first brew run downloads:
    /// `auto` (the two newest versions), a version (`4.0.6`), or `off`.
    #[arg(long, env = "BOTTLESYNC_PORTABLE_RUBY", default_value = "auto")]
    pub portable_ruby: String,

    /// Print the plan (bottles, bytes, tags) and write nothing.
    #[arg(long, env = "BOTTLESYNC_DRY_RUN")]
    pub dry_run: bool,

    /// Bottles larger than this come down in segments of this size, over
    /// several connections at once (units B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, env = "BOTTLESYNC_SEGMENT_SIZE", default_value = "64MiB")]
    pub segment_size: String,

    /// Connections one large bottle's segments share (1: one stream per
    /// bottle, never segmented).
    #[arg(long, env = "BOTTLESYNC_CONNECTIONS_PER_BOTTLE", default_value_t = 4)]
    pub connections_per_bottle: usize,

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Bar,
    Log,
}

/// `SyncArgs`, checked and turned into what the pipeline uses.
pub struct SyncSettings {
    pub dest: Location,
    pub api_url: Url,
    pub tags: TagSelection,
    pub hash_file: Option<Location>,
    pub date: chrono::NaiveDate,
    pub hosts: HostPolicy,
    pub registry: Arc<dyn Registry>,
    pub retry: RetryPolicy,
    pub segments: SegmentPolicy,
    pub portable_ruby: PortableRubySetting,
}

impl SyncSettings {
    pub fn from_args(args: &SyncArgs) -> Result<SyncSettings, Error> {
        // In this order: the first bad flag is the one named.
        let dest = Location::parse("--dest", &args.dest, false)?;
        let api_url = Url::parse(args.api_url.trim_end_matches('/'))
            .map_err(|e| Error::config("--api-url", format!("{:?}: {e}", args.api_url)))?;
        let tags = TagSelection::parse("--tags", &args.tags)?;
        let hash_file = (args.hash_file.as_deref())
            .map(|h| Location::parse("--hash-file", h, true))
            .transpose()?;
        let portable_ruby = PortableRubySetting::parse("--portable-ruby", &args.portable_ruby)?;
        let segments = SegmentPolicy::new(
            parse_size("--segment-size", &args.segment_size)?,
            args.connections_per_bottle,
            "--segment-size",
            "--connections-per-bottle",
        )?;
        Ok(SyncSettings {
            dest,
            tags,
            hash_file,
            date: args.date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
            hosts: HostPolicy::new(&api_url, &args.allow_hosts),
            api_url,
            registry: Arc::new(RegistryClient::new(&HttpSettings {
                read_timeout: Duration::from_secs(args.read_timeout.max(1)),
                ..HttpSettings::default()
            })?),
            retry: RetryPolicy {
                retries: args.retries,
                ..RetryPolicy::default()
            },
            segments,
            portable_ruby,
        })
    }
}

/// `sync`'s S3 lease length: `LEASE_LENGTH`, or (for tests of expiry) the
/// hidden `BOTTLESYNC_STORE_LEASE_SECONDS`.
pub fn store_lease_length() -> Result<Duration, Error> {
    const VARIABLE: &str = "BOTTLESYNC_STORE_LEASE_SECONDS";
    match std::env::var(VARIABLE) {
        Err(_) => Ok(LEASE_LENGTH),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if seconds >= 3 => Ok(Duration::from_secs(seconds)),
            _ => Err(Error::config(
                VARIABLE,
                format!("{text:?}: must be a whole number of seconds, at least 3"),
            )),
        },
    }
}
