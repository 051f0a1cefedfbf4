//! Sending a run's messages, one way for every kind of run: the planner's
//! new run, a `dlq replay`'s, and the reconcile's resume of a run whose
//! sender stopped.
//!
//! open (run record, planning lease from now) -> manifest -> mark queued
//! (a planner's run) -> send in chunks under the planning lease -> confirm
//! the lease -> seal.
//!
//! - The run and its manifest come before any mark or message: a sender
//!   that dies anywhere after leaves a run the reconcile resumes (once the
//!   lease runs out), never marks or messages nobody can account for.
//! - The planning lease is taken when the run opens (never before the
//!   plan's slow parts) and renewed in the background ([`Lease`]); a sender
//!   that finds it lost stops between chunks and leaves the rest, and the
//!   seal, to whoever took it over. Sealing is conditional on holding it: a
//!   fresh renewal ([`Lease::confirm`]) comes right before the seal.
//! - A bottle whose queued mark is refused (stored, or another run has it
//!   queued or claimed) leaves the run; the manifest is rewritten to name
//!   exactly the run's bottles.
//! - What SQS does not confirm (refused entries, a batch whose answer was
//!   lost) is sent again, up to [`SEND_ATTEMPTS`] times in all (a duplicate
//!   message is harmless: the ledger counts a bottle once). A message still
//!   unconfirmed may have landed all the same (its answer lost after SQS
//!   took it), and its bottle would then be counted: it stays in the run,
//!   and the reconcile of the stalled run sends again whatever never
//!   arrived (once, then counts it lost). So `expected` is exactly what
//!   the run counts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use crate::Sha256Digest;
use crate::error::{Error, Result};
use crate::lease::{Lease, Renewal};
use crate::plan::route::Route;
use crate::ports::fleet_ledger::{FleetLedger, RunBook};
use crate::ports::queue::Queue;
use crate::ports::store::DocumentStore;
use crate::retry::retry_write;
use crate::run::manifest::{ManifestMessage, RunManifest};
use crate::run::record::RunRecord;

/// A queued mark outlives no message: SQS keeps messages 4 days by default,
/// so after that a mark left by a crashed sender stops blocking the bottle.
const QUEUED_MARK_LIFETIME: chrono::Duration = chrono::Duration::days(4);
const LEDGER_CONCURRENCY: usize = 16;
/// Marks and messages go out this many at a time, the lease checked in
/// between.
pub const SEND_CHUNK: usize = 200;
/// Attempts at sending one chunk of messages.
pub const SEND_ATTEMPTS: u32 = 3;
/// Attempts at the seal (each a ledger write the SDK retries itself): an
/// unsealed run cannot finish until the reconcile seals it.
const SEAL_ATTEMPTS: u32 = 3;

/// One message of a run, with what the ledger knows it by.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub message: ManifestMessage,
}

/// What became of a run's messages.
#[derive(Debug)]
pub struct Dispatched {
    /// The run as sealed (`expected` and `bytes_planned` of `sent` and
    /// `unconfirmed`).
    pub run: RunRecord,
    /// Messages SQS confirmed.
    pub sent: Vec<Outgoing>,
    /// Messages sent without a confirmed answer: in the run all the same.
    pub unconfirmed: Vec<Outgoing>,
    /// Not in the run: stored, or queued or claimed for another run.
    pub left: Vec<Outgoing>,
}

impl Dispatched {
    /// How many of the run's messages go to `route`.
    pub fn to(&self, route: Route) -> usize {
        self.sent
            .iter()
            .chain(&self.unconfirmed)
            .filter(|o| o.message.route == route)
            .count()
    }
}

/// Sends runs for `owner` (a planner, a replay, a reconcile pass).
pub struct RunDispatch<'a> {
    pub ledger: Arc<dyn FleetLedger>,
    pub store: &'a dyn DocumentStore,
    pub queues: &'a WorkQueues,
    /// How long a sender may go silent before its run may be resumed.
    pub planning_lease: Duration,
    pub owner: &'a str,
}

/// The queue each route sends to, for whatever sends work messages (the
/// fleet planner, the DLQ replay, the reconcile): a route without its queue
/// is a setting error naming the variable, never a silent change of route.
#[derive(Clone, Default)]
pub struct WorkQueues {
    /// The Lambda work queue (`BOTTLESYNC_QUEUE_URL`), when configured.
    pub lambda: Option<Arc<dyn Queue>>,
    /// The ECS work queue (`BOTTLESYNC_LARGE_QUEUE_URL`), when configured.
    pub ecs: Option<Arc<dyn Queue>>,
}

impl WorkQueues {
    /// The queue of `route`, or the setting that is missing.
    pub fn get(&self, route: Route) -> Result<&dyn Queue> {
        let (queue, setting) = match route {
            Route::Lambda => (&self.lambda, "BOTTLESYNC_QUEUE_URL"),
            Route::Ecs => (&self.ecs, "BOTTLESYNC_LARGE_QUEUE_URL"),
        };
        queue
            .as_deref()
            .ok_or_else(|| Error::config(setting, "is not set"))
    }

