//! The work queue port: SQS in the cloud (`sqs_queue`), an in-process queue
//! with the same semantics for tests and single-machine load runs
//! (`memory_queue`). Messages are at-least-once; consumers deduplicate
//! through the ledger.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// The longest delay a sent message can have (SQS's `DelaySeconds`).
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    /// Handle for delete / visibility changes of this receive.
    pub receipt: String,
    pub body: String,
    /// How many times it has been received, this time included
    /// (`ApproximateReceiveCount`).
    pub receive_count: u32,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Message counts of a queue (approximate, as SQS reports them).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl QueueDepth {
    pub fn is_empty(&self) -> bool {
        self.visible == 0 && self.in_flight == 0 && self.delayed == 0
    }
}

/// What a send of several bodies came to.
#[derive(Debug, Default)]
pub struct SendOutcome {
    /// The bodies (their indices) SQS did not confirm: refused, never
    /// attempted, or in a batch whose answer was lost (which may have
    /// landed all the same).
    pub unconfirmed: Vec<usize>,
    /// Why, naming how many of how many; `None` when all were confirmed.
    pub error: Option<Error>,
}

impl SendOutcome {
    /// Nothing of `count` bodies confirmed, for `error`.
    pub fn none_of(count: usize, error: Error) -> Self {
        SendOutcome {
            unconfirmed: (0..count).collect(),
            error: Some(error),
        }
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// The queue's URL or name, for messages.
    fn name(&self) -> String;

    /// Sends every body (in batches of 10, several batches at once) and
    /// says which SQS did not confirm.
    async fn send_each(&self, bodies: Vec<String>) -> SendOutcome;

    /// Sends every body. Fails if any message was not confirmed, naming
    /// how many.
    async fn send_all(&self, bodies: Vec<String>) -> Result<()> {
        match self.send_each(bodies).await.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Up to `max` (1 to 10) messages, waiting up to `wait` for the first.
    /// Sends one body that becomes visible only after `delay`: at most
    /// [`MAX_DELAY`] (SQS's limit); a longer delay is cut to it.
    async fn send_delayed(&self, body: String, delay: Duration) -> Result<()>;

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>>;

    async fn delete(&self, receipt: &str) -> Result<()>;

    /// Deletes up to 10 messages in one request where the queue can; the
    /// receipts whose delete failed come back (they will be redelivered,
    /// which the ledger makes harmless).
    async fn delete_batch(&self, receipts: &[String]) -> Result<Vec<String>> {
        let mut failed = Vec::new();
        for receipt in receipts {
            if self.delete(receipt).await.is_err() {
                failed.push(receipt.clone());
            }
        }
        Ok(failed)
    }

    /// Sets how long until the message becomes visible again (0: now).
    async fn set_visibility(&self, receipt: &str, timeout: Duration) -> Result<()>;

    async fn depth(&self) -> Result<QueueDepth>;

    /// The redrive policy's `maxReceiveCount`, when the queue has a DLQ.
    async fn max_receive_count(&self) -> Result<Option<u32>>;
}
