//! One SQS message, whichever shell received it (Lambda or the ECS loop).
//! The shells only translate the [`Disposition`] it ends in into delete /
//! retry / batch-item-failure. The journey of one message:
//!
//! 1. parse and validate the body, and check its run exists (a body that
//!    can never succeed is refused: `outcome`);
//! 2. claim the bottle in the ledger: granted, already stored (counted as
//!    skipped), or held by another live owner (`outcome`: looked at later);
//! 3. fetch-verify-store it while a heartbeat extends the claim; a claim
//!    found lost stops the transfer;
//! 4. complete: record the bottle and count it for its run, exactly once;
//!    or settle what went wrong (`outcome`: retry, requeue, failed for good);
//! 5. report a counted outcome (`report`: metrics, Slack progress) and
//!    finish the run when it has drained.

mod outcome;
mod report;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bottlesync_core::brew::publish::put_flat_copy_of;
use bottlesync_core::lease::{Lease, Renewal};
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::model::index::HostPolicy;
use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::fleet_ledger::{
    ClaimLedger, ClaimOutcome, ClaimOwner, CompleteOutcome,
};
use bottlesync_core::ports::queue::{Queue, QueueMessage};
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::ObjectMeta;
use bottlesync_core::retry::{RetryPolicy, retry_write};
use bottlesync_core::run::finish::Finisher;
use bottlesync_core::segments::SegmentPolicy;
use bottlesync_core::{BottleJob, Error, Result, Sha256Digest};
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use outcome::{Disposition, RESERVED_RECEIVES, attempts_allowed, backoff_for};

use crate::transfer::{TransferSettings, fetch_verify_store};
use outcome::{HOLDER_CHECK, log_settlement};

/// Attempts at recording a stored bottle before its message is given back.
const COMPLETE_ATTEMPTS: u32 = 3;

/// What a worker touches: the finisher (the ledger, the mirror store,
/// Slack, the DLQ, metrics), the bottle hosts (`registry`, only the hosts
/// `hosts` allows), the ECS queue a Lambda hands slow bottles to, and how
/// a transfer and progress go. Built by `bottlesync_adapters::wiring`.
#[derive(Clone)]
pub struct WorkerPorts {
    pub finisher: Finisher,
    pub registry: Arc<dyn Registry>,
    pub retry: RetryPolicy,
    /// The ECS work queue (`BOTTLESYNC_LARGE_QUEUE_URL`), when configured.
    pub large_queue: Option<Arc<dyn Queue>>,
    pub hosts: HostPolicy,
    pub segments: SegmentPolicy,
    /// How often the fleet posts a progress message (`None`: never).
    pub progress_interval: Option<Duration>,
}

pub struct Consumer {
    pub ports: WorkerPorts,
    /// Names this worker (`<host>-<pid>-<random>` or the Lambda request id);
    /// its claims are owned per receive ([`ClaimOwner`]).
    pub worker_id: String,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// The redrive policy's maxReceiveCount of the queue being consumed
    /// (bottles get [`attempts_allowed`] of them).
    pub max_receive_count: Option<u32>,
    /// First delay before a failed bottle is retried (doubles per receive).
    pub retry_base: Duration,
    /// At most this long before a copy of a message whose bottle is claimed
    /// elsewhere looks again (a live holder usually finishes sooner).
    pub holder_check: Duration,
    /// The queue being consumed, to re-enqueue a message whose last receive
    /// met someone else's claim (SQS would otherwise dead-letter it uncounted).
    pub source: Option<Arc<dyn Queue>>,
    /// Numbers this worker's attempts: each claim has its own owner.
    attempts: AtomicU64,
    /// Runs seen to exist, with their route (neither ever changes).
    known_runs: Mutex<HashMap<String, Route>>,
    /// Not before then does this worker try for the progress slot again.
    next_progress_attempt: Mutex<Option<Instant>>,
    /// Runs that counted a bottle here since this worker last checked
    /// whether they drained.
    unchecked_runs: Mutex<BTreeSet<String>>,
    /// Whether the queue may hold no more visible messages. While it surely
    /// does, no run can have drained and the check (a ledger read per
    /// bottle) is put off. True unless the work loop knows better.
    queue_may_be_empty: AtomicBool,
}

/// How a transfer under a claim ended.
/// A bottle's claim, extended while its transfer runs (`extend_claim`).
struct ClaimRenewal {
    ledger: Arc<dyn ClaimLedger>,
    sha256: Sha256Digest,
    owner: String,
    lease: Duration,
}

#[async_trait::async_trait]
impl Renewal for ClaimRenewal {
    fn what(&self) -> String {
        format!("claim on {} by {}", self.sha256, self.owner)
    }

