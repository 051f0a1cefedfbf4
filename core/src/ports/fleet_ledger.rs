//! The fleet's ledger port: dedup claims on bottles and the per-run
//! counters that decide when a run has drained. DynamoDB implements it with
//! conditional writes (`dynamo_ledger`); `memory_ledger` is the in-process
//! twin for tests and single-machine load runs. One table, one string
//! partition key `pk`: `bottle#<sha256>`, `run#<run id>`, `count#<run id>#<sha256>`,
//! and `run#latest` (a pointer to the newest run).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Sha256Digest;
use crate::error::Result;
use crate::model::hash_file::MirroredBottle;
use crate::run::record::{FailureNote, RunRecord};

/// What the ledger knows about one bottle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BottleState {
    Stored(MirroredBottle),
    /// Enqueued by `run_id`; counts as in flight until `until`.
    Queued {
        run_id: String,
        until: DateTime<Utc>,
    },
    /// A worker holds it until `lease_expires`.
    Claimed {
        owner: String,
        lease_expires: DateTime<Utc>,
    },
    /// The last attempt failed; the next plan enqueues it again.
    Failed,
}

/// Who holds a claim: one attempt at one receive of one queue message,
/// written `<message id>#<receive count>@<worker id>/<attempt>`.
///
/// Owners are per attempt, not per worker, so two copies of a bottle's
/// message handled at once by one worker (even two deliveries of one
/// receive) do not both hold the claim. And an
/// owner names its message so that a later receive of the *same* message
/// can recognise a claim left by an earlier one: SQS delivers a message
/// again only once the earlier receive's visibility ran out (its worker
/// died, or lost a write's answer and gave the message back), so that claim
/// is taken over at once instead of blocking the bottle for a whole lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimOwner {
    pub message_id: String,
    pub receive: u32,
    /// The worker and its attempt number (`<worker id>/<n>`).
    pub worker: String,
}

impl ClaimOwner {
    pub fn new(message_id: impl Into<String>, receive: u32, worker: impl Into<String>) -> Self {
        ClaimOwner {
            message_id: message_id.into(),
            receive,
            worker: worker.into(),
        }
    }

    /// The owner as the ledger stores it.
    pub fn token(&self) -> String {
        format!("{}#{}@{}", self.message_id, self.receive, self.worker)
    }

    /// Reads a token back; `None` for owners of another shape (tests, tools).
    pub fn parse(token: &str) -> Option<ClaimOwner> {
        let (message_id, rest) = token.split_once('#')?;
        let (receive, worker) = rest.split_once('@')?;
        if message_id.is_empty() {
            return None;
        }
        Some(ClaimOwner::new(message_id, receive.parse().ok()?, worker))
    }

    /// Whether the claim `holder` holds was taken by an earlier receive of
    /// this owner's message, and so may be taken over now.
    pub fn supersedes(&self, holder: &str) -> bool {
        ClaimOwner::parse(holder)
            .is_some_and(|h| h.message_id == self.message_id && h.receive < self.receive)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This worker now holds the bottle until the lease expires.
    Granted,
    AlreadyStored(MirroredBottle),
    /// Another worker holds a live claim: leave the message for later.
    HeldElsewhere {
        owner: String,
        lease_expires: DateTime<Utc>,
    },
}

/// Whether a per-run counter moved because of this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Now,
    /// This bottle was already counted for this run (a redelivery).
    Already,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompleteOutcome {
    Counted(Counted),
    /// The claim expired and someone else holds it: they will count it.
    ClaimLost,
}

/// The ledger of bottles: queued marks, claims, and each bottle counted
/// once for its run (what the planner marks and the workers claim).
#[async_trait]
pub trait ClaimLedger: Send + Sync {
    /// Every bottle item (for planning and compaction).
    async fn bottle_states(&self) -> Result<BTreeMap<Sha256Digest, BottleState>>;

    /// Marks a bottle as enqueued by `run_id` unless it is stored, queued by
    /// a run whose mark is still live, or claimed under a live lease.
    /// Returns whether the mark was made (and the message should be sent).
    /// A mark `run_id` already holds counts as made: a write retried after
    /// its answer was lost must not drop the bottle from its run.
    async fn mark_queued(
        &self,
        sha256: &Sha256Digest,
        run_id: &str,
        until: DateTime<Utc>,
    ) -> Result<bool>;

    /// One conditional write: granted if the bottle is new, queued, failed,
    /// claimed under an expired lease, or claimed by `owner` itself or by
    /// an owner it supersedes ([`ClaimOwner::supersedes`]; `owner` is a
    /// [`ClaimOwner::token`], or any other text that supersedes nothing).
    /// A retried claim whose first write landed is therefore granted again.
    async fn claim(
        &self,
        sha256: &Sha256Digest,
        run_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<ClaimOutcome>;

    /// What the ledger knows about one bottle.
    async fn bottle_state(&self, sha256: &Sha256Digest) -> Result<Option<BottleState>>;

    /// Extends a claim this owner still holds; false when it was lost.
    async fn extend_claim(
        &self,
        sha256: &Sha256Digest,
        owner: &str,
        lease: Duration,
    ) -> Result<bool>;

    /// Gives a claim up (the attempt failed and SQS will retry).
    async fn release_claim(&self, sha256: &Sha256Digest, owner: &str) -> Result<()>;

    /// Marks the bottle stored (conditionally on still holding the claim)
    /// and counts it for `run_id` exactly once, in one transaction.
    async fn complete(
        &self,
        run_id: &str,
        owner: &str,
        sha256: &Sha256Digest,
        bottle: &MirroredBottle,
    ) -> Result<CompleteOutcome>;

    /// Counts an already-stored bottle as skipped for `run_id`, once.
    async fn count_skipped(&self, run_id: &str, sha256: &Sha256Digest) -> Result<Counted>;

    /// Counts a bottle as failed for `run_id`, once; keeps the note among
    /// the first [`MAX_FAILURE_NOTES`]; the bottle becomes `Failed` so the
    /// next plan retries it, unless it is stored or claimed under a live
    /// lease (whoever holds it is still at work: a holder giving up
    /// releases its claim first).
    async fn count_failed(
        &self,
        run_id: &str,
        sha256: &Sha256Digest,
        note: &FailureNote,
    ) -> Result<Counted>;

    /// Records stored bottles without a run (importing an external mirror).
    /// Returns how many were new.
    async fn import_stored(&self, bottles: &[(Sha256Digest, MirroredBottle)]) -> Result<usize>;
}

/// The run book: run records, from opening (with the planning lease)
/// through sealing to closing, and what each run counted.
#[async_trait]
pub trait RunBook: Send + Sync {
    /// Writes a new run record and points `run#latest` at it.
    async fn create_run(&self, run: &RunRecord) -> Result<()>;

