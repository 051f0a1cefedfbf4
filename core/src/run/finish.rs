//! When a run has drained (sealed, and stored + skipped + failed =
//! expected), exactly one caller wins `begin_finish`, compacts the ledger
//! into `bottles_hash.json`, posts the summary, and marks the run finished.
//!
//! - The finisher renews its lease while it works (a slow compaction or a
//!   slow Slack must not let a second caller take over), and confirms it
//!   right before posting: a finisher that lost it stops without posting.
//! - The summary counts as sent only once Slack answered 2xx. A post Slack
//!   did not accept leaves the run `Finishing` with its lease given up
//!   (`defer_summary`): the next call, from the scheduled reconcile, a
//!   worker, `work --drain`, the next planner or `bottlesync compact`, posts
//!   it again, without compacting again when that was done (`compacted`).
//! - A finisher killed part-way leaves the run `Finishing` under a lease
//!   that expires; the next caller takes over and redoes what is idempotent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::error::{Error, Result};
use crate::lease::{Lease, Renewal};
use crate::metrics::Metrics;
use crate::mirror_record::compact_into;
use crate::ports::fleet_ledger::{BottleState, ClaimLedger, FinishLease, FleetLedger};
use crate::ports::notifier::Notifier;
use crate::ports::queue::Queue;
use crate::ports::store::{BlobStore, DocumentStore};
use crate::retry::retry_write;
use crate::run::messages::MessageContext;
use crate::run::record::{RunRecord, RunState};