    async fn renew(&self) -> Result<bool> {
        self.ledger
            .extend_claim(&self.sha256, &self.owner, self.lease)
            .await
    }
}

enum TransferEnd {
    Stored(u64),
    /// The worker is stopping (shutdown, Lambda deadline).
    Cancelled,
    /// Someone else took the claim over: the transfer was stopped.
    ClaimLost,
    Failed(Error),
}

impl Consumer {
    pub fn new(ports: WorkerPorts, worker_id: String, max_receive_count: Option<u32>) -> Self {
        Consumer {
            ports,
            worker_id,
            lease: Duration::from_secs(15 * 60),
            max_receive_count,
            retry_base: Duration::from_secs(10),
            holder_check: HOLDER_CHECK,
            source: None,
            known_runs: Mutex::new(HashMap::new()),
            attempts: AtomicU64::new(0),
            next_progress_attempt: Mutex::new(None),
            unchecked_runs: Mutex::new(BTreeSet::new()),
            queue_may_be_empty: AtomicBool::new(true),
        }
    }

    pub fn with_source(mut self, queue: Arc<dyn Queue>) -> Self {
        self.source = Some(queue);
        self
    }

    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    pub fn with_holder_check(mut self, check: Duration) -> Self {
        self.holder_check = check;
        self
    }

    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// A fresh worker id for this process.
    pub fn default_worker_id() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        format!(
            "{host}-{}-{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        )
    }

    /// Tells the consumer what the last receive saw: `false` when it got
    /// every message it asked for (more are surely waiting).
    pub fn set_queue_may_be_empty(&self, may_be_empty: bool) {
        self.queue_may_be_empty
            .store(may_be_empty, Ordering::Relaxed);
    }

    /// For every run that counted a bottle here since the last check: if it
    /// drained, compact and post the summary (exactly once fleet-wide).
    pub async fn finish_drained_runs(&self) {
        let runs = std::mem::take(&mut *self.unchecked_runs.lock().expect("unchecked runs"));
        for run_id in runs {
            if let Err(e) = self
                .ports
                .finisher
                .finish_if_due(&run_id, &self.worker_id)
                .await
            {
                tracing::warn!(%run_id, error = %e, "could not check whether the run drained");
            }
        }
    }

    /// Handles one message; never panics on bad input, never returns an error:
    /// infrastructure failures become `Retry`.
    pub async fn handle(&self, message: &QueueMessage, cancel: &CancellationToken) -> Disposition {
        let disposition = self.decide(message, cancel).await;
        log_settlement(message, &disposition);
        disposition
    }

    /// Step 1: the body is a valid bottle message of a run that exists
    /// (an `Error::Message` otherwise).
    async fn accept(&self, message: &QueueMessage) -> Result<BottleMessage> {
        let parsed = BottleMessage::parse(&message.body, &self.ports.hosts)?;
        if !self.run_exists(&parsed.run_id).await? {
            return Err(Error::message(format!(
                "unknown run id {:?}",
                parsed.run_id
            )));
        }
        Ok(parsed)
    }

    /// Steps 1 to 5 of the journey (see the module's doc).
    async fn decide(&self, message: &QueueMessage, cancel: &CancellationToken) -> Disposition {
        let parsed = match self.accept(message).await {
            Ok(parsed) => parsed,
            // The kind decides: a message at fault is refused, anything
            // else (the ledger unreachable) is tried again.
            Err(e) if e.refuses_message() => return self.refuse(message, e.to_string()).await,
            Err(e) => return self.retry_soon(message, format!("ledger unavailable: {e}")),
        };
        let mut download = None;
        // Every log line of this bottle carries its run id and sha256.
        let span = tracing::info_span!("bottle", run_id = %parsed.run_id, sha256 = %parsed.job.sha256, bottle = %parsed.job.label());
        let disposition = match self
            .claim_and_transfer(&parsed, message, cancel, &mut download)
            .instrument(span)
            .await
        {
            Ok(d) => d,
            Err(e) => self.retry_soon(message, format!("{e}")),
        };
        self.emit_metrics(
            &parsed.run_id,
            parsed.job.sha256.as_str(),
            message,
            &disposition,
            download,
        );
        if disposition.is_counted() {
            self.after_counted(&parsed.run_id).await;
        }
        disposition
    }

    /// A bottle of `run_id` was counted here: report progress, and finish
    /// the run if it may have drained.
    async fn after_counted(&self, run_id: &str) {
        self.report_progress(run_id).await;
        self.unchecked_runs
            .lock()
            .expect("unchecked runs")
            .insert(run_id.to_string());
        if self.queue_may_be_empty.load(Ordering::Relaxed) {
            self.finish_drained_runs().await;
        }
    }