    /// Fails, before anything is sent, when one of `routes` has no queue.
    pub fn check(&self, routes: impl IntoIterator<Item = Route>) -> Result<()> {
        let routes: Vec<Route> = routes.into_iter().collect();
        for route in [Route::Ecs, Route::Lambda] {
            if routes.contains(&route) {
                self.get(route)?;
            }
        }
        Ok(())
    }
}

/// When a lease taken at `from` for `length` runs out.
pub fn lease_until(from: DateTime<Utc>, length: Duration) -> DateTime<Utc> {
    from + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX)
}

impl RunDispatch<'_> {
    /// Opens `run` (sealed later with what it really holds), writes its
    /// manifest, marks its bottles queued and sends their messages. Fails
    /// with nothing written when a route has no queue; after the run is
    /// open, an error leaves it to the reconcile (it resumes the run once
    /// the lease runs out).
    ///
    /// With `marks` (a planner), each bottle is marked queued first and one
    /// whose mark is refused leaves the run. A replay sends without marks:
    /// a dead letter's bottle may still be claimed by the worker that died
    /// on it (a live claim refuses the mark), and it is replayed all the
    /// same.
    pub async fn open(
        &self,
        mut run: RunRecord,
        messages: Vec<Outgoing>,
        marks: bool,
    ) -> Result<Dispatched> {
        self.queues
            .check(messages.iter().map(|o| o.message.route))?;
        let run_id = run.run_id.clone();
        let opened = Utc::now();
        run.planner = Some(self.owner.to_string());
        run.planning_until = Some(lease_until(opened, self.planning_lease));
        run.expected = messages.len() as u64;
        run.bytes_planned = messages.iter().map(|o| o.size).sum();
        self.ledger.create_run(&run).await?;
        let lease = self.lease(&run_id);
        manifest_of(&run_id, &messages).write(self.store).await?;

        let marked = if marks {
            self.mark_queued(&run_id, &lease, &messages).await?
        } else {
            vec![true; messages.len()]
        };
        let (mut to_send, mut left) = (Vec::new(), Vec::new());
        for (outgoing, marked) in messages.into_iter().zip(marked) {
            if marked {
                to_send.push(outgoing);
            } else {
                left.push(outgoing);
            }
        }
        let in_run = to_send.len() as u64;
        run.bytes_planned = to_send.iter().map(|o| o.size).sum();
        if !left.is_empty() {
            // The manifest names exactly the run's bottles: the reconcile
            // re-sends only these.
            manifest_of(&run_id, &to_send).write(self.store).await?;
        }
        let (sent, unconfirmed) = self.send(&run_id, &lease, to_send).await?;
        self.seal(&run_id, &lease, in_run).await?;
        lease.stop().await;
        run.expected = in_run;
        run.sealed = true;
        Ok(Dispatched {
            run,
            sent,
            unconfirmed,
            left,
        })
    }

    /// Resumes a run whose sender stopped before sealing it, its planning
    /// lease just taken by this owner (`hold_planning`): sends `pending`
    /// (the manifest's messages neither counted nor in work) and seals the
    /// run with the whole manifest. Returns how many were sent (confirmed
    /// or not).
    pub async fn resume(
        &self,
        run_id: &str,
        manifest: &RunManifest,
        pending: Vec<Outgoing>,
    ) -> Result<usize> {
        let lease = self.lease(run_id);
        let count = pending.len();
        self.send(run_id, &lease, pending).await?;
        self.seal(run_id, &lease, manifest.messages.len() as u64)
            .await?;
        lease.stop().await;
        Ok(count)
    }

    fn lease(&self, run_id: &str) -> Lease {
        Lease::keep(
            Arc::new(PlanningRenewal {
                ledger: self.ledger.clone(),
                run_id: run_id.to_string(),
                owner: self.owner.to_string(),
                lease: self.planning_lease,
            }),
            self.planning_lease,
        )
    }

    /// Marks every bottle queued for `run_id`, a chunk at a time; whether
    /// each mark was made.
    async fn mark_queued(
        &self,
        run_id: &str,
        lease: &Lease,
        messages: &[Outgoing],
    ) -> Result<Vec<bool>> {
        let until = Utc::now() + QUEUED_MARK_LIFETIME;
        let mut marked = vec![false; messages.len()];
        for chunk in (0..messages.len()).collect::<Vec<_>>().chunks(SEND_CHUNK) {
            still_held(run_id, lease)?;
            let marks: Vec<(usize, Result<bool>)> = stream::iter(chunk.iter().copied())
                .map(|i| {
                    let sha256 = &messages[i].sha256;
                    async move { (i, self.ledger.mark_queued(sha256, run_id, until).await) }
                })
                .buffer_unordered(LEDGER_CONCURRENCY)
                .collect()
                .await;
            for (i, result) in marks {
                marked[i] = result?;
            }
        }
        Ok(marked)
    }

    /// Sends `messages` in chunks by route, while the lease is held: those
    /// SQS confirmed, and those it did not (see the module docs).
    async fn send(
        &self,
        run_id: &str,
        lease: &Lease,
        messages: Vec<Outgoing>,
    ) -> Result<(Vec<Outgoing>, Vec<Outgoing>)> {
        let (mut sent, mut unconfirmed) = (Vec::new(), Vec::new());
        let mut messages = messages.into_iter().peekable();
        while messages.peek().is_some() {
            still_held(run_id, lease)?;
            let chunk: Vec<Outgoing> = messages.by_ref().take(SEND_CHUNK).collect();
            for route in [Route::Ecs, Route::Lambda] {
                let part: Vec<&Outgoing> =
                    chunk.iter().filter(|o| o.message.route == route).collect();
                if part.is_empty() {
                    continue;
                }
                let queue = self.queues.get(route)?;
                let bodies = part.iter().map(|o| o.message.body.clone()).collect();
                let failed = send_with_retries(queue, bodies, run_id).await;
                for (i, outgoing) in part.into_iter().enumerate() {
                    if failed.contains(&i) {
                        unconfirmed.push(outgoing.clone());
                    } else {
                        sent.push(outgoing.clone());
                    }
                }
            }
        }
        if !unconfirmed.is_empty() {
            tracing::error!(
                run_id,
                unconfirmed = unconfirmed.len(),
                "some sends could not be confirmed: those bottles stay in the run; the reconcile sends again whatever never arrived once the run stalls (BOTTLESYNC_RUN_STALL_MINUTES)"
            );
        }
        Ok((sent, unconfirmed))
    }

    /// Seals the run at `expected`, by the lease's holder only (renewed
    /// right before, so it cannot be taken over before the seal lands).
    async fn seal(&self, run_id: &str, lease: &Lease, expected: u64) -> Result<()> {
        if !lease.confirm().await? {
            return Err(taken_over(run_id));
        }
        let wait = |attempt| Duration::from_millis(500u64 << attempt);
        retry_write("seal the run", SEAL_ATTEMPTS, wait, || self.ledger.seal_run(run_id, expected))
            .await
            .inspect_err(|e| {
                tracing::error!(run_id, expected, error = %e, "could not seal the run: it cannot finish until the reconcile resumes and seals it");
            })
    }
}

