//! The work queue on an Amazon SQS standard queue.
//!
//! Sends go out as `SendMessageBatch` calls (at most 10 entries and 256 KiB
//! of bodies each, several in flight); entries SQS reports as failed for a
//! reason on its side are sent again a few times. Receives ask for the
//! `ApproximateReceiveCount` and `SentTimestamp` system attributes. The
//! redrive to the dead-letter queue is SQS's own (`RedrivePolicy` on the
//! queue); this adapter only reads its `maxReceiveCount`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::DateTime;
use futures::StreamExt;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::ports::queue::{Queue, QueueDepth, QueueMessage, SendOutcome};

/// Entries per `SendMessageBatch` (SQS's limit).
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The largest body we send, in bytes (256 KiB). SQS raised its own limit to
/// 1 MiB in 2025, but queues created before keep `MaximumMessageSize` at
/// 256 KiB and the smaller limit keeps batches and Lambda payloads small.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The largest sum of bodies in one `SendMessageBatch`, in bytes.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// `SendMessageBatch` calls in flight at once.
const BATCHES_IN_FLIGHT: usize = 8;
/// How often entries that failed on SQS's side are sent again.
const ENTRY_RETRIES: u32 = 3;
/// SQS's longest long poll.
pub const MAX_WAIT_SECONDS: u64 = 20;
/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY_SECONDS: u64 = 43_200;

pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, operation: &str, e: impl std::error::Error) -> Error {
        Error::queue(
            &self.url,
            format!("{operation}: {}", DisplayErrorContext(e)),
        )
    }

    /// Sends one batch, retrying the entries SQS failed on its side.
    /// Returns the entries not confirmed and the first reason.
    async fn send_batch(&self, bodies: Vec<String>, abort: &AtomicBool) -> BatchOutcome {
        if abort.load(Ordering::Relaxed) {
            // An earlier batch failed as a whole: do not hammer a queue
            // that is missing or unreachable.
            return BatchOutcome {
                unconfirmed: (0..bodies.len()).collect(),
                reason: None,
            };
        }
        let mut pending: Vec<usize> = (0..bodies.len()).collect();
        let mut outcome = BatchOutcome::default();
        let mut attempt = 0;
        loop {
            let entries: Vec<SendMessageBatchRequestEntry> = match pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(bodies[i].clone())
                        .build()
                })
                .collect()
            {
                Ok(entries) => entries,
                Err(e) => {
                    outcome.fail(pending, format!("invalid batch entry: {e}"));
                    return outcome;
                }
            };
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            let output = match sent {
                Ok(output) => output,
                Err(e) => {
                    // The answer is lost or the call refused: these may
                    // have landed, or not.
                    abort.store(true, Ordering::Relaxed);
                    outcome.fail(pending, DisplayErrorContext(e).to_string());
                    return outcome;
                }
            };
            let succeeded: HashSet<&str> = output.successful().iter().map(|s| s.id()).collect();
            let mut reported: HashSet<&str> = HashSet::new();
            let mut retry = Vec::new();
            let mut retry_reason = None;
            for failure in output.failed() {
                reported.insert(failure.id());
                let reason = format!(
                    "{}{}: {}",
                    failure.code(),
                    if failure.sender_fault() {
                        " (sender fault)"
                    } else {
                        ""
                    },
                    failure.message().unwrap_or("no message")
                );
                match failure.id().parse::<usize>() {
                    // A fault of ours (invalid body, ...) fails again.
                    Ok(i) if i < bodies.len() && !failure.sender_fault() => {
                        retry.push(i);
                        retry_reason.get_or_insert(reason);
                    }
                    Ok(i) if i < bodies.len() => outcome.fail([i], reason),
                    _ => {
                        tracing::warn!(queue = %self.url, id = failure.id(), reason, "SendMessageBatch reported a failure for an entry it was not sent")
                    }
                }
            }
            for &i in &pending {
                let id = i.to_string();
                if !succeeded.contains(id.as_str()) && !reported.contains(id.as_str()) {
                    outcome.fail([i], format!("SQS reported no result for entry {id}"));
                }
            }
            if retry.is_empty() {
                return outcome;
            }
            if attempt == ENTRY_RETRIES {
                outcome.fail(
                    retry,
                    format!(
                        "{} (after {} attempts)",
                        retry_reason.unwrap_or_default(),
                        attempt + 1
                    ),
                );
                return outcome;
            }
            tracing::debug!(
                queue = %self.url,
                entries = retry.len(),
                reason = retry_reason.as_deref().unwrap_or(""),
                "SendMessageBatch entries failed, sending them again"
            );
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            attempt += 1;
            pending = retry;
        }
    }

    fn to_queue_message(&self, message: &Message) -> Result<QueueMessage> {
        let message_id = message.message_id().unwrap_or_default().to_string();
        let receipt = message.receipt_handle().ok_or_else(|| {
            Error::queue(
                &self.url,
                format!("ReceiveMessage: message {message_id:?} came without a receipt handle"),
            )
        })?;
        let attribute = |name: MessageSystemAttributeName| {
            message
                .attributes()
                .and_then(|attributes| attributes.get(&name))
        };
        let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse::<u32>().ok())
            .unwrap_or(1);
        let sent_at = attribute(MessageSystemAttributeName::SentTimestamp)
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis);
        Ok(QueueMessage {
            message_id,
            receipt: receipt.to_string(),
            body: message.body().unwrap_or_default().to_string(),
            receive_count,
            sent_at,
        })
    }
}

