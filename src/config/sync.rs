//! `bottlesync sync`'s settings, made from its flags (`sync_args`): any
//! error names the flag and exits 2 with nothing written.

use std::time::Duration;

use bottlesync_adapters::http::registry::HttpSettings;
use bottlesync_core::Error;
use bottlesync_core::model::index::HostPolicy;
use bottlesync_core::model::location::Location;
use bottlesync_core::plan::portable_ruby::PortableRubySetting;
use bottlesync_core::plan::select::TagSelection;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::segments::{SegmentPolicy, parse_size};
use bottlesync_core::store_lease::LEASE_LENGTH;
use url::Url;

use super::sync_args::SyncArgs;

/// `SyncArgs`, checked and turned into what the pipeline uses.
pub struct SyncSettings {
    pub dest: Location,
    pub api_url: Url,
    pub tags: TagSelection,
    pub hash_file: Option<Location>,
    pub date: chrono::NaiveDate,
    pub hosts: HostPolicy,
    /// How the registry client reads (`--read-timeout`).
    pub http: HttpSettings,
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
            parse_size("--segment-size", &args.transfer.segment_size)?,
            args.transfer.connections_per_bottle,
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
            http: HttpSettings {
                read_timeout: Duration::from_secs(args.transfer.read_timeout.max(1)),
                ..HttpSettings::default()
            },
            retry: RetryPolicy {
                retries: args.transfer.retries,
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
