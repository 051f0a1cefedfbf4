//! Telling people: the `Notifier` port, Slack incoming webhooks as the real
//! adapter, and the run messages themselves (Block Kit with a plain `text`
//! fallback whose first line is the title). A Slack outage never fails a
//! run: posts are retried a few times (waiting what Slack's `Retry-After`
//! asks, within a bounded budget), then the failure is returned; the drain
//! keeps a summary that was not accepted and posts it again later.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fleet_ledger::{Route, RunRecord};
use crate::retry::RetryPolicy;

pub const TITLE_STARTED: &str = "🚀 Homebrew Bottles Sync Started";
pub const TITLE_COMPLETE: &str = "✅ Homebrew Bottles Sync Complete";
pub const TITLE_FAILED: &str = "❌ Homebrew Bottles Sync Failed";
pub const TITLE_PROGRESS: &str = "⏳ Homebrew Sync Progress";
/// How many failures a summary names.
pub const FAILURES_SHOWN: usize = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Plain text; the first line is the title.
    pub text: String,
    pub blocks: Value,
}

impl Notification {
    pub fn title(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    pub fn to_slack_json(&self) -> Value {
        json!({"text": self.text, "blocks": self.blocks})
    }
}

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, notification: &Notification) -> Result<()>;
}

/// For setups without Slack: the message goes to the log.
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, notification: &Notification) -> Result<()> {
        tracing::info!(notification = %notification.text, "notification (no Slack webhook configured)");
        Ok(())
    }
}

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
            .and_then(crate::registry::parse_retry_after);
        Err(Error::Fetch {
            url: "slack webhook".into(),
            problem: format!("HTTP {status}"),
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

/// Sends, and logs instead of failing: notifications never fail a run.
pub async fn notify_or_log(notifier: &dyn Notifier, notification: &Notification) -> bool {
    match notifier.notify(notification).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, title = notification.title(), "could not post the notification");
            false
        }
    }
}

/// Where things are, for the messages.
#[derive(Clone, Debug)]
pub struct MessageContext {
    pub environment: String,
    /// `s3://bucket/prefix`
    pub mirror: String,
    pub log_group: Option<String>,
    pub dlq: Option<String>,
}

fn fields(pairs: &[(&str, String)]) -> Value {
    json!({
        "type": "section",
        "fields": pairs.iter().map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}:*\n{v}")})).collect::<Vec<_>>(),
    })
}

fn render(title: &str, pairs: &[(&str, String)], extra: Option<String>) -> Notification {
    let mut text = String::from(title);
    for (k, v) in pairs {
        text.push_str(&format!("\n{k}: {v}"));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}}),
    ];
    for chunk in pairs.chunks(10) {
        blocks.push(fields(chunk));
    }
    if let Some(extra) = extra {
        text.push('\n');
        text.push_str(&extra);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": extra}}));
    }
    Notification {
        text,
        blocks: Value::Array(blocks),
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn route_name(route: Route) -> &'static str {
    match route {
        Route::Lambda => "Lambda",
        Route::Ecs => "ECS",
    }
}

pub fn started(run: &RunRecord, ctx: &MessageContext) -> Notification {
    render(
        TITLE_STARTED,
        &[
            ("Environment", ctx.environment.clone()),
            ("Date", run.date.clone()),
            ("Run", run.run_id.clone()),
            ("Bottles", run.expected.to_string()),
            ("Estimated size", human_bytes(run.bytes_planned)),
            ("Workers", route_name(run.route).to_string()),
        ],
        None,
    )
}

