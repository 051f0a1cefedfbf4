//! Secrets Manager: where the Slack webhook URL is kept.

use bottlesync_core::error::{Error, Result};

/// The webhook URL in a Secrets Manager secret: the plain string, or JSON
/// with `webhook_url` (or `url`). Errors never include the secret.
pub async fn slack_url_from_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String> {
    let secret = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            Error::config(
                "BOTTLESYNC_SLACK_SECRET_ARN",
                format!(
                    "cannot read {arn}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ),
            )
        })?;
    let text = secret
        .secret_string()
        .ok_or_else(|| {
            Error::config(
                "BOTTLESYNC_SLACK_SECRET_ARN",
                format!("{arn} has no string value"),
            )
        })?
        .trim()
        .to_string();
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            Error::config(
                "BOTTLESYNC_SLACK_SECRET_ARN",
                format!("{arn} is JSON but not an object"),
            )
        })?;
        return ["webhook_url", "url", "slack_webhook_url"]
            .iter()
            .find_map(|k| value.get(k).and_then(|v| v.as_str()).map(String::from))
            .ok_or_else(|| {
                Error::config(
                    "BOTTLESYNC_SLACK_SECRET_ARN",
                    format!("{arn} has no webhook_url field"),
                )
            });
    }
    Ok(text)
}
