//! `bottlesync status`: the queues' depths and the current run (progress,
//! rate, ETA, and why it is stalled if it is).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::ports::queue::QueueDepth;
use crate::run::reconcile::Reconciler;
use crate::run::record::RunRecord;

#[derive(Clone, Debug, Serialize)]
pub struct QueueStatus {
    pub name: String,
    pub url: String,
    #[serde(flatten)]
    pub depth: QueueDepth,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunStatus {
    #[serde(flatten)]
    pub run: RunRecord,
    pub done: u64,
    /// Bytes stored per second since the run started.
    pub bytes_per_second: f64,
    /// Estimated completion, while running.
    pub eta: Option<DateTime<Utc>>,
    /// Why the run is not advancing, when it has stalled
    /// (`BOTTLESYNC_RUN_STALL_MINUTES` without a bottle counted, or a
    /// planner that stopped before sealing it).
    pub stalled: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub environment: String,
    pub mirror: String,
    pub queues: Vec<QueueStatus>,
    pub run: Option<RunStatus>,
}

/// What the reconcile would see: its queues, the DLQ, and the newest run
/// judged by its stall clock.
pub async fn status(reconciler: &Reconciler) -> Result<Status> {
    let finisher = &reconciler.finisher;
    let mut queues = Vec::new();
    for (name, queue) in [
        ("lambda", &reconciler.queues.lambda),
        ("ecs", &reconciler.queues.ecs),
        ("dlq", &finisher.dlq),
    ] {
        if let Some(queue) = queue {
            queues.push(QueueStatus {
                name: name.into(),
                url: queue.name(),
                depth: queue.depth().await?,
            });
        }
    }
    let now = Utc::now();
    let run = finisher.ledger.latest_run().await?.map(|run| {
        let end = run.finished_at.unwrap_or(now);
        let seconds = (end - run.started_at).num_milliseconds().max(1) as f64 / 1000.0;
        let done = run.done();
        let eta = (run.finished_at.is_none() && done > 0 && done < run.expected).then(|| {
            let per_bottle = seconds / done as f64;
            now + chrono::Duration::milliseconds(
                (per_bottle * (run.expected - done) as f64 * 1000.0) as i64,
            )
        });
        RunStatus {
            done,
            bytes_per_second: run.bytes_stored as f64 / seconds,
            eta,
            stalled: crate::run::reconcile::stall_of(&run, reconciler.run_stall, now),
            run,
        }
    });
    Ok(Status {
        environment: finisher.context.environment.clone(),
        mirror: finisher.context.mirror.clone(),
        queues,
        run,
    })
}