/// How long a finisher may go without renewing before another may take
/// over. The finisher renews it every third of this while it works.
pub const FINISH_LEASE: Duration = Duration::from_secs(120);
/// Attempts at recording a summary Slack accepted (each a ledger write the
/// SDK retries itself): a summary posted but not recorded is posted again.
const RECORD_ATTEMPTS: u32 = 3;
/// The longest a finisher keeps renewing its lease: a finisher stuck this
/// long (a hung compaction) lets the run go to the next caller.
const MAX_FINISHING: Duration = Duration::from_secs(20 * 60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishOutcome {
    /// Not drained yet, already finished, or someone else is finishing.
    NotMine,
    /// This caller finished the run (and posted the summary unless it had
    /// already been posted before a takeover).
    Finished { summary_posted: bool },
    /// Slack did not accept the summary for now (an outage, 5xx, 429): the
    /// run stays `Finishing`, with `summary_error` set and no finisher
    /// lease, and the next call of [`Finisher::finish_if_due`] posts it again.
    SummaryPending { problem: String },
    /// Slack refused the summary for good (a 4xx other than 429: a revoked
    /// webhook, a message it will never take): the run is finished without
    /// it; the summary went to the log at error and the `SummaryRejected`
    /// metric (alarmed by Terraform) counts it.
    SummaryRejected { problem: String },
    /// This caller's finisher lease was taken over while it worked: it
    /// stopped without posting (the new finisher posts).
    LeaseLost,
}

/// Compacts the fleet ledger's stored bottles into the mirror's
/// `bottles_hash.json`. Returns how many bottles the file lists.
pub async fn compact(ledger: &dyn ClaimLedger, store: &dyn DocumentStore) -> Result<usize> {
    let stored = ledger
        .bottle_states()
        .await?
        .into_iter()
        .filter_map(|(sha, state)| match state {
            BottleState::Stored(bottle)
                if !crate::run::import::is_imported_placeholder(&bottle) =>
            {
                Some((sha, bottle))
            }
            _ => None,
        });
    let record = compact_into(store, stored).await?;
    Ok(record.bottles.len())
}

/// What finishing a run touches: the ledger (its run, its finisher lease,
/// the stored bottles it compacts), the mirror store (`bottles_hash.json`
/// and the API files), Slack, and the DLQ (its depth in the summary).
/// Built by `bottlesync_adapters::wiring`; the reconcile, the workers, the
/// planner, `dlq replay` and `compact` all finish runs through it.
#[derive(Clone)]
pub struct Finisher {
    pub ledger: Arc<dyn FleetLedger>,
    pub store: Arc<dyn BlobStore>,
    pub notifier: Arc<dyn Notifier>,
    pub dlq: Option<Arc<dyn Queue>>,
    pub context: MessageContext,
    pub metrics: Metrics,
}

impl Finisher {
    /// Finishes `run_id` if it is due and nobody else is at it: a drained,
    /// sealed `Running` run, a `Finishing` run whose finisher lease lapsed, or
    /// one whose summary Slack has not accepted yet. Safe to call at any time,
    /// from anywhere, as often as wanted: the scheduled reconcile calls it for
    /// every run that is not `Finished`.
    pub async fn finish_if_due(&self, run_id: &str, owner: &str) -> Result<FinishOutcome> {
        self.finish_with_lease(run_id, owner, FINISH_LEASE).await
    }

    /// [`Finisher::finish_if_due`] with another finisher lease (tests use short ones).
    pub async fn finish_with_lease(
        &self,
        run_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<FinishOutcome> {
        let Some(run) = self.ledger.run(run_id).await? else {
            return Ok(FinishOutcome::NotMine);
        };
        // One finisher per call, not per worker: two of a worker's tasks must
        // not both finish, and `begin_finish` lets a finisher retry its own
        // write (whose answer may have been lost).
        let owner = &format!("{owner}#{:08x}", rand::random::<u32>());
        let due = match run.state {
            RunState::Finished => false,
            RunState::Running => run.sealed && run.done() >= run.expected,
            // Abandoned, or its summary pending: begin_finish decides by the lease.
            RunState::Finishing => true,
        };
        if !due || !self.ledger.begin_finish(run_id, owner, lease).await? {
            return Ok(FinishOutcome::NotMine);
        }
        tracing::info!(
            run_id,
            owner,
            summary_attempts = run.summary_attempts,
            "finishing the run: compacting and sending the summary"
        );
        let held = Lease::keep_at_most(
            Arc::new(FinishRenewal {
                ledger: self.ledger.clone(),
                run_id: run_id.to_string(),
                owner: owner.to_string(),
                lease,
            }),
            lease,
            Some(MAX_FINISHING),
        );
        let step = self.finish_steps(run_id, owner, &held).await;
        // Stopped (and its last renewal landed) before the lease is given up below.
        held.stop().await;
        match step? {
            Step::Posted { summary_posted } => {
                self.ledger.finish(run_id, owner).await?;
                tracing::info!(run_id, summary_posted, "run finished");
                Ok(FinishOutcome::Finished { summary_posted })
            }
            Step::Rejected(problem) => {
                self.ledger.finish(run_id, owner).await?;
                self.metrics.emit(
                    &[("SummaryRejected", 1.0, crate::metrics::Unit::Count)],
                    &[("run_id", run_id)],
                );
                Ok(FinishOutcome::SummaryRejected { problem })
            }
            Step::PostFailed(problem) => {
                tracing::warn!(
                    run_id,
                    problem = %problem,
                    "Slack did not accept the summary: the run stays finishing and the next call (the reconcile, a worker, the planner, `compact`) posts it again"
                );
                if let Err(e) = self.ledger.defer_summary(run_id, owner, &problem).await {
                    // The lease then simply expires; the retry comes after it.
                    tracing::warn!(run_id, error = %e, "could not record the failed post");
                }
                Ok(FinishOutcome::SummaryPending { problem })
            }
            Step::LeaseLost => Ok(FinishOutcome::LeaseLost),
        }
    }

    /// Compaction (unless done), the lease check, the post and its record.
    async fn finish_steps(&self, run_id: &str, owner: &str, held: &Lease) -> Result<Step> {
        let run = self.read_run(run_id).await?;
        if run.compacted {
            tracing::info!(
                run_id,
                "already compacted by an earlier finisher: posting the summary only"
            );
        } else {
            match compact(self.ledger.as_ref(), self.store.as_ref()).await {
                Ok(bottles) => {
                    tracing::info!(run_id, bottles, "ledger compacted into bottles_hash.json");
                    if let Err(e) = self.ledger.mark_compacted(run_id, owner).await {
                        tracing::warn!(run_id, error = %e, "could not record the compaction: a retry will compact again");
                    }
                }
                // The summary still goes out; `bottlesync compact` can redo this.
                Err(e) => tracing::error!(run_id, error = %e, "compaction failed"),
            }
        }
        // After compaction: the API files name only what bottles_hash.json has.
        let missing = match crate::run::publication::publish_at_finish(
            self.ledger.as_ref(),
            self.store.as_ref(),
            run_id,
        )
        .await
        {
            Ok(publication) => crate::brew::publish::missing_labels(publication.missing()),
            Err(e) => {
                tracing::error!(run_id, error = %e, "publishing the API files failed: clients keep the ones published before; the next run publishes again");
                Vec::new()
            }
        };
        // Right before posting, with a fresh full lease: a finisher that lost
        // its lease (paused past it, renewals failing) stops here.
        if !held.confirm().await? {
            tracing::warn!(
                run_id,
                owner,
                "lost the finishing lease to another caller: stopping without posting"
            );
            return Ok(Step::LeaseLost);
        }
        let run = self.read_run(run_id).await?;
        if run.summary_sent {
            return Ok(Step::Posted {
                summary_posted: false,
            });
        }
        let summary = self.summary_of(&run, &missing).await;
        if let Err(e) = self.notifier.notify(&summary).await {
            if e.is_transient() {
                return Ok(Step::PostFailed(e.to_string()));
            }
            // Posting it again every reconcile would fail the same way, forever.
            tracing::error!(
                run_id,
                error = %e,
                summary = %summary.text,
                "Slack refused the summary for good: the run is finished without it (here it is); check the webhook (BOTTLESYNC_SLACK_SECRET_ARN)"
            );
            return Ok(Step::Rejected(e.to_string()));
        }
        self.record_summary_sent(run_id, owner).await?;
        Ok(Step::Posted {
            summary_posted: true,
        })
    }

    async fn read_run(&self, run_id: &str) -> Result<RunRecord> {
        self.ledger.run(run_id).await?.ok_or_else(|| {
            Error::ledger(
                "fleet ledger",
                format!("run {run_id:?} disappeared while finishing"),
            )
        })
    }

    /// Slack accepted the summary: record it, trying a few times, because a
    /// summary that is not recorded is posted again by the next finisher.
    async fn record_summary_sent(&self, run_id: &str, owner: &str) -> Result<()> {
        let wait = |attempt| Duration::from_millis(250u64 << attempt);
        retry_write("record the posted summary", RECORD_ATTEMPTS, wait, || {
            self.ledger.mark_summary_sent(run_id, owner)
        })
        .await
        .inspect_err(|e| {
            tracing::error!(run_id, error = %e, "the summary was posted but could not be recorded: the next finisher will post it again");
        })
    }

    async fn summary_of(
        &self,
        run: &RunRecord,
        missing: &[String],
    ) -> crate::ports::notifier::Notification {
        let dlq_depth = match &self.dlq {
            Some(dlq) => dlq.depth().await.ok().map(|d| d.visible + d.in_flight),
            None => None,
        };
        crate::run::messages::summary(run, &self.context, dlq_depth, missing, Utc::now())
    }

    /// Finishes the newest run if it is due (used when a drain ends and by
    /// the planner before it starts a new run).
    pub async fn finish_latest_if_due(&self, owner: &str) -> Result<FinishOutcome> {
        match self.ledger.latest_run().await? {
            Some(run) if run.state != RunState::Finished => {
                self.finish_if_due(&run.run_id, owner).await
            }
            _ => Ok(FinishOutcome::NotMine),
        }
    }
}

enum Step {
    Posted { summary_posted: bool },
    PostFailed(String),
    Rejected(String),
    LeaseLost,
}

/// The finisher lease of a `Finishing` run (`extend_finish`).
struct FinishRenewal {
    ledger: Arc<dyn FinishLease>,
    run_id: String,
    owner: String,
    lease: Duration,
}

#[async_trait]
impl Renewal for FinishRenewal {
    fn what(&self) -> String {
        format!("run {}: finishing lease of {}", self.run_id, self.owner)
    }

    async fn renew(&self) -> Result<bool> {
        self.ledger
            .extend_finish(&self.run_id, &self.owner, self.lease)
            .await
    }
}
