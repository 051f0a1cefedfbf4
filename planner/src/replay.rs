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
//! that one is sent. The run is created unsealed with its manifest written
//! first and the replay's planning lease (as a planner's: a reconcile
//! leaves a run whose sender is alive alone), and sealed by the lease's
//! holder with the number of messages actually sent: a letter whose send
//! failed goes back to the DLQ for the next replay and is not part of the
//! run.

use std::time::Duration;

use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::plan::route::{Route, route_for};
use bottlesync_core::ports::queue::QueueMessage;
use bottlesync_core::run::dlq::{Replayed, by_bottle, dlq, release, take};
use bottlesync_core::run::manifest::{ManifestMessage, RunManifest};
use bottlesync_core::run::record::RunRecord;
use bottlesync_core::services::{FleetServices, WorkQueues};
use bottlesync_core::{Error, Result};
use chrono::Utc;
use serde::Serialize;

use crate::planning_lease::PlanningLease;

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
        bottles.iter().flat_map(Replayed::copies).cloned().collect()
    };
    if dry_run || bottles.is_empty() {
        report.replayed = bottles.len();
        release(queue, &held(&bottles)).await;
        return Ok(report);
    }
    let config = &services.config;
    // A replay is not routed by the run threshold: each letter goes where
    // its size routes a bottle of a Lambda run, and the run is an ECS run
    // when all of them go there.
    let route_of = |b: &Replayed| {
        route_for(
            Route::Lambda,
            b.parsed.job.size,
            config.lambda_max_bottle_bytes,
        )
    };
    let run_route = if bottles.iter().all(|b| route_of(b) == Route::Ecs) {
        Route::Ecs
    } else {
        Route::Lambda
    };
    let queues = WorkQueues::of(services);
    // Everything that can refuse the replay as a whole comes before the run.
    if let Err(e) = queues.check(bottles.iter().map(route_of)) {
        release(queue, &held(&bottles)).await;
        return Err(e);
    }
    let manifest: Vec<ManifestMessage> = bottles
        .iter()
        .map(|bottle| {
            let mut moved = bottle.parsed.clone();
            moved.run_id = run_id.clone();
            ManifestMessage {
                route: route_of(bottle),
                body: moved.to_body(),
            }
        })
        .collect();
    let now = Utc::now();
    let mut run = RunRecord::new(
        run_id.clone(),
        now.format("%Y-%m-%d").to_string(),
        bottles.len() as u64,
        bottles.iter().map(|b| b.parsed.job.size).sum(),
        run_route,
        now,
    );
    // Like a planner, the replay holds the run's planning lease while it
    // sends: without it any reconcile would resume (send again, seal) the
    // run it is still sending.
    let owner = format!("dlq-replay/{run_id}");
    run.planner = Some(owner.clone());
    run.planning_until = Some(PlanningLease::until(now, config.planning_lease));
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
    let mut lease = PlanningLease::new(services, &run_id, &owner);

    // From here on nothing returns early: the run must be sealed, by this
    // replay, or by the reconcile that took its lease over.
    let mut taken_over = None;
    for (i, (bottle, planned)) in bottles.iter().zip(&manifest).enumerate() {
        if let Err(e) = lease.keep().await {
            // The resumer sends what the manifest names; the letters not
            // sent here go back to the DLQ (replayed again, the ledger
            // dedups them).
            tracing::error!(run_id, error = %e, "replay stopped: its run was taken over");
            release(queue, &held(&bottles[i..])).await;
            taken_over = Some(e);
            break;
        }
        let target = queues.get(planned.route).expect("checked above");
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
            let copies: Vec<QueueMessage> = bottle.copies().cloned().collect();
            release(queue, &copies).await;
            continue;
        }
        report.to_ecs += (planned.route == Route::Ecs) as usize;
        report.replayed += 1;
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
    if let Some(e) = taken_over {
        return Err(e);
    }
    lease.confirm().await?;
    seal(services, &run_id, report.replayed as u64).await?;
    if report.replayed == 0 {
        // Nothing is out there for this run: end it without a summary (it
        // has nothing to report) and tell the operator.
        if services
            .ledger
            .begin_finish(
                &run_id,
                "dlq-replay",
                bottlesync_core::run::finish::FINISH_LEASE,
            )
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
    bottlesync_core::run::finish::finish_run_if_due(services, &run_id, "dlq-replay").await?;
    Ok(report)
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
