//! The dead-letter queue, for operators: list what is there, and replay it.
//! A replay receives the dead letters, rewrites them into a new run (so the
//! replayed bottles get their own drain summary, exactly once, instead of
//! counting against a run that already finished), sends them to the queue
//! their size routes them to, and only then deletes them from the DLQ: an
//! interrupted replay can duplicate a message (the ledger dedups it) but
//! never lose one. SQS's StartMessageMoveTask is not used because it moves
//! messages unchanged, with the finished run's id.
//!
//! The ledger counts a run per bottle, so a replay does too: several dead
//! copies of one bottle (a weekly re-plan of a broken bottle, a lost ack)
//! are sent once (the newest copy), and the other copies are deleted once
//! that one is sent. The run is created unsealed with its manifest written
//! first, and sealed with the number of messages actually sent: a letter
//! whose send failed goes back to the DLQ for the next replay and is not
//! part of the run.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::message::BottleMessage;
use crate::ports::fleet_ledger::{Route, RunRecord};
use crate::ports::queue::{Queue, QueueMessage};
use crate::run::manifest::{ManifestMessage, RunManifest};
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
    /// Bottles sent to a work queue (one message each): the run's expected count.
    pub replayed: usize,
    pub to_ecs: usize,
    /// Invalid messages, left in the DLQ.
    pub left: usize,
    /// Extra dead copies of a replayed bottle, deleted from the DLQ once its
    /// one copy was sent (or, in a dry run, that would be).
    pub duplicates: usize,
    /// Letters whose send failed: back in the DLQ, not part of the run; the
    /// next replay picks them up.
    pub not_sent: Vec<LetterProblem>,
    /// Letters sent whose delete from the DLQ failed: they will be replayed
    /// again, which the ledger makes harmless.
    pub not_deleted: Vec<LetterProblem>,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct LetterProblem {
    pub message_id: String,
    pub bottle: String,
    pub sha256: String,
    pub problem: String,
}

/// One bottle of a replay: the copy that is sent and the other copies.
struct Replayed {
    message: QueueMessage,
    parsed: BottleMessage,
    extra_copies: Vec<QueueMessage>,
}

