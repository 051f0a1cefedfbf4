//! What a fleet run mirrors and where each bottle goes.

use bottlesync_core::Error;
use bottlesync_core::fleet_config::{
    DEFAULT_API_URL, DEFAULT_ECS_WAKE_TASKS, DEFAULT_LAMBDA_MAX_BOTTLE_GB,
    DEFAULT_SIZE_THRESHOLD_GB, DEFAULT_TAGS, FleetConfig, gb_to_bytes,
};
use bottlesync_core::model::location::Location;
use bottlesync_core::plan::portable_ruby::PortableRubySetting;
use bottlesync_core::plan::select::TagSelection;
use url::Url;

use super::parse;
use super::setting::Setting;

/// The Homebrew API, the tags, the routing thresholds, the external hash
/// file and the hosts bottle URLs may use.
#[derive(clap::Args, Clone, Debug)]
pub struct FleetPlanArgs {
    #[arg(long = "api-url", env = "BOTTLESYNC_API_URL", default_value = DEFAULT_API_URL,
          value_parser = Setting(parse::api_url))]
    pub api_url: Url,
    #[arg(long = "tags", env = "BOTTLESYNC_TAGS", default_value = DEFAULT_TAGS,
          value_parser = Setting(parse::tags))]
    pub tags: TagSelection,
    /// Runs estimated at or above this many GB (10^9 bytes) go to ECS.
    #[arg(long, env = "BOTTLESYNC_SIZE_THRESHOLD_GB", default_value_t = DEFAULT_SIZE_THRESHOLD_GB,
          value_parser = Setting(parse::positive))]
    pub size_threshold_gb: f64,
    /// A single bottle larger than this many GB goes to the ECS queue even in
    /// a small run (what cannot be streamed within a 15-minute Lambda at a
    /// conservative ~6 MB/s).
    #[arg(long, env = "BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB", default_value_t = DEFAULT_LAMBDA_MAX_BOTTLE_GB,
          value_parser = Setting(parse::non_negative))]
    pub lambda_max_bottle_gb: f64,
    /// Tasks the planner asks for when a run goes to ECS and the service is at 0.
    #[arg(long, env = "BOTTLESYNC_ECS_WAKE_TASKS", default_value_t = DEFAULT_ECS_WAKE_TASKS,
          value_parser = Setting(parse::non_negative))]
    pub ecs_wake_tasks: f64,
    /// s3:// or https:// hash file whose bottles count as mirrored.
    #[arg(long, env = "BOTTLESYNC_EXTERNAL_HASH_FILE")]
    pub external_hash_file: Option<String>,
    /// `true`: an unreachable external hash file fails the plan (default: plan without it, and say so).
    #[arg(long, env = "BOTTLESYNC_EXTERNAL_HASH_FILE_REQUIRED", default_value = "false",
          action = clap::ArgAction::Set, value_parser = Setting(parse::boolean))]
    pub external_hash_file_required: bool,
    /// Extra hosts bottle URLs may use.
    #[arg(
        long = "allow-host",
        env = "BOTTLESYNC_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,
    /// Portable Ruby the planner mirrors: `auto` (the two newest versions),
    /// a version (`4.0.6`), or `off`.
    #[arg(long, env = "BOTTLESYNC_PORTABLE_RUBY", default_value = "auto",
          value_parser = Setting(parse::portable_ruby))]
    pub portable_ruby: PortableRubySetting,
}

impl FleetPlanArgs {
    /// `config` planning as these flags say.
    pub fn apply(self, config: FleetConfig) -> Result<FleetConfig, Error> {
        const HASH_FILE: &str = "BOTTLESYNC_EXTERNAL_HASH_FILE";
        let hash_file = self.external_hash_file.as_deref().map(str::trim);
        let external_hash_file = match hash_file.filter(|t| !t.is_empty()) {
            None => None,
            Some(text)
                if ["s3://", "https://", "http://"]
                    .iter()
                    .any(|s| text.starts_with(s)) =>
            {
                Some(Location::parse(HASH_FILE, text, true)?)
            }
            Some(text) => {
                return Err(Error::config(
                    HASH_FILE,
                    format!("{text:?} must be s3:// or https://"),
                ));
            }
        };
        let hosts: Vec<String> = self
            .allow_hosts
            .into_iter()
            .filter(|h| !h.trim().is_empty())
            .collect();
        Ok(FleetConfig {
            tags: self.tags,
            size_threshold_bytes: gb_to_bytes(self.size_threshold_gb),
            lambda_max_bottle_bytes: gb_to_bytes(self.lambda_max_bottle_gb),
            ecs_wake_tasks: (self.ecs_wake_tasks as i32).max(1),
            external_hash_file,
            external_hash_file_required: self.external_hash_file_required,
            portable_ruby: self.portable_ruby,
            ..config.with_api_url(self.api_url, &hosts)
        })
    }
}
