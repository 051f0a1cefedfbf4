//! The fleet's settings as the flags and `BOTTLESYNC_*` variables give them
//! (`bottlesync::config::FleetArgs`): typed by clap value parsers, each
//! error naming the variable, an empty value taken as unset (Terraform
//! sets absent variables to ""), and the defaults `FleetConfig::new` has.
//! Flags stand in for the variables: both go through the same parsers.

use std::time::Duration;

use bottlesync::config::FleetArgs;
use bottlesync_core::fleet_config::{FleetConfig, SlackSource};
use bottlesync_core::plan::portable_ruby::PortableRubySetting;
use bottlesync_core::plan::select::TagSelection;
use clap::Parser;

#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    fleet: FleetArgs,
}

/// The config `flags` make (after the bucket and table), or the error.
fn config_of(flags: &[&str]) -> Result<FleetConfig, String> {
    let args = [
        "bottlesync",
        "--bucket",
        "mirror",
        "--ledger-table",
        "ledger",
    ];
    let all = args.iter().chain(flags);
    let settings = Settings::try_parse_from(all).map_err(|e| e.render().to_string())?;
    settings.fleet.config().map_err(|e| e.to_string())
}

#[test]
fn unset_settings_are_the_defaults_of_fleet_config() {
    let config = config_of(&[]).unwrap();
    let defaults = FleetConfig::new("mirror", "ledger");
    assert_eq!(config.size_threshold_bytes, defaults.size_threshold_bytes);
    assert_eq!(
        config.lambda_max_bottle_bytes,
        defaults.lambda_max_bottle_bytes
    );
    assert_eq!(config.tags, defaults.tags);
    assert_eq!(config.slack, SlackSource::None);
    assert_eq!(config.claim_lease, Duration::from_secs(900));
    assert_eq!(config.progress_interval, defaults.progress_interval);
    assert_eq!(config.run_stall, defaults.run_stall);
    assert_eq!(config.planning_lease, defaults.planning_lease);
    assert_eq!(config.segments, defaults.segments);
    assert_eq!(config.ecs_wake_tasks, defaults.ecs_wake_tasks);
    assert_eq!(config.environment, "default");
    assert_eq!(config.portable_ruby, PortableRubySetting::Auto);
    assert_eq!(config.api_url, defaults.api_url);
}

#[test]
fn values_are_typed_and_empty_ones_are_unset() {
    let config = config_of(&[
        "--claim-lease-seconds= 60 ",
        "--size-threshold-gb=0.5",
        "--tags=arm64_sequoia,arm64_tahoe",
        "--lambda-queue-url=",
        "--ecs-cluster=",
        "--progress-interval-seconds=0",
        "--run-stall-minutes=",
        "--prefix=/homebrew/",
        "--external-hash-file-required=yes",
    ])
    .unwrap();
    assert_eq!(config.claim_lease, Duration::from_secs(60));
    assert_eq!(config.size_threshold_bytes, 500_000_000);
    assert_eq!(
        config.tags,
        TagSelection::parse("t", "arm64_sequoia,arm64_tahoe").unwrap()
    );
    assert_eq!(config.queue_url, None);
    assert_eq!(config.ecs, None);
    assert_eq!(config.progress_interval, None);
    assert_eq!(config.run_stall, Duration::from_secs(30 * 60));
    assert_eq!(config.prefix, "homebrew");
    assert!(config.external_hash_file_required);
}

#[test]
fn each_bad_setting_is_named() {
    let cases: [(&[&str], &str); 14] = [
        (&["--bucket="], "BOTTLESYNC_BUCKET"),
        (&["--ledger-table= "], "BOTTLESYNC_LEDGER_TABLE"),
        (&["--size-threshold-gb=-1"], "BOTTLESYNC_SIZE_THRESHOLD_GB"),
        (&["--run-stall-minutes=0"], "BOTTLESYNC_RUN_STALL_MINUTES"),
        (&["--lambda-queue-url=not a url"], "BOTTLESYNC_QUEUE_URL"),
        (
            &["--slack-webhook-url=ftp://x"],
            "BOTTLESYNC_SLACK_WEBHOOK_URL",
        ),
        (&["--prefix=a/../b"], "BOTTLESYNC_PREFIX"),
        (
            &["--external-hash-file=/local"],
            "BOTTLESYNC_EXTERNAL_HASH_FILE",
        ),
        (
            &["--claim-lease-seconds=0"],
            "BOTTLESYNC_CLAIM_LEASE_SECONDS",
        ),
        (
            &["--claim-lease-seconds=15m"],
            "BOTTLESYNC_CLAIM_LEASE_SECONDS",
        ),
        (&["--portable-ruby=latest"], "BOTTLESYNC_PORTABLE_RUBY"),
        (&["--metrics=prometheus"], "BOTTLESYNC_METRICS"),
        (&["--segment-size=big"], "BOTTLESYNC_SEGMENT_SIZE"),
        (&["--ecs-cluster=workers"], "BOTTLESYNC_ECS_SERVICE"),
    ];
    for (flags, name) in cases {
        let err = match flags {
            ["--bucket="] => required_error(&["--bucket=", "--ledger-table=ledger"]),
            ["--ledger-table= "] => required_error(&["--bucket=mirror", "--ledger-table= "]),
            _ => config_of(flags).unwrap_err(),
        };
        assert!(err.contains(name), "{flags:?}: {err}");
    }
}

/// The error of a config whose bucket or table flag is empty.
fn required_error(flags: &[&str]) -> String {
    let args = std::iter::once(&"bottlesync").chain(flags);
    let settings = Settings::try_parse_from(args).unwrap();
    settings.fleet.config().unwrap_err().to_string()
}

#[test]
fn the_webhook_url_is_never_in_an_error() {
    let err = config_of(&["--slack-webhook-url=ftp://secret-token"]).unwrap_err();
    assert!(err.contains("BOTTLESYNC_SLACK_WEBHOOK_URL"), "{err}");
    assert!(!err.contains("secret-token"), "{err}");
}
