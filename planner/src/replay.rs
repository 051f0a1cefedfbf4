//! `bottlesync dlq replay`: dead letters back to work as a new run. A
//! replay receives the dead letters, rewrites them into a new run (so the
//! replayed bottles get their own drain summary, exactly once, instead of
//! counting against a run that already finished), sends them to the queue
//! their size routes them to (`route_for`, the planner's rule, without the
//! run threshold), and only then deletes them from the DLQ: an
//! interrupted replay can duplicate a message (the ledger dedups it) but
//! never lose one. SQS's StartMessageMoveTask is not used because it moves
//! messages unchanged, with the finished run's id.
//!
//! The ledger counts a run per bottle, so a replay does too: several dead
//! copies of one bottle (a weekly re-plan of a broken bottle, a lost ack)
//! are sent once (the newest copy), and the other copies are deleted once
//! that one is sent. The run is sent as every run is
//! ([`bottlesync_core::run::dispatch`]: opened under a planning lease,
//! manifest, chunks, sealed by the lease's holder), without queued marks
//! (see `RunDispatch::open`). A letter whose send was not confirmed stays in the DLQ
//! for the next replay, and its bottle stays in the run: the answer may
//! have been lost after SQS took the message, which a worker then counts.

use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::plan::route::{Route, route_for};
use bottlesync_core::ports::queue::QueueMessage;
use bottlesync_core::run::dispatch::{Outgoing, RunDispatch};
use bottlesync_core::run::dlq::{Replayed, by_bottle, dlq, release, take};
use bottlesync_core::run::manifest::ManifestMessage;
use bottlesync_core::run::reconcile::Reconciler;
use bottlesync_core::run::record::RunRecord;
use bottlesync_core::{Error, Result, Sha256Digest};
use chrono::Utc;
use serde::Serialize;

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
    /// Letters whose send was not confirmed: their bottles are in the run
    /// (a lost answer may hide a send that landed; the reconcile sends
    /// again whatever never arrived), and the letters stay in the DLQ for
    /// the next replay (the ledger counts a bottle once).
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

/// What a replay touches: the reconcile's ports (the DLQ and the ledger
/// through its finisher, the work queues) and the largest bottle a Lambda
/// worker takes (`BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB`). Built by
/// `bottlesync_adapters::wiring`.
#[derive(Clone)]
pub struct Replayer {
    pub reconciler: Reconciler,
    pub lambda_max_bottle_bytes: u64,
}

impl Replayer {
    /// Moves up to `max` dead letters back to work, as one new run: one message
    /// per bottle. Fails, changing nothing, when the run cannot be set up (a
    /// queue not configured, the manifest or the run not written), and when not
    /// one letter could be sent (they all stay in the DLQ).
    pub async fn replay(&self, max: usize, dry_run: bool, run_id: String) -> Result<ReplayReport> {
        let reconciler = &self.reconciler;
        let finisher = &reconciler.finisher;
        let queue = dlq(&finisher.dlq)?;
        let messages = take(queue, max).await?;
        let mut valid = Vec::new();
        let mut invalid = Vec::new();
        for message in messages {
            match BottleMessage::parse(&message.body, &reconciler.hosts) {
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
            bottles.iter().flat_map(Replayed::copies).cloned().collect()
        };
        if dry_run || bottles.is_empty() {
            report.replayed = bottles.len();
            release(queue, &held(&bottles)).await;
            return Ok(report);
        }
        // A replay is not routed by the run threshold: each letter goes where
        // its size routes a bottle of a Lambda run, and the run is an ECS run
        // when all of them go there.
        let route_of = |b: &Replayed| {
            route_for(
                Route::Lambda,
                b.parsed.job.size,
                self.lambda_max_bottle_bytes,
            )
        };
        let run_route = if bottles.iter().all(|b| route_of(b) == Route::Ecs) {
            Route::Ecs
        } else {
            Route::Lambda
        };
        let queues = &reconciler.queues;
        // Everything that can refuse the replay as a whole comes before the run.
        if let Err(e) = queues.check(bottles.iter().map(route_of)) {
            release(queue, &held(&bottles)).await;
            return Err(e);
        }
        let messages: Vec<Outgoing> = bottles
            .iter()
            .map(|bottle| {
                let mut moved = bottle.parsed.clone();
                moved.run_id = run_id.clone();
                Outgoing {
                    sha256: bottle.parsed.job.sha256.clone(),
                    size: bottle.parsed.job.size,
                    message: ManifestMessage {
                        route: route_of(bottle),
                        body: moved.to_body(),
                    },
                }
            })
            .collect();
        let now = Utc::now();
        let run = RunRecord::new(
            run_id.clone(),
            now.format("%Y-%m-%d").to_string(),
            bottles.len() as u64,
            bottles.iter().map(|b| b.parsed.job.size).sum(),
            run_route,
            now,
        );
        // Like a planner's run: opened with its planning lease (a reconcile
        // leaves a run whose sender is alive alone), marked, sent, sealed by
        // the lease's holder.
        let owner = format!("dlq-replay/{run_id}");
        let dispatch = RunDispatch {
            ledger: finisher.ledger.clone(),
            store: finisher.store.as_ref(),
            queues,
            planning_lease: reconciler.planning_lease,
            owner: &owner,
        };
        let dispatched = match dispatch.open(run, messages, false).await {
            Ok(dispatched) => dispatched,
            Err(e) => {
                // Whatever went out is in the run the reconcile resumes; the
                // letters stay for the next replay (the ledger dedups).
                tracing::error!(run_id, error = %e, "replay stopped: its dead letters stay in the DLQ");
                release(queue, &held(&bottles)).await;
                return Err(e);
            }
        };
        report.run_id = Some(run_id.clone());
        report.replayed = dispatched.sent.len() + dispatched.unconfirmed.len();
        report.to_ecs = dispatched.to(Route::Ecs);
        let letter_of = |sha256: &Sha256Digest| {
            bottles
                .iter()
                .find(|b| &b.parsed.job.sha256 == sha256)
                .expect("every message is a letter's")
        };
        // An unconfirmed send may not have landed: its letters stay for the
        // next replay (the bottle is in this run too; the ledger counts it once).
        for outgoing in &dispatched.unconfirmed {
            let bottle = letter_of(&outgoing.sha256);
            report.not_sent.push(letter_problem(
            &bottle.message,
            &bottle.parsed,
            "the send was not confirmed: the bottle stays in the run (the reconcile sends it again if it never arrived) and its dead letter in the DLQ".into(),
        ));
            release(queue, &bottle.copies().cloned().collect::<Vec<_>>()).await;
        }
        for outgoing in &dispatched.sent {
            let bottle = letter_of(&outgoing.sha256);
            for copy in bottle.copies() {
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
        if dispatched.sent.is_empty() {
            return Err(Error::queue(
                queue.name(),
                format!(
                    "replay could not confirm any of its {} sends; the dead letters are still in the DLQ, and run {run_id} holds the bottles (the reconcile sends again whatever never arrived)",
                    dispatched.unconfirmed.len()
                ),
            ));
        }
        // The workers may have drained it already.
        finisher.finish_if_due(&run_id, "dlq-replay").await?;
        Ok(report)
    }
}
