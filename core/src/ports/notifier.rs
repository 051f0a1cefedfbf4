//! Telling people: the `Notifier` port (Slack incoming webhooks are the
//! real adapter, in `bottlesync-adapters`). A Slack outage never fails a
//! run: the adapter retries a few times, then returns the failure; the
//! finisher keeps a summary that was not accepted and posts it again later.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::Result;

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
