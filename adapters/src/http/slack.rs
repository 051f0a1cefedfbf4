//! A Slack incoming webhook, the real `Notifier`. Posts are retried a few
//! times (waiting what Slack's `Retry-After` asks, within a bounded budget),
//! then the failure is returned.

use async_trait::async_trait;
use serde_json::Value;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::ports::notifier::{Notification, Notifier};
use bottlesync_core::retry::RetryPolicy;

/// A Slack incoming webhook. The URL is a secret: it is never logged or
/// shown in errors.
pub struct SlackWebhook {
    http: reqwest::Client,
    url: url::Url,
    retry: RetryPolicy,
}

impl SlackWebhook {
    pub fn new(url: &str, retry: RetryPolicy) -> Result<Self> {
        let url = url::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| {
                Error::config("BOTTLESYNC_SLACK_WEBHOOK_URL", "is not an http(s) URL")
            })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| Error::config("slack client", e.to_string()))?;
        Ok(SlackWebhook { http, url, retry })
    }
}

impl SlackWebhook {
    /// One POST. Only a 2xx counts as accepted. 429 and 5xx are transient,
    /// with the `Retry-After` Slack gives on 429 (and a 503 may give).
    async fn post_once(&self, body: &Value) -> Result<()> {
        let response = self
            .http
            .post(self.url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| Error::transient_fetch("slack webhook", e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::http::registry::parse_retry_after);
        // Slack names the problem in the body (`invalid_blocks`,
        // `no_service`, `channel_is_archived`): keep its first line.
        let answer = response.text().await.unwrap_or_default();
        let answer =
            bottlesync_core::shorten(answer.lines().next().unwrap_or_default().trim(), 200);
        Err(Error::Fetch {
            url: "slack webhook".into(),
            problem: if answer.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {answer}")
            },
            // Any other 4xx is Slack's final word on this message or
            // webhook: posting it again cannot succeed.
            transient: status.is_server_error() || status.as_u16() == 429,
            retry_after,
        })
    }
}

#[async_trait]
impl Notifier for SlackWebhook {
    /// Posts, retrying transient failures `retry.retries` times. A retry
    /// waits at least what `Retry-After` asked; when Slack asks for longer
    /// than `retry.max_retry_after` the post gives up at once instead of
    /// asking again too early (the caller retries later).
    async fn notify(&self, notification: &Notification) -> Result<()> {
        let body = notification.to_slack_json();
        let mut delays = self.retry.delays();
        let mut attempt = 1;
        loop {
            let error = match self.post_once(&body).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            let Some(backoff) = delays.next() else {
                return Err(error);
            };
            let wait = match error.retry_after() {
                Some(asked) if asked > self.retry.max_retry_after => {
                    tracing::warn!(
                        error = %error,
                        retry_after_s = asked.as_secs(),
                        budget_s = self.retry.max_retry_after.as_secs(),
                        title = notification.title(),
                        "Slack asks to wait longer than this post may: giving up for now"
                    );
                    return Err(error);
                }
                Some(asked) => asked,
                None => backoff,
            };
            tracing::warn!(
                error = %error,
                attempt,
                wait_ms = wait.as_millis() as u64,
                title = notification.title(),
                "Slack did not accept the message: posting again"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}
