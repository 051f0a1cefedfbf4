//! The Lambda SQS consumer: a batch is processed concurrently and only the
//! messages that should be retried are returned, for the binary to report
//! as batch item failures (`ReportBatchItemFailures`; the SQS event types
//! stay in the binary). A panic fails its own message only.
//!
//! Lambda kills a function at its deadline with no chance to clean up, so a
//! bottle still in work [`DEADLINE_MARGIN`] before it is stopped: its upload
//! aborted, its claim released, and its message handed to the ECS queue
//! (the bottle is too slow for Lambda) instead of burning an attempt. A
//! retry delay becomes a ChangeMessageVisibility on that message.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bottlesync_core::ports::queue::QueueMessage;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::consumer::{Consumer, Disposition};

/// How long before the invocation's deadline a bottle in work is stopped:
/// time to abort an upload, release a claim and send one message.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// The limits of one invocation.
#[derive(Clone, Copy, Debug)]
pub struct Invocation {
    /// When Lambda kills the function (`None`: no deadline, as in tests).
    pub deadline: Option<Instant>,
    /// How long before the deadline bottles are stopped.
    pub margin: Duration,
}

impl Invocation {
    /// From the context's deadline, in milliseconds since the epoch.
    pub fn from_deadline_ms(deadline_ms: u64) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Invocation {
            deadline: Some(
                Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)),
            ),
            margin: DEADLINE_MARGIN,
        }
    }

    pub fn unlimited() -> Self {
        Invocation {
            deadline: None,
            margin: DEADLINE_MARGIN,
        }
    }

    /// When bottles still in work must stop.
    fn stop_at(&self) -> Option<Instant> {
        self.deadline.map(|deadline| {
            deadline
                .checked_sub(self.margin)
                .unwrap_or_else(Instant::now)
        })
    }
}

/// The handler of one batch: called by the worker binary's Lambda handler
/// and directly by tests. Returns the ids of the messages to retry.
pub async fn handle_batch(
    consumer: Arc<Consumer>,
    messages: Vec<QueueMessage>,
    invocation: Invocation,
) -> Vec<String> {
    // One token for the whole batch: the deadline stops every bottle.
    let deadline = CancellationToken::new();
    let timer = invocation.stop_at().map(|stop_at| {
        let deadline = deadline.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(stop_at).await;
            deadline.cancel();
        })
    });
    let mut tasks = Vec::new();
    for message in messages {
        let consumer = consumer.clone();
        let deadline = deadline.clone();
        let id = message.message_id.clone();
        tasks.push((
            id,
            tokio::spawn(async move { settle(&consumer, &message, &deadline).await }),
        ));
    }
    let retry = to_retry(tasks).await;
    if let Some(timer) = timer {
        timer.abort();
    }
    retry
}

/// One record: handled, then, if it was stopped by the deadline, handed to
/// the ECS queue; a retry delay is applied to the message itself.
async fn settle(
    consumer: &Consumer,
    message: &QueueMessage,
    deadline: &CancellationToken,
) -> Disposition {
    let disposition = consumer.handle(message, deadline).await;
    match &disposition {
        Disposition::Retry { .. } if deadline.is_cancelled() => {
            consumer
                .hand_off_to_ecs(message, "stopped before the Lambda deadline")
                .await
        }
        Disposition::Retry { delay, .. } => {
            // Lambda would return the message after the queue's visibility
            // timeout (6x the function's); the consumer asked for `delay`.
            if let Some(queue) = &consumer.source
                && let Err(e) = queue.set_visibility(&message.receipt, *delay).await
            {
                tracing::warn!(message_id = %message.message_id, error = %e, "could not set the retry delay; the queue's visibility timeout applies");
            }
            disposition
        }
        _ => disposition,
    }
}

/// The ids of the messages whose handling asks for a retry (or panicked).
async fn to_retry(tasks: Vec<(String, tokio::task::JoinHandle<Disposition>)>) -> Vec<String> {
    let mut retry = Vec::new();
    for (id, task) in tasks {
        let again = match task.await {
            Ok(disposition) => !disposition.acknowledges(),
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "message handler panicked");
                true
            }
        };
        if again {
            retry.push(id);
        }
    }
    retry
}
