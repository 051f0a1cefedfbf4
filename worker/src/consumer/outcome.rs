//! What becomes of a message: the [`Disposition`] its shell acts on, and
//! how each way of not storing a bottle becomes one. Something that may go
//! better later is retried (after a backoff, or when a holder's claim can
//! have ended); a bottle out of attempts has failed for good (counted for
//! its run, moved to the DLQ); a body that can never succeed is refused.

use std::time::Duration;

use bottlesync_core::model::message::{BottleMessage, salvage_ids};
use bottlesync_core::ports::queue::QueueMessage;
use bottlesync_core::run::record::FailureNote;
use bottlesync_core::{Error, Result};
use chrono::Utc;

use super::Consumer;

/// What happened to a message, and so what its shell does with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    Stored {
        bytes: u64,
    },
    /// Already in the mirror.
    Skipped,
    /// Counted as failed for its run and moved to the DLQ.
    Failed {
        reason: String,
    },
    /// Refused as invalid and moved to the DLQ.
    Refused {
        reason: String,
    },
    /// Sent again as a fresh message (its receive count starts over).
    Requeued {
        reason: String,
    },
    /// Leave it: SQS delivers it again after `delay`. Every retry says
    /// when: a message left to its visibility timeout would wait 90 minutes
    /// on Lambda (6 x the function timeout) for a hiccup of a second.
    Retry {
        reason: String,
        delay: Duration,
    },
}

impl Disposition {
    /// Whether the message is done with and may be deleted.
    pub fn acknowledges(&self) -> bool {
        !matches!(self, Disposition::Retry { .. })
    }

    /// Whether the bottle was counted for its run here (stored, skipped or
    /// failed for good).
    pub(crate) fn is_counted(&self) -> bool {
        matches!(
            self,
            Disposition::Stored { .. } | Disposition::Skipped | Disposition::Failed { .. }
        )
    }
}

/// Receives kept back from the queue's redrive limit. The consumer gives a
/// bottle up (counts it failed, moves its message to the DLQ itself) this
/// many receives before SQS would: when a worker dies during that last
/// attempt, or its message's visibility runs out, SQS still hands the
/// message to a worker that counts it, instead of dead-lettering it
/// uncounted and leaving its run unable to drain (found by the load runs).
pub const RESERVED_RECEIVES: u32 = 2;

/// How many receives a bottle gets under a redrive limit of
/// `max_receive_count`.
pub fn attempts_allowed(max_receive_count: u32) -> u32 {
    max_receive_count.saturating_sub(RESERVED_RECEIVES).max(1)
}

/// How long a copy of a bottle held elsewhere waits before it looks again.
pub(super) const HOLDER_CHECK: Duration = Duration::from_secs(60);

/// Visibility before the next attempt: `base`, 2x, 4x ... capped at 15 min,
/// plus up to 25% jitter so a burst of failures does not return as a burst.
pub fn backoff_for(base: Duration, receive_count: u32) -> Duration {
    let delay = base
        .saturating_mul(1 << receive_count.saturating_sub(1).min(7))
        .min(Duration::from_secs(900));
    delay + delay.mul_f64(rand::random::<f64>() / 4.0)
}

/// Every message given back to the queue says why, and when it returns.
pub(super) fn log_settlement(message: &QueueMessage, disposition: &Disposition) {
    match disposition {
        Disposition::Retry { reason, delay } => tracing::warn!(
            message_id = %message.message_id,
            receive_count = message.receive_count,
            %reason,
            delay_ms = delay.as_millis() as u64,
            "leaving the message for the queue to deliver again after delay_ms"
        ),
        Disposition::Requeued { reason } => tracing::info!(
            message_id = %message.message_id,
            receive_count = message.receive_count,
            %reason,
            "replaced the message by a fresh copy"
        ),
        _ => {}
    }
}

impl Consumer {
    fn is_last_attempt(&self, message: &QueueMessage) -> bool {
        self.max_receive_count
            .is_some_and(|max| message.receive_count >= attempts_allowed(max))
    }

    /// A transfer that failed (its claim already released): retried after
    /// a backoff, or, on the bottle's last attempt, failed for good.
    ///
    /// Every error counts the same here, whatever its kind: a digest
    /// mismatch or a 404 is retried like a broken connection, and a store
    /// error on the last attempt fails the bottle.
    pub(super) async fn transfer_failed(
        &self,
        message: &BottleMessage,
        received: &QueueMessage,
        error: Error,
    ) -> Result<Disposition> {
        let reason = error.to_string();
        if !self.is_last_attempt(received) {
            tracing::warn!(%reason, attempt = received.receive_count, "attempt failed; SQS will retry");
            return Ok(self.retry_soon(received, reason));
        }
        let job = &message.job;
        let note = FailureNote::for_job(job, reason.clone());
        self.ports
            .finisher
            .ledger
            .count_failed(&message.run_id, &job.sha256, &note)
            .await?;
        tracing::error!(%reason, attempts = received.receive_count, "failed for good");
        Ok(self
            .dead_letter(received, Disposition::Failed { reason })
            .await)
    }

