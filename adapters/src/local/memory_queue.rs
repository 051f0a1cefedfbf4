//! An in-process queue with the semantics of an SQS standard queue, for unit
//! tests and single-machine load runs (tens of thousands of messages).
//!
//! - At-least-once: a received message is invisible for the queue's
//!   visibility timeout, then visible again until someone deletes it; each
//!   receive counts (`receive_count`, SQS's `ApproximateReceiveCount`).
//! - Dead letters, SQS's rule: a message already received
//!   `max_receive_count` times that would be received again moves to the
//!   dead-letter queue instead. It keeps its message id, sent time and
//!   receive count there (as moto does).
//! - Receipts are unique per receive. A receipt is *current* until the
//!   message is received again. `delete` with a current receipt succeeds,
//!   also after the visibility timeout lapsed as long as nobody received the
//!   message since; with a stale one (the message was received again) it
//!   fails with `ReceiptHandleIsInvalid` and the message stays. Deleting a
//!   message that is already gone (deleted, moved to the dead-letter queue)
//!   succeeds, as in SQS. `set_visibility` needs a current receipt of a
//!   message that is still in flight (`MessageNotInflight` otherwise).
//!   Real SQS (and moto) are laxer: a stale receipt may still delete the
//!   message. Being strict here lets tests see a worker that lost its lease.
//! - `receive` with a `wait` long-polls (at most 20 s, as SQS): it returns as
//!   soon as a message is visible, woken by sends and visibility changes.
//! - Delayed sends (`send_delayed`) wait among the in-flight messages, so
//!   `depth()` counts them as in flight; `depth().delayed` is always 0.
//!
//! Cost: sends and receives are O(log n) per message (a FIFO of visible
//! messages and an ordered set of visibility deadlines), whatever the depth.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::aws::sqs_queue::{
    MAX_BATCH_ENTRIES, MAX_VISIBILITY_SECONDS, MAX_WAIT_SECONDS, check_bodies,
};
use bottlesync_core::error::{Error, Result};
use bottlesync_core::ports::queue::{Queue, QueueDepth, QueueMessage, SendOutcome};

pub struct MemoryQueue {
    name: String,
    visibility_timeout: Duration,
    dead_letter: Option<DeadLetter>,
    state: Mutex<State>,
    /// Woken when a message may have become visible.
    changed: Notify,
}

struct DeadLetter {
    queue: Arc<MemoryQueue>,
    max_receive_count: u32,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    next_receipt: u64,
    messages: HashMap<u64, Stored>,
    /// Visible messages, oldest first. May hold sequence numbers of messages
    /// deleted while visible; those are skipped when popped.
    visible: VecDeque<u64>,
    visible_count: usize,
    /// Messages in flight by the time they become visible again.
    in_flight: BTreeSet<(Instant, u64)>,
}

struct Stored {
    id: String,
    body: String,
    sent_at: DateTime<Utc>,
    receive_count: u32,
    /// The number in the latest receipt handed out, if any.
    receipt: Option<u64>,
    /// When it becomes visible again, while in flight.
    invisible_until: Option<Instant>,
}

struct Receipt {
    seq: u64,
    number: u64,
}