    async fn run_exists(&self, run_id: &str) -> Result<bool> {
        Ok(self.run_route(run_id).await?.is_some())
    }

    /// The run's route, or `None` when the run does not exist.
    async fn run_route(&self, run_id: &str) -> Result<Option<Route>> {
        if let Some(route) = self.known_runs.lock().expect("run cache").get(run_id) {
            return Ok(Some(*route));
        }
        let route = self
            .ports
            .finisher
            .ledger
            .run(run_id)
            .await?
            .map(|run| run.route);
        if let Some(route) = route {
            self.known_runs
                .lock()
                .expect("run cache")
                .insert(run_id.to_string(), route);
        }
        Ok(route)
    }

    /// Step 2, the claim, then the rest under it. `download` is set to how
    /// long the transfer took, when there was one.
    async fn claim_and_transfer(
        &self,
        message: &BottleMessage,
        received: &QueueMessage,
        cancel: &CancellationToken,
        download: &mut Option<Duration>,
    ) -> Result<Disposition> {
        let job = &message.job;
        let ledger = &self.ports.finisher.ledger;
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
        let owner = ClaimOwner::new(
            received.message_id.as_str(),
            received.receive_count,
            format!("{}/{attempt}", self.worker_id),
        )
        .token();
        let claim = match ledger
            .claim(&job.sha256, &message.run_id, &owner, self.lease)
            .await
        {
            Ok(claim) => claim,
            Err(e) => {
                // The write may have landed with its answer lost: give it
                // back so other copies need not wait out the lease (a later
                // receive of this message takes it over in any case).
                self.release(&job.sha256, &owner, "the claim's answer was lost")
                    .await;
                return Ok(self.retry_soon(received, format!("claim failed: {e}")));
            }
        };
        match claim {
            ClaimOutcome::Granted => {}
            ClaimOutcome::AlreadyStored(_) => {
                ledger.count_skipped(&message.run_id, &job.sha256).await?;
                tracing::info!("already stored: skipped");
                return Ok(Disposition::Skipped);
            }
            ClaimOutcome::HeldElsewhere {
                owner: holder,
                lease_expires,
            } => return Ok(self.wait_for_holder(received, &holder, lease_expires).await),
        }
        match self
            .transfer_and_complete(message, received, &owner, cancel, download)
            .await
        {
            Ok(disposition) => Ok(disposition),
            Err(e) => {
                // Whatever failed after the claim was granted, the claim
                // must not outlive this attempt.
                self.release(&job.sha256, &owner, "the attempt failed")
                    .await;
                Ok(self.retry_soon(received, format!("{e}")))
            }
        }
    }