#[derive(Default)]
struct BatchOutcome {
    /// Indices into the batch of the entries not confirmed.
    unconfirmed: Vec<usize>,
    reason: Option<String>,
}

impl BatchOutcome {
    fn fail(&mut self, entries: impl IntoIterator<Item = usize>, reason: String) {
        self.unconfirmed.extend(entries);
        self.reason.get_or_insert(reason);
    }
}

/// Why SQS would refuse this body, if it would.
fn body_problem(body: &str) -> Option<String> {
    if body.is_empty() {
        return Some("the body is empty (SQS needs at least 1 character)".into());
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return Some(format!(
            "the body is {} bytes, over the limit of {MAX_MESSAGE_BYTES} bytes (256 KiB)",
            body.len()
        ));
    }
    // SQS accepts #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
    // #x10000 to #x10FFFF (surrogates cannot occur in a Rust string).
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..);
    if let Some(c) = body.chars().find(|&c| !allowed(c)) {
        return Some(format!(
            "the body contains the character U+{:04X}, which SQS does not accept",
            c as u32
        ));
    }
    None
}

/// Refuses the whole send, before anything goes out, if any body is one SQS
/// would refuse (empty, over 256 KiB, or with characters it does not accept).
pub(crate) fn check_bodies(queue: &str, bodies: &[String]) -> Result<()> {
    for (index, body) in bodies.iter().enumerate() {
        if let Some(problem) = body_problem(body) {
            return Err(Error::queue(
                queue,
                format!(
                    "cannot send message {} of {} ({}): {problem}; nothing was sent",
                    index + 1,
                    bodies.len(),
                    bottlesync_core::shorten(body, 60),
                ),
            ));
        }
    }
    Ok(())
}