fn manifest_of(run_id: &str, messages: &[Outgoing]) -> RunManifest {
    RunManifest::new(run_id, messages.iter().map(|o| o.message.clone()).collect())
}

fn taken_over(run_id: &str) -> Error {
    Error::ledger(
        format!("run {run_id}"),
        "the planning lease was taken over (this sender was too slow); the run is resumed by whoever took it",
    )
}

fn still_held(run_id: &str, lease: &Lease) -> Result<()> {
    if lease.is_lost() {
        tracing::error!(
            run_id,
            "stopped sending: the run was taken over; whoever took it sends the rest and seals it"
        );
        return Err(taken_over(run_id));
    }
    Ok(())
}

/// Sends `bodies`, sending again what SQS did not confirm; the indices of
/// those still unconfirmed after [`SEND_ATTEMPTS`].
pub async fn send_with_retries(
    queue: &dyn crate::ports::queue::Queue,
    bodies: Vec<String>,
    run_id: &str,
) -> Vec<usize> {
    let mut pending: Vec<usize> = (0..bodies.len()).collect();
    for attempt in 1..=SEND_ATTEMPTS {
        let outcome = queue
            .send_each(pending.iter().map(|&i| bodies[i].clone()).collect())
            .await;
        pending = outcome.unconfirmed.iter().map(|&i| pending[i]).collect();
        let Some(e) = outcome.error else {
            return Vec::new();
        };
        if attempt < SEND_ATTEMPTS {
            tracing::warn!(run_id, attempt, unconfirmed = pending.len(), error = %e, "sending failed; sending the unconfirmed messages again (duplicates are counted once)");
            tokio::time::sleep(Duration::from_millis(500u64 << attempt)).await;
        } else {
            tracing::error!(run_id, attempt, unconfirmed = pending.len(), error = %e, "sending failed on every attempt: these bottles stay in the run, unconfirmed");
        }
    }
    pending
}

/// The right to send an unsealed run (`hold_planning`).
struct PlanningRenewal {
    ledger: Arc<dyn RunBook>,
    run_id: String,
    owner: String,
    lease: Duration,
}

#[async_trait]
impl Renewal for PlanningRenewal {
    fn what(&self) -> String {
        format!("run {}: planning lease of {}", self.run_id, self.owner)
    }

    async fn renew(&self) -> Result<bool> {
        self.ledger
            .hold_planning(&self.run_id, &self.owner, self.lease)
            .await
    }
}