    /// Steps 3 and 4, under a granted claim. An error return means the
    /// claim may still be held: the caller releases it.
    async fn transfer_and_complete(
        &self,
        message: &BottleMessage,
        received: &QueueMessage,
        owner: &str,
        cancel: &CancellationToken,
        download: &mut Option<Duration>,
    ) -> Result<Disposition> {
        let job = &message.job;
        if received.receive_count > 1 {
            // An earlier attempt may have died mid-upload; we hold the claim now.
            match self
                .ports
                .finisher
                .store
                .abort_incomplete_uploads(&job.key)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(aborted = n, "aborted uploads left by an earlier attempt"),
                Err(e) => tracing::warn!(error = %e, "could not check for abandoned uploads"),
            }
        }
        if let Some(bytes) = self.already_committed(job).await {
            tracing::info!(
                bytes,
                "already in the store with its digest (an earlier attempt committed it): recorded without downloading"
            );
            return self.complete(message, received, owner, bytes).await;
        }
        let started = Instant::now();
        let transfer = self.transfer_with_heartbeat(message, owner, cancel).await;
        *download = Some(started.elapsed());
        match transfer {
            TransferEnd::Stored(bytes) => self.complete(message, received, owner, bytes).await,
            TransferEnd::Cancelled => {
                self.release(&job.sha256, owner, "cancelled").await;
                Ok(Disposition::Retry {
                    reason: "cancelled: the worker is stopping".into(),
                    delay: Duration::ZERO,
                })
            }
            TransferEnd::ClaimLost => {
                // Someone else took the bottle over: whatever they do, the
                // next receive of this message finds it stored or held.
                Ok(self.retry_soon(
                    received,
                    "claim lost during the download: transfer stopped".into(),
                ))
            }
            TransferEnd::Failed(e) => {
                self.release(&job.sha256, owner, "the attempt failed").await;
                self.transfer_failed(message, received, e).await
            }
        }
    }

    /// Step 4 after a verified store: record the bottle and count it for
    /// its run, if the claim is still ours.
    async fn complete(
        &self,
        message: &BottleMessage,
        received: &QueueMessage,
        owner: &str,
        bytes: u64,
    ) -> Result<Disposition> {
        let job = &message.job;
        let bottle = MirroredBottle::from_job(job, bytes, Utc::now());
        // The bytes are in the store: recording them is retried here, under
        // the claim, rather than given back to the queue (whose next
        // receive would at best find the object, at worst wait out the
        // visibility timeout).
        let wait = |attempt| backoff_for(self.retry_base, attempt);
        let outcome = retry_write("record the stored bottle", COMPLETE_ATTEMPTS, wait, || {
            let ledger = &self.ports.finisher.ledger;
            ledger.complete(&message.run_id, owner, &job.sha256, &bottle)
        })
        .await?;
        match outcome {
            CompleteOutcome::Counted(_) => {
                tracing::info!(bytes, key = %job.key, "stored");
                Ok(Disposition::Stored { bytes })
            }
            CompleteOutcome::ClaimLost => {
                // The new holder may belong to another run; this run
                // still needs the bottle counted. The retry finds it
                // stored and counts it as skipped here.
                tracing::warn!("stored, but the claim had expired: retrying to count it");
                Ok(self
                    .retry_or_requeue(
                        received,
                        "claim lost while storing".into(),
                        Duration::from_secs(5),
                    )
                    .await)
            }
        }
    }

    /// The size of `job`'s bottle when an earlier attempt already committed
    /// it: its flat copy, or its dated object (then copied flat), holds the
    /// bytes with the job's digest and size. `None` (download it) when
    /// neither does, the store keeps no digests, or the look fails.
    async fn already_committed(&self, job: &BottleJob) -> Option<u64> {
        let store = self.ports.finisher.store.as_ref();
        let committed = |meta: &Option<ObjectMeta>| {
            meta.as_ref()
                .is_some_and(|m| m.sha256.as_ref() == Some(&job.sha256) && m.size == job.size)
        };
        let flat = job.flat_key();
        match store.stat(&flat).await {
            Ok(meta) if committed(&meta) => return Some(job.size),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(key = %flat, error = %e, "could not look for an earlier commit: downloading");
                return None;
            }
        }
        match store.stat(&job.key).await {
            Ok(meta) if committed(&meta) => {}
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(key = %job.key, error = %e, "could not look for an earlier commit: downloading");
                return None;
            }
        }
        match put_flat_copy_of(store, &job.key).await {
            Ok(()) => Some(job.size),
            Err(e) => {
                tracing::warn!(key = %job.key, error = %e, "committed by an earlier attempt, but its flat copy failed: downloading");
                None
            }
        }
    }

    /// Gives a claim back, best effort: a claim that cannot be released now
    /// is taken over by the next receive of the same message, or expires.
    async fn release(&self, sha256: &Sha256Digest, owner: &str, why: &str) {
        if let Err(e) = self
            .ports
            .finisher
            .ledger
            .release_claim(sha256, owner)
            .await
        {
            tracing::warn!(%owner, error = %e, "could not release the claim ({why}); the next receive of this message takes it over, or it expires");
        }
    }

    /// Step 3: the transfer, under the claim's [`Lease`]. A claim found lost
    /// stops the transfer (someone else owns the bottle now).
    async fn transfer_with_heartbeat(
        &self,
        message: &BottleMessage,
        owner: &str,
        cancel: &CancellationToken,
    ) -> TransferEnd {
        let ports = &self.ports;
        let job = &message.job;
        let no_progress = |_: u64| {};
        let stop = cancel.child_token();
        let transfer = fetch_verify_store(
            ports.registry.as_ref(),
            ports.finisher.store.as_ref(),
            job,
            TransferSettings {
                retry: &ports.retry,
                segments: &ports.segments,
            },
            &no_progress,
            &stop,
        );
        tokio::pin!(transfer);
        let claim = Lease::keep(
            Arc::new(ClaimRenewal {
                ledger: ports.finisher.ledger.clone(),
                sha256: job.sha256.clone(),
                owner: owner.to_string(),
                lease: self.lease,
            }),
            self.lease,
        );
        let lost = claim.lost();
        let result = tokio::select! {
            result = &mut transfer => result,
            _ = lost.cancelled() => {
                tracing::warn!("claim lost during the download: stopping the transfer");
                stop.cancel();
                transfer.await
            }
        };
        let claim_lost = claim.is_lost();
        claim.stop().await;
        match result {
            Ok(transfer) => TransferEnd::Stored(transfer.bytes),
            Err(Error::Cancelled) if claim_lost && !cancel.is_cancelled() => TransferEnd::ClaimLost,
            Err(Error::Cancelled) => TransferEnd::Cancelled,
            Err(e) => TransferEnd::Failed(e),
        }
    }
}