/// Splits bodies into batches of at most [`MAX_BATCH_ENTRIES`] entries and
/// [`MAX_BATCH_BYTES`] bytes of bodies (every body is at most that large).
fn batches(bodies: Vec<String>) -> Vec<Vec<String>> {
    let mut batches = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    let mut bytes = 0;
    for body in bodies {
        if batch.len() == MAX_BATCH_ENTRIES
            || (!batch.is_empty() && bytes + body.len() > MAX_BATCH_BYTES)
        {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += body.len();
        batch.push(body);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Whole seconds, rounding a fraction up (so 0.5 s does not become 0).
fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn parse_count(url: &str, name: &str, value: Option<&String>) -> Result<u64> {
    match value {
        None => Ok(0),
        Some(value) => value.trim().parse().map_err(|_| {
            Error::queue(
                url,
                format!(
                    "GetQueueAttributes: {name} is {:?}, not a count",
                    bottlesync_core::shorten(value, 40)
                ),
            )
        }),
    }
}

/// `maxReceiveCount` of a redrive policy (a number or a numeric string).
fn redrive_max_receive_count(url: &str, policy: &str) -> Result<Option<u32>> {
    if policy.trim().is_empty() {
        return Ok(None);
    }
    let problem = |what: String| {
        Error::queue(
            url,
            format!(
                "RedrivePolicy {}: {what}",
                bottlesync_core::shorten(policy, 200)
            ),
        )
    };
    let policy: serde_json::Value =
        serde_json::from_str(policy).map_err(|e| problem(format!("not JSON ({e})")))?;
    let count = match policy.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
        None => return Err(problem("no maxReceiveCount".into())),
    };
    count
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)
        .map(Some)
        .ok_or_else(|| problem("maxReceiveCount is not a positive whole number".into()))
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> String {
        self.url.clone()
    }

    async fn send_each(&self, bodies: Vec<String>) -> SendOutcome {
        if let Err(e) = check_bodies(&self.url, &bodies) {
            return SendOutcome::none_of(bodies.len(), e);
        }
        let total = bodies.len();
        let abort = AtomicBool::new(false);
        let mut offset = 0;
        let batches: Vec<(usize, Vec<String>)> = batches(bodies)
            .into_iter()
            .map(|batch| {
                let start = offset;
                offset += batch.len();
                (start, batch)
            })
            .collect();
        let outcomes: Vec<(usize, BatchOutcome)> = futures::stream::iter(batches)
            .map(|(start, batch)| {
                let abort = &abort;
                async move { (start, self.send_batch(batch, abort).await) }
            })
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .collect()
            .await;
        let mut unconfirmed: Vec<usize> = Vec::new();
        let mut reason = None;
        for (start, outcome) in outcomes {
            unconfirmed.extend(outcome.unconfirmed.iter().map(|i| start + i));
            if reason.is_none() {
                reason = outcome.reason;
            }
        }
        if unconfirmed.is_empty() {
            return SendOutcome::default();
        }
        unconfirmed.sort_unstable();
        let skipped = if abort.load(Ordering::Relaxed) {
            " (batches after a failed call were not attempted)"
        } else {
            ""
        };
        let error = Error::queue(
            &self.url,
            format!(
                "SendMessageBatch: {} of {total} messages not confirmed{skipped}; first failure: {}",
                unconfirmed.len(),
                reason.unwrap_or_else(|| "unknown".into())
            ),
        );
        SendOutcome {
            unconfirmed,
            error: Some(error),
        }
    }

    async fn send_delayed(&self, body: String, delay: Duration) -> Result<()> {
        check_bodies(&self.url, std::slice::from_ref(&body))?;
        let seconds = seconds_up(delay.min(bottlesync_core::ports::queue::MAX_DELAY)) as i32;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|err| {
                Error::queue(
                    &self.url,
                    format!(
                        "SendMessage (delayed {seconds} s): {}",
                        DisplayErrorContext(&err)
                    ),
                )
            })?;
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>> {
        let max = max.clamp(1, MAX_BATCH_ENTRIES) as i32;
        let wait = seconds_up(wait).min(MAX_WAIT_SECONDS) as i32;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            // The long poll waits on top of the attempt timeout.
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(
                crate::aws::long_poll_timeouts(
                    self.client.config().timeout_config(),
                    Duration::from_secs(wait as u64),
                ),
            ))
            .send()
            .await
            .map_err(|e| self.err("ReceiveMessage", e))?;
        output
            .messages()
            .iter()
            .map(|message| self.to_queue_message(message))
            .collect()
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| self.err("DeleteMessage", e))?;
        Ok(())
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<Vec<String>> {
        let mut failed = Vec::new();
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.err("DeleteMessageBatch", e))?;
            failed.extend(
                output
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().parse::<usize>().ok())
                    .filter_map(|i| chunk.get(i).cloned()),
            );
        }
        Ok(failed)
    }

    async fn set_visibility(&self, receipt: &str, timeout: Duration) -> Result<()> {
        let seconds = seconds_up(timeout).min(MAX_VISIBILITY_SECONDS) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| self.err("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| self.err("GetQueueAttributes", e))?;
        let attributes = output.attributes();
        let get = |name: QueueAttributeName| {
            let value = attributes.and_then(|a| a.get(&name));
            parse_count(&self.url, name.as_str(), value)
        };
        Ok(QueueDepth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
            delayed: get(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
        })
    }

    async fn max_receive_count(&self) -> Result<Option<u32>> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| self.err("GetQueueAttributes", e))?;
        match output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        {
            None => Ok(None),
            Some(policy) => redrive_max_receive_count(&self.url, policy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_entry_and_byte_limits() {
        let small: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        let sizes: Vec<usize> = batches(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);

        let big = "x".repeat(100 * 1024);
        let sizes: Vec<usize> = batches(vec![big.clone(); 5]).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);

        // Exactly at the limit fits; one byte more does not.
        let half = "h".repeat(MAX_BATCH_BYTES / 2);
        let mixed = vec![half.clone(), half.clone(), "a".into(), half.clone(), half];
        let sizes: Vec<usize> = batches(mixed).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let full = "y".repeat(MAX_MESSAGE_BYTES);
        let mixed = vec!["a".to_string(), full.clone(), full];
        let sizes: Vec<usize> = batches(mixed).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(batches(Vec::new()).is_empty());
    }

    #[test]
    fn bodies_sqs_would_refuse_are_named() {
        assert!(body_problem("{\"name\":\"wget\"}").is_none());
        assert!(body_problem(&"z".repeat(MAX_MESSAGE_BYTES)).is_none());
        let too_big = body_problem(&"z".repeat(MAX_MESSAGE_BYTES + 1)).unwrap();
        assert!(too_big.contains("262145 bytes"), "{too_big}");
        assert!(body_problem("").unwrap().contains("empty"));
        assert!(body_problem("a\u{0}b").unwrap().contains("U+0000"));
        assert!(body_problem("a\u{FFFE}b").unwrap().contains("U+FFFE"));
        assert!(body_problem("tab\tcr\rlf\n emoji 🍺").is_none());

        let err = check_bodies("q", &["ok".into(), String::new()]).unwrap_err();
        assert!(err.to_string().contains("message 2 of 2"), "{err}");
    }

    #[test]
    fn redrive_policy_count_is_a_number_or_a_string() {
        let arn = "arn:aws:sqs:us-east-1:123456789012:dlq";
        let number = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":5}}"#);
        let string = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"7"}}"#);
        assert_eq!(redrive_max_receive_count("q", &number).unwrap(), Some(5));
        assert_eq!(redrive_max_receive_count("q", &string).unwrap(), Some(7));
        assert_eq!(redrive_max_receive_count("q", "").unwrap(), None);
        assert!(redrive_max_receive_count("q", "{}").is_err());
        assert!(redrive_max_receive_count("q", "nope").is_err());
        assert!(redrive_max_receive_count("q", r#"{"maxReceiveCount":"x"}"#).is_err());
    }

    #[test]
    fn fractions_of_a_second_round_up() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_millis(1500)), 2);
        assert_eq!(seconds_up(Duration::from_secs(3)), 3);
    }
}