/// A progress message of a running run (ECS runs, at most one per
/// interval for the whole fleet): done/total, percent, bytes, and an ETA
/// from the average rate since `started_at`.
pub fn progress(run: &RunRecord, ctx: &MessageContext, now: DateTime<Utc>) -> Notification {
    let done = run.done();
    let percent = (done.min(run.expected) * 100)
        .checked_div(run.expected)
        .unwrap_or(100);
    let elapsed_ms = (now - run.started_at).num_milliseconds().max(0);
    let remaining = run.expected.saturating_sub(done);
    let eta = if remaining == 0 {
        "any moment".to_string()
    } else if done == 0 || elapsed_ms == 0 {
        "unknown (nothing done yet)".to_string()
    } else {
        let seconds = elapsed_ms as f64 / 1000.0 * remaining as f64 / done as f64;
        let seconds = seconds.ceil().min(1e9) as i64;
        let at = now + chrono::Duration::seconds(seconds);
        let clock = if at.date_naive() == now.date_naive() {
            "%H:%M UTC"
        } else {
            "%Y-%m-%d %H:%M UTC"
        };
        format!("{} (about {})", human_duration(seconds), at.format(clock))
    };
    let rate = if elapsed_ms > 0 {
        format!(
            "{}/s",
            human_bytes((run.bytes_stored as f64 * 1000.0 / elapsed_ms as f64) as u64)
        )
    } else {
        "-".to_string()
    };
    render(
        TITLE_PROGRESS,
        &[
            ("Progress", format!("{done}/{} ({percent}%)", run.expected)),
            (
                "Stored / skipped / failed",
                format!("{} / {} / {}", run.stored, run.skipped, run.failed),
            ),
            (
                "Bytes stored",
                format!(
                    "{} of ~{}",
                    human_bytes(run.bytes_stored),
                    human_bytes(run.bytes_planned)
                ),
            ),
            ("Rate", rate),
            ("Elapsed", human_duration(elapsed_ms / 1000)),
            ("ETA", eta),
            ("Environment", ctx.environment.clone()),
            ("Run", run.run_id.clone()),
        ],
        None,
    )
}

