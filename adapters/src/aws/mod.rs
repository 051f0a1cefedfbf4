//! AWS SDK clients, configured the same way for the CLI, Lambda and ECS.
//! `AWS_ENDPOINT_URL` (e.g. moto_server in tests) switches S3 to path-style
//! addressing, which S3-compatible endpoints need.
//!
//! Every call has a connect timeout, a timeout per attempt and one for the
//! whole operation with its retries, so that an answer that never comes
//! becomes a timeout the SDK retries (standard mode, 3 attempts; the SDK's
//! own `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE` still apply), never a hang.
//! The defaults suit production; tests shorten them (`BOTTLESYNC_AWS_*`,
//! `BOTTLESYNC_S3_*` timeouts, in seconds, fractions allowed).

pub mod dynamo_ledger;
pub mod ecs_capacity;
mod s3_multipart;
mod s3_parts;
pub mod s3_store;
pub mod secrets;
pub mod sqs_queue;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::RequestChecksumCalculation;

use bottlesync_core::error::{Error, Result};

/// Connecting to any AWS endpoint.
pub const CONNECT_TIMEOUT: (&str, f64) = ("BOTTLESYNC_AWS_CONNECT_TIMEOUT_SECONDS", 5.0);
/// One attempt of a DynamoDB, SQS, ... call (an SQS long poll adds its wait).
pub const ATTEMPT_TIMEOUT: (&str, f64) = ("BOTTLESYNC_AWS_ATTEMPT_TIMEOUT_SECONDS", 15.0);
/// A DynamoDB, SQS, ... call with all its attempts and backoff.
pub const OPERATION_TIMEOUT: (&str, f64) = ("BOTTLESYNC_AWS_OPERATION_TIMEOUT_SECONDS", 60.0);
/// One attempt of an S3 call: a whole part (8 MiB and up) is sent in one.
pub const S3_ATTEMPT_TIMEOUT: (&str, f64) = ("BOTTLESYNC_S3_ATTEMPT_TIMEOUT_SECONDS", 300.0);
/// An S3 call with all its attempts and backoff.
pub const S3_OPERATION_TIMEOUT: (&str, f64) = ("BOTTLESYNC_S3_OPERATION_TIMEOUT_SECONDS", 900.0);

/// The timeouts of every AWS call, from the environment.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
    pub s3_attempt: Duration,
    pub s3_operation: Duration,
}

impl AwsTimeouts {
    pub fn from_env() -> Result<AwsTimeouts> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From `lookup` (a variable's value by name); a missing or empty one
    /// takes its default, a malformed one is an error that names it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<AwsTimeouts> {
        let seconds = |(name, default): (&str, f64)| -> Result<Duration> {
            let Some(text) = lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            else {
                return Ok(Duration::from_secs_f64(default));
            };
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0 && *v <= 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    Error::config(
                        name,
                        format!("{text:?} is not a number of seconds between 0 and 86400"),
                    )
                })
        };
        let timeouts = AwsTimeouts {
            connect: seconds(CONNECT_TIMEOUT)?,
            attempt: seconds(ATTEMPT_TIMEOUT)?,
            operation: seconds(OPERATION_TIMEOUT)?,
            s3_attempt: seconds(S3_ATTEMPT_TIMEOUT)?,
            s3_operation: seconds(S3_OPERATION_TIMEOUT)?,
        };
        for ((operation, operation_name), (attempt, attempt_name)) in [
            (
                (timeouts.operation, OPERATION_TIMEOUT.0),
                (timeouts.attempt, ATTEMPT_TIMEOUT.0),
            ),
            (
                (timeouts.s3_operation, S3_OPERATION_TIMEOUT.0),
                (timeouts.s3_attempt, S3_ATTEMPT_TIMEOUT.0),
            ),
        ] {
            if operation < attempt {
                return Err(Error::config(
                    operation_name,
                    format!(
                        "{} s is shorter than {attempt_name} ({} s): a timed-out attempt could never be retried",
                        operation.as_secs_f64(),
                        attempt.as_secs_f64()
                    ),
                ));
            }
        }
        Ok(timeouts)
    }

    /// For every client but S3's.
    pub fn sdk(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    pub fn s3(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.s3_attempt)
            .operation_timeout(self.s3_operation)
            .build()
    }
}

/// The timeouts of a long poll that waits up to `wait` for messages: each
/// attempt may take the wait on top of `config`'s attempt timeout. Only the
/// attempt and operation timeouts are set (the SDK merges the rest).
pub fn long_poll_timeouts(config: Option<&TimeoutConfig>, wait: Duration) -> TimeoutConfig {
    let mut builder = TimeoutConfig::builder();
    if let Some(attempt) = config.and_then(TimeoutConfig::operation_attempt_timeout) {
        builder = builder.operation_attempt_timeout(attempt + wait);
    }
    if let Some(operation) = config.and_then(TimeoutConfig::operation_timeout) {
        // Room for three waits: the standard mode's attempts.
        builder = builder.operation_timeout(operation + wait * 3);
    }
    builder.build()
}

