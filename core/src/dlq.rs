//! The dead-letter queue, for operators: list what is there, and replay it.
//! A replay receives the dead letters, rewrites them into a new run (so the
//! replayed bottles get their own drain summary, exactly once, instead of
//! counting against a run that already finished), sends them to the queue
//! their size routes them to, and only then deletes them from the DLQ: an
//! interrupted replay can duplicate a message (the ledger dedups it) but
//! never lose one. SQS's StartMessageMoveTask is not used because it moves
//! messages unchanged, with the finished run's id.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fleet_ledger::{FailureNote, Route, RunRecord};
use crate::message::BottleMessage;
use crate::queue::{Queue, QueueMessage};
use crate::services::FleetServices;

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

fn dlq(services: &FleetServices) -> Result<&dyn Queue> {
    services
        .dlq
        .as_deref()
        .ok_or_else(|| Error::config("BOTTLESYNC_DLQ_URL", "is not set"))
}

/// Receives up to `max` distinct dead letters and keeps them hidden.
async fn take(queue: &dyn Queue, max: usize) -> Result<Vec<QueueMessage>> {
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

async fn release(queue: &dyn Queue, messages: &[QueueMessage]) {
    for message in messages {
        if let Err(e) = queue.set_visibility(&message.receipt, Duration::ZERO).await {
            tracing::warn!(message_id = %message.message_id, error = %e, "could not release a dead letter");
        }
    }
}

/// What is in the DLQ (messages stay there).
pub async fn list(services: &FleetServices, max: usize) -> Result<Vec<DeadLetter>> {
    let queue = dlq(services)?;
    let messages = take(queue, max).await?;
    let mut letters = Vec::with_capacity(messages.len());
    for message in &messages {
        letters.push(describe(services, message).await);
    }
    release(queue, &messages).await;
    Ok(letters)
}

async fn describe(services: &FleetServices, message: &QueueMessage) -> DeadLetter {
    let mut letter = DeadLetter {
        message_id: message.message_id.clone(),
        receive_count: message.receive_count,
        run_id: None,
        bottle: None,
        sha256: None,
        last_error: None,
    };
    match BottleMessage::parse(&message.body, &services.config.hosts) {
        Ok(parsed) => {
            letter.bottle = Some(parsed.job.label());
            letter.sha256 = Some(parsed.job.sha256.to_string());
            if let Ok(Some(run)) = services.ledger.run(&parsed.run_id).await {
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

#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplayReport {
    /// The new run the replayed bottles belong to.
    pub run_id: Option<String>,
    pub replayed: usize,
    pub to_ecs: usize,
    /// Invalid messages, left in the DLQ.
    pub left: usize,
    pub dry_run: bool,
}

/// Moves up to `max` dead letters back to work, as one new run.
pub async fn replay(
    services: &FleetServices,
    max: usize,
    dry_run: bool,
    run_id: String,
) -> Result<ReplayReport> {
    let queue = dlq(services)?;
    let messages = take(queue, max).await?;
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for message in messages {
        match BottleMessage::parse(&message.body, &services.config.hosts) {
            Ok(parsed) => valid.push((message, parsed)),
            Err(_) => invalid.push(message),
        }
    }
    let mut report = ReplayReport {
        left: invalid.len(),
        dry_run,
        ..ReplayReport::default()
    };
    release(queue, &invalid).await;
    if dry_run || valid.is_empty() {
        report.replayed = valid.len();
        let held: Vec<QueueMessage> = valid.into_iter().map(|(m, _)| m).collect();
        release(queue, &held).await;
        return Ok(report);
    }
    let config = &services.config;
    let to_ecs =
        |m: &BottleMessage| m.job.size > config.lambda_max_bottle_bytes || services.queue.is_none();
    let now = Utc::now();
    let run = RunRecord::new(
        run_id.clone(),
        now.format("%Y-%m-%d").to_string(),
        valid.len() as u64,
        valid.iter().map(|(_, m)| m.job.size).sum(),
        if valid.iter().all(|(_, m)| to_ecs(m)) {
            Route::Ecs
        } else {
            Route::Lambda
        },
        now,
    );
    services.ledger.create_run(&run).await?;
    report.run_id = Some(run_id.clone());
    for chunk in valid.chunks(10) {
        for (message, parsed) in chunk {
            let mut moved = parsed.clone();
            moved.run_id = run_id.clone();
            let target = if to_ecs(parsed) {
                services.large_queue.as_ref()
            } else {
                services.queue.as_ref()
            };
            let Some(target) = target else {
                return Err(Error::config("BOTTLESYNC_LARGE_QUEUE_URL", "is not set"));
            };
            // Send first, then delete: never lose a bottle.
            if let Err(e) = target.send_all(vec![moved.to_body()]).await {
                let note = FailureNote {
                    name: parsed.job.name.clone(),
                    tag: parsed.job.tag.to_string(),
                    sha256: parsed.job.sha256.to_string(),
                    reason: format!("replay could not enqueue it: {e}"),
                };
                services
                    .ledger
                    .count_failed(&run_id, &parsed.job.sha256, &note)
                    .await?;
                release(queue, std::slice::from_ref(message)).await;
                continue;
            }
            report.to_ecs += to_ecs(parsed) as usize;
            report.replayed += 1;
            queue.delete(&message.receipt).await?;
        }
    }
    services.ledger.seal_run(&run_id, run.expected).await?;
    // When nothing could be enqueued the run has drained already: its
    // summary tells the operator the replay failed.
    crate::drain::finish_run_if_due(services, &run_id, "dlq-replay").await?;
    Ok(report)
}