    /// Another copy of the message holds the bottle's claim (a live worker,
    /// or a dead one whose lease runs on). Rather than come back as this
    /// receive (every receive counts towards the queue's redrive limit, and
    /// a 15-minute claim outlasts a few short visibility timeouts), send a
    /// fresh copy that appears when the claim can have expired, or in a
    /// minute at most (a live holder usually finishes sooner: the copy then
    /// finds the bottle stored), and drop this one: a bottle is given up
    /// only after its real attempts. Without a source queue the message is
    /// hidden as long instead.
    pub(super) async fn wait_for_holder(
        &self,
        received: &QueueMessage,
        holder: &str,
        lease_expires: chrono::DateTime<Utc>,
    ) -> Disposition {
        let wait =
            (lease_expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
        let wait = wait.min(self.holder_check) + Duration::from_millis(rand::random_range(0..2000));
        let reason = format!("claimed by {holder} until {lease_expires}");
        if let Some(source) = &self.source {
            match source.send_delayed(received.body.clone(), wait).await {
                Ok(()) => {
                    tracing::info!(%holder, wait_s = wait.as_secs(), "claimed elsewhere: sent a fresh copy for later");
                    return Disposition::Requeued { reason };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not send a delayed copy; hiding this one instead")
                }
            }
        }
        Disposition::Retry {
            reason,
            delay: wait,
        }
    }

    /// Not this worker's turn: retry after `delay`, or, on the last receive,
    /// re-enqueue the body so the redrive policy does not dead-letter a
    /// bottle nobody counted.
    pub(super) async fn retry_or_requeue(
        &self,
        message: &QueueMessage,
        reason: String,
        delay: Duration,
    ) -> Disposition {
        if let (true, Some(source)) = (self.is_last_attempt(message), &self.source) {
            match source.send_all(vec![message.body.clone()]).await {
                Ok(()) => return Disposition::Requeued { reason },
                Err(e) => tracing::warn!(error = %e, "could not re-enqueue"),
            }
        }
        Disposition::Retry { reason, delay }
    }

    /// Tried again after the backoff of this receive: a transient error
    /// (the ledger's answer lost, a store hiccup) is retried in seconds,
    /// not after the queue's visibility timeout.
    pub(crate) fn retry_soon(&self, received: &QueueMessage, reason: String) -> Disposition {
        Disposition::Retry {
            reason,
            delay: backoff_for(self.retry_base, received.receive_count),
        }
    }

    /// A message that can never succeed: counted for its run when it names
    /// one, then moved to the DLQ.
    pub(super) async fn refuse(&self, message: &QueueMessage, reason: String) -> Disposition {
        tracing::error!(message_id = %message.message_id, %reason, "refusing message");
        if let Some((run_id, sha256)) = salvage_ids(&message.body)
            && matches!(self.run_exists(&run_id).await, Ok(true))
        {
            let note = FailureNote::for_invalid_message(&sha256, reason.clone());
            if let Err(e) = self
                .ports
                .finisher
                .ledger
                .count_failed(&run_id, &sha256, &note)
                .await
            {
                return self.retry_soon(message, format!("ledger unavailable: {e}"));
            }
            if let Err(e) = self
                .ports
                .finisher
                .finish_if_due(&run_id, &self.worker_id)
                .await
            {
                tracing::warn!(error = %e, "could not check whether the run drained");
            }
            let disposition = self
                .dead_letter(message, Disposition::Refused { reason })
                .await;
            self.emit_metrics(&run_id, sha256.as_str(), message, &disposition, None);
            return disposition;
        }
        self.dead_letter(message, Disposition::Refused { reason })
            .await
    }

    /// A bottle too slow for this worker (the Lambda deadline came first):
    /// its message goes to the ECS queue as a fresh copy, and this one is
    /// done with. Without an ECS queue it stays for SQS to deliver again.
    pub async fn hand_off_to_ecs(&self, message: &QueueMessage, why: &str) -> Disposition {
        let Some(ecs) = &self.ports.large_queue else {
            return self.retry_soon(
                message,
                format!("{why}; no BOTTLESYNC_LARGE_QUEUE_URL to hand it to: left for SQS to deliver again"),
            );
        };
        match ecs.send_all(vec![message.body.clone()]).await {
            Ok(()) => {
                let reason = format!("{why}: handed to the ECS queue");
                tracing::warn!(message_id = %message.message_id, %reason, "bottle handed off");
                Disposition::Requeued { reason }
            }
            Err(e) => self.retry_soon(
                message,
                format!("{why}; could not hand it to the ECS queue: {e}"),
            ),
        }
    }

    /// Sends the body to the DLQ, so it can be inspected and replayed; without
    /// a DLQ setting the redrive policy moves it after maxReceiveCount.
    async fn dead_letter(&self, message: &QueueMessage, disposition: Disposition) -> Disposition {
        let Some(dlq) = &self.ports.finisher.dlq else {
            return self.retry_soon(
                message,
                format!("{disposition:?} (no BOTTLESYNC_DLQ_URL: left for the redrive policy)"),
            );
        };
        match dlq.send_all(vec![message.body.clone()]).await {
            Ok(()) => disposition,
            Err(e) => self.retry_soon(
                message,
                format!("could not move the message to the DLQ: {e}"),
            ),
        }
    }
}
