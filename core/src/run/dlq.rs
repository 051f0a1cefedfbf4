//! The dead-letter queue, for operators and the reconcile: what is there
//! (`list`), the receive-and-hold and release a replay works with, and the
//! grouping of dead copies by bottle. The replay itself, which plans a new
//! run, is `bottlesync_planner::replay`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::index::HostPolicy;
use crate::model::message::BottleMessage;
use crate::ports::fleet_ledger::RunBook;
use crate::ports::queue::{Queue, QueueMessage};

/// How long received dead letters stay hidden while a replay works.
const HOLD: Duration = Duration::from_secs(900);

#[derive(Clone, Debug, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub receive_count: u32,
    pub run_id: Option<String>,
    pub bottle: Option<String>,
    pub sha256: Option<String>,
    /// Why it is there: the failure recorded for its run, or why it is invalid.
    pub last_error: Option<String>,
}

/// The DLQ, or the setting that is missing.
pub fn dlq(queue: &Option<std::sync::Arc<dyn Queue>>) -> Result<&dyn Queue> {
    queue
        .as_deref()
        .ok_or_else(|| Error::config("BOTTLESYNC_DLQ_URL", "is not set"))
}

/// Receives up to `max` distinct dead letters and keeps them hidden.
pub async fn take(queue: &dyn Queue, max: usize) -> Result<Vec<QueueMessage>> {
    let mut seen = HashSet::new();
    let mut taken = Vec::new();
    while taken.len() < max {
        let batch = queue
            .receive((max - taken.len()).min(10), Duration::from_secs(1))
            .await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            queue.set_visibility(&message.receipt, HOLD).await?;
            if seen.insert(message.message_id.clone()) {
                taken.push(message);
            }
        }
    }
    Ok(taken)
}

/// Makes held dead letters visible again.
pub async fn release(queue: &dyn Queue, messages: &[QueueMessage]) {
    for message in messages {
        if let Err(e) = queue.set_visibility(&message.receipt, Duration::ZERO).await {
            tracing::warn!(message_id = %message.message_id, error = %e, "could not release a dead letter");
        }
    }
}

/// What is in the DLQ (messages stay there), each letter with the failure
/// its run recorded (`runs`) and its bottle (a body naming hosts outside
/// `hosts` is described as invalid).
pub async fn list(
    queue: &dyn Queue,
    runs: &dyn RunBook,
    hosts: &HostPolicy,
    max: usize,
) -> Result<Vec<DeadLetter>> {
    let messages = take(queue, max).await?;
    let mut letters = Vec::with_capacity(messages.len());
    for message in &messages {
        letters.push(describe(runs, hosts, message).await);
    }
    release(queue, &messages).await;
    Ok(letters)
}

async fn describe(runs: &dyn RunBook, hosts: &HostPolicy, message: &QueueMessage) -> DeadLetter {
    let mut letter = DeadLetter {
        message_id: message.message_id.clone(),
        receive_count: message.receive_count,
        run_id: None,
        bottle: None,
        sha256: None,
        last_error: None,
    };
    match BottleMessage::parse(&message.body, hosts) {
        Ok(parsed) => {
            letter.bottle = Some(parsed.job.label());
            letter.sha256 = Some(parsed.job.sha256.to_string());
            if let Ok(Some(run)) = runs.run(&parsed.run_id).await {
                letter.last_error = run
                    .failures
                    .iter()
                    .find(|f| f.sha256 == parsed.job.sha256.as_str())
                    .map(|f| f.reason.clone());
            }
            letter.run_id = Some(parsed.run_id);
        }
        Err(e) => letter.last_error = Some(format!("invalid message: {e}")),
    }
    letter
}

/// One bottle of a replay: the copy that is sent and the other copies.
pub struct Replayed {
    pub message: QueueMessage,
    pub parsed: BottleMessage,
    pub extra_copies: Vec<QueueMessage>,
}

impl Replayed {
    /// Every dead copy of the bottle, the replayed one first.
    pub fn copies(&self) -> impl Iterator<Item = &QueueMessage> {
        std::iter::once(&self.message).chain(&self.extra_copies)
    }
}

/// Groups dead letters by bottle; the copy sent last is the one replayed.
pub fn by_bottle(valid: Vec<(QueueMessage, BottleMessage)>) -> Vec<Replayed> {
    let mut groups: BTreeMap<String, Replayed> = BTreeMap::new();
    let mut order = Vec::new();
    for (message, parsed) in valid {
        let sha = parsed.job.sha256.to_string();
        match groups.get_mut(&sha) {
            None => {
                order.push(sha.clone());
                groups.insert(
                    sha,
                    Replayed {
                        message,
                        parsed,
                        extra_copies: Vec::new(),
                    },
                );
            }
            Some(group) => {
                if message.sent_at > group.message.sent_at {
                    let older = std::mem::replace(&mut group.message, message);
                    group.parsed = parsed;
                    group.extra_copies.push(older);
                } else {
                    group.extra_copies.push(message);
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|sha| groups.remove(&sha))
        .collect()
}