/// The SDK settings of every client: the default chain (credentials,
/// region, endpoint, retry mode) with the timeouts above.
pub async fn sdk_config() -> Result<SdkConfig> {
    Ok(loader(&AwsTimeouts::from_env()?).load().await)
}

fn loader(timeouts: &AwsTimeouts) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts.sdk())
}

fn custom_endpoint(service_variable: &str) -> bool {
    ["AWS_ENDPOINT_URL", service_variable]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|value| !value.is_empty()))
}

pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    // Validated by `sdk_config` already; a bad value here means the
    // environment changed in between, and the defaults are safe.
    let timeouts = AwsTimeouts::from_env()
        .unwrap_or_else(|_| AwsTimeouts::from_lookup(|_| None).expect("the defaults are valid"));
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint("AWS_ENDPOINT_URL_S3"))
        // Checksums only where S3 requires them: aws-chunked bodies are
        // rejected by many S3-compatible servers. Bottles are verified by
        // their sha256 before commit, and single puts carry it.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .timeout_config(timeouts.s3())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<AwsTimeouts> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AwsTimeouts::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn production_defaults_and_overrides() {
        let defaults = with(&[]).unwrap();
        assert_eq!(defaults.connect, Duration::from_secs(5));
        assert_eq!(defaults.attempt, Duration::from_secs(15));
        assert_eq!(defaults.operation, Duration::from_secs(60));
        assert_eq!(defaults.s3_attempt, Duration::from_secs(300));
        assert_eq!(defaults.s3_operation, Duration::from_secs(900));
        let sdk = defaults.sdk();
        assert_eq!(sdk.connect_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(
            sdk.operation_attempt_timeout(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(sdk.operation_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(
            defaults.s3().operation_attempt_timeout(),
            Some(Duration::from_secs(300))
        );

        let short = with(&[
            (ATTEMPT_TIMEOUT.0, "1.5"),
            (OPERATION_TIMEOUT.0, " 6 "),
            (CONNECT_TIMEOUT.0, ""),
        ])
        .unwrap();
        assert_eq!(short.attempt, Duration::from_millis(1500));
        assert_eq!(short.operation, Duration::from_secs(6));
        assert_eq!(short.connect, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_are_errors_that_name_the_setting() {
        for (vars, name) in [
            (vec![(ATTEMPT_TIMEOUT.0, "soon")], ATTEMPT_TIMEOUT.0),
            (vec![(CONNECT_TIMEOUT.0, "0")], CONNECT_TIMEOUT.0),
            (vec![(S3_ATTEMPT_TIMEOUT.0, "-3")], S3_ATTEMPT_TIMEOUT.0),
            (
                vec![(S3_OPERATION_TIMEOUT.0, "inf")],
                S3_OPERATION_TIMEOUT.0,
            ),
            (
                vec![(ATTEMPT_TIMEOUT.0, "30"), (OPERATION_TIMEOUT.0, "20")],
                OPERATION_TIMEOUT.0,
            ),
        ] {
            let err = with(&vars).unwrap_err().to_string();
            assert!(err.contains(name), "{vars:?}: {err}");
        }
    }

    #[test]
    fn a_long_poll_attempt_outlasts_its_wait() {
        let base = with(&[]).unwrap().sdk();
        let poll = long_poll_timeouts(Some(&base), Duration::from_secs(20));
        assert_eq!(
            poll.operation_attempt_timeout(),
            Some(Duration::from_secs(35))
        );
        assert_eq!(poll.operation_timeout(), Some(Duration::from_secs(120)));
        assert_eq!(poll.connect_timeout(), None, "left to the client's");
    }

    #[tokio::test]
    async fn clients_retry_in_standard_mode_with_three_attempts_and_time_out() {
        // What the loader gives without AWS_MAX_ATTEMPTS / AWS_RETRY_MODE
        // (not set where the tests run).
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_some()
            || std::env::var_os("AWS_RETRY_MODE").is_some()
        {
            return;
        }
        // The region given, so that loading asks no metadata endpoint.
        let config = loader(&with(&[]).unwrap())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let retry = config.retry_config().expect("a retry config");
        assert_eq!(retry.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(retry.max_attempts(), 3);
        let timeouts = config.timeout_config().expect("timeouts");
        assert!(timeouts.operation_attempt_timeout().is_some());
        assert!(timeouts.operation_timeout().is_some());
        assert!(timeouts.connect_timeout().is_some());
        let s3 = s3_client(&config);
        assert!(
            s3.config()
                .timeout_config()
                .and_then(TimeoutConfig::operation_attempt_timeout)
                .is_some()
        );
    }
}