    /// Makes a run's `expected` final (the number of messages really sent)
    /// and marks it sealed; only a sealed run can finish. Idempotent.
    async fn seal_run(&self, run_id: &str, expected: u64) -> Result<()>;

    /// Takes or renews the right to send an unsealed run's messages:
    /// granted when `owner` is the run's planner or the planner's lease has
    /// run out (it died: the caller resumes the run). False when the run is
    /// sealed, unknown, or another planner's lease is live.
    async fn hold_planning(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool>;

    /// Runs that are not yet closed: every run from its creation until the
    /// reconcile closes it, finished and reported.
    async fn open_runs(&self) -> Result<Vec<RunRecord>>;

    /// Takes a finished, reported run off the open list.
    async fn close_run(&self, run_id: &str) -> Result<()>;

    /// Which of `sha256s` have been counted for `run_id`.
    async fn counted(
        &self,
        run_id: &str,
        sha256s: &[Sha256Digest],
    ) -> Result<BTreeSet<Sha256Digest>>;

    /// Records that the reconcile sent this bottle's message again for the
    /// run, as `by` (one reconcile pass; a retried write of the same pass is
    /// recognised). False when an earlier pass had: the bottle was lost twice.
    async fn mark_resent(&self, run_id: &str, sha256: &Sha256Digest, by: &str) -> Result<bool>;

    /// Notes a reconcile pass that acted on a stalled run (restarts its
    /// stall clock: see [`RunRecord::last_progress`]).
    async fn note_reconciled(&self, run_id: &str) -> Result<()>;

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>>;

    async fn latest_run(&self) -> Result<Option<RunRecord>>;

    /// Takes the fleet-wide slot for one progress message of a run: one
    /// conditional write that sets the run's `last_progress_at` to now if
    /// the run is `Running` and the last progress (initially `started_at`:
    /// the start message just went out) is at least `interval` ago. Exactly
    /// one caller per interval gets the run, as it is after the write, so
    /// it can render the counts without a second read; everyone else (and
    /// an unknown run) gets `None`.
    async fn try_progress_slot(
        &self,
        run_id: &str,
        interval: Duration,
    ) -> Result<Option<RunRecord>>;
}

/// The finisher lease of a drained run: taken by exactly one caller,
/// renewed while it compacts, publishes and posts, released at the end.
#[async_trait]
pub trait FinishLease: Send + Sync {
    /// Takes the right to finish a run: the run is `Running`, sealed, with
    /// stored + skipped + failed >= expected, or `Finishing` by `owner`
    /// itself (its own retried write whose answer was lost), or under an
    /// expired finisher lease. Exactly one caller wins.
    async fn begin_finish(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool>;

    /// Extends the finisher lease of a `Finishing` run that `owner` still
    /// holds; false when it was lost (taken over, released, or the run is no
    /// longer `Finishing`). A finisher renews it while it compacts and posts.
    async fn extend_finish(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool>;

    /// Records that the finisher `owner` compacted the ledger for this run
    /// (`compacted`), so a later finisher retrying the summary skips it.
    /// Fails when `owner` is not the run's finisher.
    async fn mark_compacted(&self, run_id: &str, owner: &str) -> Result<()>;

    /// Records that Slack did not accept the summary: `summary_attempts`
    /// goes up, `summary_error` keeps `problem`, and the run has no finisher
    /// and no lease from now on, so the next caller of `begin_finish` takes
    /// it over and posts again. The run stays `Finishing`. Fails when `owner` is not the
    /// run's finisher.
    async fn defer_summary(&self, run_id: &str, owner: &str, problem: &str) -> Result<()>;

    /// Records that the summary of a run went out (Slack accepted it). Any
    /// caller that posted it records it, also a finisher whose lease lapsed
    /// during the post, so that the finisher now holding the run does not
    /// post it again. Fails only for an unknown run. Idempotent.
    async fn mark_summary_sent(&self, run_id: &str, owner: &str) -> Result<()>;

    /// Ends the run: `Finished`, with `finished_at`.
    async fn finish(&self, run_id: &str, owner: &str) -> Result<()>;
}

/// The whole fleet ledger, one table: what the adapters implement and the
/// wiring hands out. A use case takes the role it uses (`ClaimLedger`,
/// `RunBook`, `FinishLease`) where one is enough.
pub trait FleetLedger: ClaimLedger + RunBook + FinishLease {}

impl<T: ClaimLedger + RunBook + FinishLease + ?Sized> FleetLedger for T {}
