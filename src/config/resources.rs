//! Checks of the names and URLs of the fleet's resources. An empty value
//! is unset (Terraform sets a variable it has no value for to "").

use bottlesync_core::Error;
use bottlesync_core::fleet_config::{EcsService, SlackSource};
use bottlesync_core::model::key::ObjectKey;
use url::Url;

/// A value that is set: trimmed, not empty.
pub fn set(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

pub fn queue_url(value: &Option<String>, name: &str) -> Result<Option<String>, Error> {
    match set(value) {
        Some(v) if !is_http_url(&v) => {
            Err(Error::config(name, format!("{v:?} is not a queue URL")))
        }
        other => Ok(other),
    }
}

fn is_http_url(text: &str) -> bool {
    Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The key prefix, without leading or trailing `/`.
pub fn prefix(value: &Option<String>) -> Result<String, Error> {
    let prefix = set(value).unwrap_or_default().trim_matches('/').to_string();
    if !prefix.is_empty() {
        ObjectKey::parse(&prefix).map_err(|e| Error::config("BOTTLESYNC_PREFIX", e.to_string()))?;
    }
    Ok(prefix)
}

/// The webhook, given directly or as a secret. The URL is a secret itself:
/// never in an error.
pub fn slack(url: &Option<String>, arn: &Option<String>) -> Result<SlackSource, Error> {
    match (set(url), set(arn)) {
        (Some(url), _) if is_http_url(&url) => Ok(SlackSource::Url(url)),
        (Some(_), _) => Err(Error::config(
            "BOTTLESYNC_SLACK_WEBHOOK_URL",
            "is not an http(s) URL",
        )),
        (None, Some(arn)) if arn.starts_with("arn:") => Ok(SlackSource::SecretArn(arn)),
        (None, Some(arn)) => Err(Error::config(
            "BOTTLESYNC_SLACK_SECRET_ARN",
            format!("{arn:?} is not an ARN"),
        )),
        (None, None) => Ok(SlackSource::None),
    }
}

/// The ECS service the planner wakes: both names, or neither.
pub fn ecs(
    cluster: &Option<String>,
    service: &Option<String>,
) -> Result<Option<EcsService>, Error> {
    match (set(cluster), set(service)) {
        (Some(cluster), Some(service)) => Ok(Some(EcsService { cluster, service })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::config(
            "BOTTLESYNC_ECS_SERVICE",
            "is not set (BOTTLESYNC_ECS_CLUSTER is)",
        )),
        (None, Some(_)) => Err(Error::config(
            "BOTTLESYNC_ECS_CLUSTER",
            "is not set (BOTTLESYNC_ECS_SERVICE is)",
        )),
    }
}
