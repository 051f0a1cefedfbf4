//! `bottlesync sync`'s flags: what to mirror, where (and, flattened in,
//! how: `sync_transfer`). Every flag is also a `BOTTLESYNC_*` variable.

use std::path::PathBuf;

use bottlesync_core::plan::select::{PlanRequest, TagSelection};
use chrono::NaiveDate;

pub use super::sync_transfer::{ProgressMode, SyncTransferArgs};

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

    /// Write the plan (with --dry-run) or the run summary as JSON to this file.
    #[arg(long, env = "BOTTLESYNC_REPORT")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub transfer: SyncTransferArgs,
}

impl SyncArgs {
    /// What to plan: these flags' formulae, for `tags` on `date` (the
    /// settings made of the other flags).
    pub fn plan_request(&self, tags: TagSelection, date: NaiveDate) -> PlanRequest {
        PlanRequest {
            tags,
            formulae: self.formulae.clone(),
            with_deps: self.with_deps,
            linux_host_formulae: self.linux_host_formulae,
            include_disabled: self.include_disabled,
            date,
        }
    }
}