impl MemoryQueue {
    pub fn new(name: impl Into<String>, visibility_timeout: Duration) -> Self {
        MemoryQueue {
            name: name.into(),
            visibility_timeout: visibility_timeout.min(Duration::from_secs(MAX_VISIBILITY_SECONDS)),
            dead_letter: None,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    /// Moves messages received `max_receive_count` times to `queue` when they
    /// would be received once more (an SQS redrive policy).
    pub fn with_dead_letter(mut self, queue: Arc<MemoryQueue>, max_receive_count: u32) -> Self {
        self.dead_letter = Some(DeadLetter {
            queue,
            max_receive_count: max_receive_count.max(1),
        });
        self
    }

    pub fn dead_letter(&self) -> Option<Arc<MemoryQueue>> {
        self.dead_letter.as_ref().map(|d| d.queue.clone())
    }

    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// Messages in the queue, visible or in flight.
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn location(&self) -> String {
        format!("memory queue {}", self.name)
    }

    fn receipt_error(&self, operation: &str, code: &str, problem: String) -> Error {
        Error::queue(self.location(), format!("{operation}: {code}: {problem}"))
    }

    fn parse_receipt(&self, operation: &str, receipt: &str) -> Result<Receipt> {
        let invalid = || {
            self.receipt_error(
                operation,
                "ReceiptHandleIsInvalid",
                format!(
                    "{:?} is not a receipt of this queue",
                    bottlesync_core::shorten(receipt, 80)
                ),
            )
        };
        let mut parts = receipt.rsplitn(3, '#');
        let number = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let seq = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        if parts.next() != Some(self.name.as_str()) {
            return Err(invalid());
        }
        Ok(Receipt { seq, number })
    }

    /// Adds messages that keep their identity (dead letters).
    fn push_stored(&self, moved: Vec<Stored>) {
        if moved.is_empty() {
            return;
        }
        {
            let mut state = self.lock();
            for mut message in moved {
                message.receipt = None;
                message.invisible_until = None;
                state.push_visible(message);
            }
        }
        self.changed.notify_waiters();
    }

    /// Receives what is visible now; also returns when the next in-flight
    /// message becomes visible again.
    fn try_receive(&self, max: usize, now: Instant) -> (Vec<QueueMessage>, Option<Instant>) {
        let mut state = self.lock();
        state.promote_expired(now);
        let mut received = Vec::new();
        let mut dead = Vec::new();
        while received.len() < max {
            let Some(seq) = state.visible.pop_front() else {
                break;
            };
            let State {
                messages,
                in_flight,
                visible_count,
                next_receipt,
                ..
            } = &mut *state;
            let Some(message) = messages.get_mut(&seq) else {
                continue; // deleted while visible
            };
            if message.invisible_until.is_some() {
                continue; // cannot happen: a message is queued once
            }
            *visible_count -= 1;
            if let Some(dead_letter) = &self.dead_letter
                && message.receive_count >= dead_letter.max_receive_count
            {
                dead.extend(messages.remove(&seq));
                continue;
            }
            *next_receipt += 1;
            let until = now + self.visibility_timeout;
            message.receive_count = message.receive_count.saturating_add(1);
            message.receipt = Some(*next_receipt);
            message.invisible_until = Some(until);
            in_flight.insert((until, seq));
            received.push(QueueMessage {
                message_id: message.id.clone(),
                receipt: format!("{}#{seq}#{next_receipt}", self.name),
                body: message.body.clone(),
                receive_count: message.receive_count,
                sent_at: Some(message.sent_at),
            });
        }
        let next_visible = state.in_flight.first().map(|&(until, _)| until);
        // Moved while this queue is still locked, so the two queues' lengths
        // always add up. The dead-letter queue was built before this one
        // (`with_dead_letter` takes it built), so locks cannot form a cycle.
        if let Some(dead_letter) = &self.dead_letter
            && !dead.is_empty()
        {
            tracing::debug!(
                queue = %self.name,
                dead_letter = %dead_letter.queue.name,
                messages = dead.len(),
                "moving messages to the dead-letter queue"
            );
            dead_letter.queue.push_stored(dead);
        }
        (received, next_visible)
    }
}

impl State {
    fn push_visible(&mut self, message: Stored) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.messages.insert(seq, message);
        self.visible.push_back(seq);
        self.visible_count += 1;
    }

    /// Makes messages whose visibility timeout has passed visible again.
    fn promote_expired(&mut self, now: Instant) {
        while let Some(&(until, seq)) = self.in_flight.first()
            && until <= now
        {
            self.in_flight.pop_first();
            if let Some(message) = self.messages.get_mut(&seq) {
                message.invisible_until = None;
                self.visible.push_back(seq);
                self.visible_count += 1;
            }
        }
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn send_each(&self, bodies: Vec<String>) -> SendOutcome {
        if let Err(e) = check_bodies(&self.location(), &bodies) {
            return SendOutcome::none_of(bodies.len(), e);
        }
        if bodies.is_empty() {
            return SendOutcome::default();
        }
        {
            let now = Utc::now();
            let mut state = self.lock();
            state.messages.reserve(bodies.len());
            for body in bodies {
                let id = format!("{}-{}", self.name, state.next_seq);
                state.push_visible(Stored {
                    id,
                    body,
                    sent_at: now,
                    receive_count: 0,
                    receipt: None,
                    invisible_until: None,
                });
            }
        }
        self.changed.notify_waiters();
        SendOutcome::default()
    }

    async fn send_delayed(&self, body: String, delay: Duration) -> Result<()> {
        check_bodies(&self.location(), std::slice::from_ref(&body))?;
        {
            let until = Instant::now() + delay.min(bottlesync_core::ports::queue::MAX_DELAY);
            let mut state = self.lock();
            let seq = state.next_seq;
            state.next_seq += 1;
            let id = format!("{}-{seq}", self.name);
            state.messages.insert(
                seq,
                Stored {
                    id,
                    body,
                    sent_at: Utc::now(),
                    receive_count: 0,
                    receipt: None,
                    invisible_until: Some(until),
                },
            );
            state.in_flight.insert((until, seq));
        }
        self.changed.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>> {
        let max = max.clamp(1, MAX_BATCH_ENTRIES);
        let deadline = Instant::now() + wait.min(Duration::from_secs(MAX_WAIT_SECONDS));
        loop {
            // Registered before looking, so a send in between is not missed.
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let (received, next_visible) = self.try_receive(max, now);
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let until = next_visible.map_or(deadline, |t| t.min(deadline));
            let _ = tokio::time::timeout_at(until, changed).await;
        }
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        let Receipt { seq, number } = self.parse_receipt("DeleteMessage", receipt)?;
        let mut state = self.lock();
        let Some(message) = state.messages.get(&seq) else {
            if seq < state.next_seq {
                return Ok(()); // already deleted or moved to the dead-letter queue
            }
            drop(state);
            return Err(self.receipt_error(
                "DeleteMessage",
                "ReceiptHandleIsInvalid",
                format!("no message was ever received with receipt {receipt:?}"),
            ));
        };
        if message.receipt != Some(number) {
            let problem = format!(
                "receipt {receipt:?} is stale: message {} was received again since (receive {})",
                message.id, message.receive_count
            );
            drop(state);
            return Err(self.receipt_error("DeleteMessage", "ReceiptHandleIsInvalid", problem));
        }
        let message = state.messages.remove(&seq).expect("looked up above");
        match message.invisible_until {
            Some(until) => {
                state.in_flight.remove(&(until, seq));
            }
            // Visible again (timeout lapsed): its queue entry is skipped later.
            None => state.visible_count -= 1,
        }
        Ok(())
    }

    async fn set_visibility(&self, receipt: &str, timeout: Duration) -> Result<()> {
        const OPERATION: &str = "ChangeMessageVisibility";
        let Receipt { seq, number } = self.parse_receipt(OPERATION, receipt)?;
        let timeout = timeout.min(Duration::from_secs(MAX_VISIBILITY_SECONDS));
        let now = Instant::now();
        {
            let mut state = self.lock();
            state.promote_expired(now);
            let problem = match state.messages.get(&seq) {
                None => Some((
                    "ReceiptHandleIsInvalid",
                    format!(
                        "the message of receipt {receipt:?} is gone (deleted or dead-lettered)"
                    ),
                )),
                Some(message) if message.receipt != Some(number) => Some((
                    "ReceiptHandleIsInvalid",
                    format!(
                        "receipt {receipt:?} is stale: message {} was received again since",
                        message.id
                    ),
                )),
                Some(message) if message.invisible_until.is_none() => Some((
                    "MessageNotInflight",
                    format!(
                        "message {} is visible again: its visibility timeout passed",
                        message.id
                    ),
                )),
                Some(_) => None,
            };
            if let Some((code, problem)) = problem {
                drop(state);
                return Err(self.receipt_error(OPERATION, code, problem));
            }
            let message = state.messages.get_mut(&seq).expect("looked up above");
            let old = message.invisible_until.take().expect("in flight");
            state.in_flight.remove(&(old, seq));
            if timeout.is_zero() {
                state.visible.push_back(seq);
                state.visible_count += 1;
            } else {
                let until = now + timeout;
                if let Some(message) = state.messages.get_mut(&seq) {
                    message.invisible_until = Some(until);
                }
                state.in_flight.insert((until, seq));
            }
        }
        // Long polls recompute when the next message becomes visible.
        self.changed.notify_waiters();
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let mut state = self.lock();
        state.promote_expired(Instant::now());
        Ok(QueueDepth {
            visible: state.visible_count as u64,
            in_flight: state.in_flight.len() as u64,
            delayed: 0,
        })
    }

    async fn max_receive_count(&self) -> Result<Option<u32>> {
        Ok(self.dead_letter.as_ref().map(|d| d.max_receive_count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> MemoryQueue {
        MemoryQueue::new("unit", Duration::from_secs(30))
    }

    #[tokio::test]
    async fn receipts_of_other_queues_or_garbage_are_refused() {
        let q = queue();
        q.send_all(vec!["a".into()]).await.unwrap();
        let m = q.receive(1, Duration::ZERO).await.unwrap().remove(0);
        for bad in ["", "x", "unit#1", "other#0#1", "unit#zero#1", "unit#99#1"] {
            let err = q.delete(bad).await.unwrap_err().to_string();
            assert!(err.contains("ReceiptHandleIsInvalid"), "{bad}: {err}");
        }
        assert!(q.set_visibility("other#0#1", Duration::ZERO).await.is_err());
        q.delete(&m.receipt).await.unwrap();
        // Deleting again succeeds (SQS tolerates it too).
        q.delete(&m.receipt).await.unwrap();
        assert!(q.is_empty());
    }

    // Real time with short timeouts: tokio's `test-util` (paused clock) is
    // not enabled for this crate.
    #[tokio::test]
    async fn visibility_deadlines_follow_the_clock() {
        let q = MemoryQueue::new("clock", Duration::from_millis(300));
        q.send_all((0..3).map(|i| i.to_string()).collect())
            .await
            .unwrap();
        let first = q.receive(2, Duration::ZERO).await.unwrap();
        assert_eq!(first.len(), 2);
        q.set_visibility(&first[1].receipt, Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let depth = q.depth().await.unwrap();
        assert_eq!((depth.visible, depth.in_flight), (2, 1));
        let again = q.receive(10, Duration::ZERO).await.unwrap();
        let mut bodies: Vec<_> = again.iter().map(|m| m.body.as_str()).collect();
        bodies.sort();
        assert_eq!(bodies, ["0", "2"]);
        // A lapsed lease cannot be extended...
        tokio::time::sleep(Duration::from_millis(400)).await;
        let err = q
            .set_visibility(&again[0].receipt, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("MessageNotInflight"), "{err}");
        // ...but the message can still be deleted while nobody re-received it.
        q.delete(&again[0].receipt).await.unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.depth().await.unwrap().visible, 1);
    }

    #[tokio::test]
    async fn long_poll_wakes_when_a_message_becomes_visible_again() {
        let q = MemoryQueue::new("poll", Duration::from_millis(300));
        q.send_all(vec!["a".into()]).await.unwrap();
        q.receive(1, Duration::ZERO).await.unwrap();
        let started = Instant::now();
        let got = q.receive(1, Duration::from_secs(20)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, 2);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
    }
}