/// Groups dead letters by bottle; the copy sent last is the one replayed.
fn by_bottle(valid: Vec<(QueueMessage, BottleMessage)>) -> Vec<Replayed> {
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

fn letter_problem(
    message: &QueueMessage,
    parsed: &BottleMessage,
    problem: String,
) -> LetterProblem {
    LetterProblem {
        message_id: message.message_id.clone(),
        bottle: parsed.job.label(),
        sha256: parsed.job.sha256.to_string(),
        problem,
    }
}

/// Moves up to `max` dead letters back to work, as one new run: one message
/// per bottle. Fails, changing nothing, when the run cannot be set up (a
/// queue not configured, the manifest or the run not written), and when not
/// one letter could be sent (they all stay in the DLQ).
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
    let bottles = by_bottle(valid);
    report.duplicates = bottles.iter().map(|b| b.extra_copies.len()).sum();
    let held = |bottles: &[Replayed]| -> Vec<QueueMessage> {
        bottles
            .iter()
            .flat_map(|b| std::iter::once(&b.message).chain(&b.extra_copies))
            .cloned()
            .collect()
    };
    if dry_run || bottles.is_empty() {
        report.replayed = bottles.len();
        release(queue, &held(&bottles)).await;
        return Ok(report);
    }
    let config = &services.config;
    let to_ecs =
        |m: &BottleMessage| m.job.size > config.lambda_max_bottle_bytes || services.queue.is_none();
    // Everything that can refuse the replay as a whole comes before the run.
    let mut manifest = Vec::with_capacity(bottles.len());
    for bottle in &bottles {
        let route = match target(services, to_ecs(&bottle.parsed)) {
            Ok((route, _)) => route,
            Err(e) => {
                release(queue, &held(&bottles)).await;
                return Err(e);
            }
        };
        let mut moved = bottle.parsed.clone();
        moved.run_id = run_id.clone();
        manifest.push(ManifestMessage {
            route,
            body: moved.to_body(),
        });
    }
    let now = Utc::now();
    let run = RunRecord::new(
        run_id.clone(),
        now.format("%Y-%m-%d").to_string(),
        bottles.len() as u64,
        bottles.iter().map(|b| b.parsed.job.size).sum(),
        if bottles.iter().all(|b| to_ecs(&b.parsed)) {
            Route::Ecs
        } else {
            Route::Lambda
        },
        now,
    );
    let set_up = async {
        RunManifest::new(run_id.clone(), manifest.clone())
            .write(services.store.as_ref())
            .await?;
        services.ledger.create_run(&run).await
    };
    if let Err(e) = set_up.await {
        release(queue, &held(&bottles)).await;
        return Err(e);
    }
    report.run_id = Some(run_id.clone());

    // From here on nothing returns early: the run must be sealed.
    for (bottle, planned) in bottles.iter().zip(&manifest) {
        let (_, target) = target(services, to_ecs(&bottle.parsed)).expect("checked above");
        // Send first, then delete: never lose a bottle.
        if let Err(e) = target.send_all(vec![planned.body.clone()]).await {
            tracing::warn!(
                run_id,
                message_id = %bottle.message.message_id,
                bottle = %bottle.parsed.job.label(),
                error = %e,
                "replay could not send the dead letter: it goes back to the DLQ for the next replay"
            );
            report.not_sent.push(letter_problem(
                &bottle.message,
                &bottle.parsed,
                e.to_string(),
            ));
            let mut copies = vec![bottle.message.clone()];
            copies.extend(bottle.extra_copies.iter().cloned());
            release(queue, &copies).await;
            continue;
        }
        report.to_ecs += to_ecs(&bottle.parsed) as usize;
        report.replayed += 1;
        for copy in std::iter::once(&bottle.message).chain(&bottle.extra_copies) {
            if let Err(e) = queue.delete(&copy.receipt).await {
                tracing::warn!(
                    run_id,
                    message_id = %copy.message_id,
                    bottle = %bottle.parsed.job.label(),
                    error = %e,
                    "replayed, but could not delete the dead letter: it will be replayed again (the ledger dedups it)"
                );
                report
                    .not_deleted
                    .push(letter_problem(copy, &bottle.parsed, e.to_string()));
            }
        }
    }
    seal(services, &run_id, report.replayed as u64).await?;
    if report.replayed == 0 {
        // Nothing is out there for this run: end it without a summary (it
        // has nothing to report) and tell the operator.
        if services
            .ledger
            .begin_finish(&run_id, "dlq-replay", crate::run::finish::FINISH_LEASE)
            .await?
        {
            services.ledger.finish(&run_id, "dlq-replay").await?;
        }
        let first = report
            .not_sent
            .first()
            .map(|p| p.problem.clone())
            .unwrap_or_default();
        return Err(Error::queue(
            queue.name(),
            format!(
                "replay could not send any of the {} dead letters (first error: {first}); they are still in the DLQ",
                report.not_sent.len()
            ),
        ));
    }
    // The workers may have drained it already.
    crate::run::finish::finish_run_if_due(services, &run_id, "dlq-replay").await?;
    Ok(report)
}

/// The work queue a replayed bottle goes to, and its route.
fn target(services: &FleetServices, to_ecs: bool) -> Result<(Route, &dyn Queue)> {
    let (route, queue, setting) = if to_ecs {
        (
            Route::Ecs,
            &services.large_queue,
            "BOTTLESYNC_LARGE_QUEUE_URL",
        )
    } else {
        (Route::Lambda, &services.queue, "BOTTLESYNC_QUEUE_URL")
    };
    match queue {
        Some(queue) => Ok((route, queue.as_ref())),
        None => Err(Error::config(setting, "is not set")),
    }
}

/// Seals the replay's run with what was sent, trying a few times: an
/// unsealed run cannot finish (the reconcile would have to).
async fn seal(services: &FleetServices, run_id: &str, sent: u64) -> Result<()> {
    let mut attempt = 1;
    loop {
        match services.ledger.seal_run(run_id, sent).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                tracing::warn!(run_id, attempt, error = %e, "could not seal the replay's run: trying again");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                attempt += 1;
            }
            Err(e) => {
                tracing::error!(run_id, sent, error = %e, "could not seal the replay's run: it cannot finish until the reconcile seals it");
                return Err(e);
            }
        }
    }
}
