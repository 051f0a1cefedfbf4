//! When a run has drained (stored + skipped + failed = expected), exactly
//! one caller wins `begin_finish`, compacts the ledger into
//! `bottles_hash.json`, posts the summary once, and marks the run finished.
//! A finisher killed part-way leaves the run `Finishing` under a lease that
//! expires; the next caller (a worker, `work --drain`, the next planner or
//! `bottlesync compact`) takes over and redoes what is idempotent.

use std::time::Duration;

use chrono::Utc;

use crate::error::Result;
use crate::fleet_ledger::{BottleState, RunRecord, RunState};
use crate::ledger::compact_into;
use crate::services::FleetServices;

/// How long a finisher may take before another may take over.
pub const FINISH_LEASE: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishOutcome {
    /// Not drained yet, already finished, or someone else is finishing.
    NotMine,
    /// This caller finished the run (and posted the summary unless it had
    /// already been posted before a takeover).
    Finished { summary_posted: bool },
}

/// Compacts the fleet ledger's stored bottles into the mirror's
/// `bottles_hash.json`. Returns how many bottles the file lists.
pub async fn compact(services: &FleetServices) -> Result<usize> {
    let stored = services
        .ledger
        .bottle_states()
        .await?
        .into_iter()
        .filter_map(|(sha, state)| match state {
            BottleState::Stored(bottle) if !crate::operations::is_imported_placeholder(&bottle) => {
                Some((sha, bottle))
            }
            _ => None,
        });
    let record = compact_into(services.store.as_ref(), stored).await?;
    Ok(record.bottles.len())
}

/// Finishes `run_id` if it has drained and nobody else is at it.
pub async fn finish_run_if_due(
    services: &FleetServices,
    run_id: &str,
    owner: &str,
) -> Result<FinishOutcome> {
    let Some(run) = services.ledger.run(run_id).await? else {
        return Ok(FinishOutcome::NotMine);
    };
    let due = match run.state {
        RunState::Finished => false,
        RunState::Running => run.done() >= run.expected,
        // Maybe abandoned: begin_finish decides by the lease.
        RunState::Finishing => true,
    };
    if !due
        || !services
            .ledger
            .begin_finish(run_id, owner, FINISH_LEASE)
            .await?
    {
        return Ok(FinishOutcome::NotMine);
    }
    tracing::info!(run_id, "run drained: compacting and sending the summary");
    if let Err(e) = compact(services).await {
        // The summary still goes out; `bottlesync compact` can redo this.
        tracing::error!(run_id, error = %e, "compaction failed");
    }
    let run = services.ledger.run(run_id).await?.unwrap_or(run);
    let summary_posted = if run.summary_sent {
        false
    } else {
        post_summary(services, &run).await;
        services.ledger.mark_summary_sent(run_id, owner).await?;
        true
    };
    services.ledger.finish(run_id, owner).await?;
    Ok(FinishOutcome::Finished { summary_posted })
}

async fn post_summary(services: &FleetServices, run: &RunRecord) {
    let dlq_depth = match &services.dlq {
        Some(dlq) => dlq.depth().await.ok().map(|d| d.visible + d.in_flight),
        None => None,
    };
    let message = crate::notifier::summary(run, &services.message_context(), dlq_depth, Utc::now());
    crate::notifier::notify_or_log(services.notifier.as_ref(), &message).await;
}

/// Finishes the newest run if it is due (used when a drain ends and by
/// the planner before it starts a new run).
pub async fn finish_latest_if_due(services: &FleetServices, owner: &str) -> Result<FinishOutcome> {
    match services.ledger.latest_run().await? {
        Some(run) if run.state != RunState::Finished => {
            finish_run_if_due(services, &run.run_id, owner).await
        }
        _ => Ok(FinishOutcome::NotMine),
    }
}