/// The drain summary: `Complete`, or `Failed` when any bottle failed.
pub fn summary(
    run: &RunRecord,
    ctx: &MessageContext,
    dlq_depth: Option<u64>,
    now: DateTime<Utc>,
) -> Notification {
    let title = if run.failed > 0 {
        TITLE_FAILED
    } else {
        TITLE_COMPLETE
    };
    let finished = run.finished_at.unwrap_or(now);
    let mut pairs = vec![
        ("Environment", ctx.environment.clone()),
        ("Date", run.date.clone()),
        ("Run", run.run_id.clone()),
        ("New bottles", run.stored.to_string()),
        ("Skipped", run.skipped.to_string()),
        ("Failed", run.failed.to_string()),
        ("Total size", human_bytes(run.bytes_stored)),
        (
            "Duration",
            human_duration((finished - run.started_at).num_seconds()),
        ),
        ("S3 location", format!("{}/{}/", ctx.mirror, run.date)),
    ];
    if let Some(depth) = dlq_depth {
        pairs.push(("DLQ depth", depth.to_string()));
    }
    let extra = (!run.failures.is_empty()).then(|| {
        let mut lines: Vec<String> = run
            .failures
            .iter()
            .take(FAILURES_SHOWN)
            .map(|f| {
                format!(
                    "• {} {} ({}): {}",
                    f.name,
                    f.tag,
                    &f.sha256[..f.sha256.len().min(12)],
                    f.reason
                )
            })
            .collect();
        if run.failed as usize > FAILURES_SHOWN {
            lines.push(format!(
                "… and {} more",
                run.failed as usize - FAILURES_SHOWN
            ));
        }
        let mut look = Vec::new();
        if let Some(group) = &ctx.log_group {
            look.push(format!("logs: {group}"));
        }
        if let Some(dlq) = &ctx.dlq {
            look.push(format!("DLQ: {dlq}"));
        }
        if !look.is_empty() {
            lines.push(format!("Where to look: {}", look.join(", ")));
        }
        format!("*Failures:*\n{}", lines.join("\n"))
    });
    render(title, &pairs, extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet_ledger::{FailureNote, RunState};

    fn run(failed: u64) -> RunRecord {
        RunRecord {
            run_id: "r1".into(),
            date: "2026-11-29".into(),
            expected: 3,
            bytes_planned: 3 << 20,
            route: Route::Lambda,
            started_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            state: RunState::Finishing,
            stored: 3 - failed,
            skipped: 0,
            failed,
            bytes_stored: 2 << 20,
            failures: (0..failed)
                .map(|i| FailureNote {
                    name: format!("bad{i}"),
                    tag: "arm64_tahoe".into(),
                    sha256: "ab".repeat(32),
                    reason: "sha256 mismatch".into(),
                })
                .collect(),
            finished_at: DateTime::from_timestamp(1_800_000_075, 0),
            summary_sent: false,
            sealed: true,
            last_counted_at: None,
            compacted: true,
            summary_attempts: 0,
            summary_error: None,
            planner: None,
            planning_until: None,
            reconciled_at: None,
        }
    }

    fn ctx() -> MessageContext {
        MessageContext {
            environment: "prod".into(),
            mirror: "s3://b/p".into(),
            log_group: Some("/aws/lambda/w".into()),
            dlq: Some("https://sqs/dlq".into()),
        }
    }

    #[test]
    fn titles_and_fields() {
        let ok = summary(&run(0), &ctx(), Some(0), Utc::now());
        assert_eq!(ok.title(), TITLE_COMPLETE);
        assert!(
            ok.text.contains("New bottles: 3") && ok.text.contains("Duration: 1m 15s"),
            "{}",
            ok.text
        );
        assert!(ok.text.contains("S3 location: s3://b/p/2026-11-29/"));
        let failed = summary(&run(1), &ctx(), Some(1), Utc::now());
        assert_eq!(failed.title(), TITLE_FAILED);
        assert!(
            failed.text.contains("bad0 arm64_tahoe")
                && failed.text.contains("DLQ: https://sqs/dlq"),
            "{}",
            failed.text
        );
        assert_eq!(failed.blocks[0]["type"], "header");
        assert_eq!(started(&run(0), &ctx()).title(), TITLE_STARTED);
    }

    #[test]
    fn progress_counts_percent_and_eta() {
        let mut r = run(1);
        r.state = RunState::Running;
        r.route = Route::Ecs;
        r.expected = 40;
        r.stored = 8;
        r.skipped = 1;
        r.failed = 1;
        r.bytes_stored = 3 << 30;
        r.bytes_planned = 12 << 30;
        r.finished_at = None;
        // 10 of 40 done in 5 minutes: 30 more take 15 minutes.
        let now = r.started_at + chrono::Duration::minutes(5);
        let message = progress(&r, &ctx(), now);
        assert_eq!(message.title(), TITLE_PROGRESS);
        assert_eq!(TITLE_PROGRESS, "⏳ Homebrew Sync Progress");
        for needle in [
            "Progress: 10/40 (25%)",
            "Stored / skipped / failed: 8 / 1 / 1",
            "Bytes stored: 3.0 GiB of ~12.0 GiB",
            "Elapsed: 5m 0s",
            "ETA: 15m 0s (about 08:20 UTC)",
            "Environment: prod",
            "Run: r1",
        ] {
            assert!(
                message.text.contains(needle),
                "{needle:?} in\n{}",
                message.text
            );
        }
        assert_eq!(message.blocks[0]["type"], "header");
        assert_eq!(message.blocks[0]["text"]["text"], TITLE_PROGRESS);

        // Nothing done yet, and everything done.
        r.stored = 0;
        r.skipped = 0;
        r.failed = 0;
        let message = progress(&r, &ctx(), now);
        assert!(
            message.text.contains("Progress: 0/40 (0%)"),
            "{}",
            message.text
        );
        assert!(message.text.contains("ETA: unknown"), "{}", message.text);
        r.stored = 40;
        let message = progress(&r, &ctx(), now);
        assert!(message.text.contains("(100%)"), "{}", message.text);
        assert!(message.text.contains("ETA: any moment"), "{}", message.text);
    }
}
