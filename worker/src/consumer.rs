//! One SQS message, whichever shell received it (Lambda or the ECS loop):
//! validate, claim in the ledger, fetch-verify-store, record and count
//! exactly once, and finish the run when it has drained. The shells only
//! translate a `Disposition` into delete / retry / batch-item-failure.
//!
//! Around each counted outcome the consumer also reports: an EMF metrics
//! line (when `BOTTLESYNC_METRICS` is on) and, for ECS runs, a Slack
//! progress message when this worker wins the fleet-wide slot for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bottlesync_core::metrics::{self, Unit};
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::model::message::{BottleMessage, salvage_ids};
use bottlesync_core::ports::fleet_ledger::{
    ClaimOutcome, ClaimOwner, CompleteOutcome, FailureNote, Route,
};
use bottlesync_core::ports::notifier::notify_or_log;
use bottlesync_core::ports::queue::{Queue, QueueMessage};
use bottlesync_core::run::finish::finish_run_if_due;
use bottlesync_core::services::FleetServices;
use bottlesync_core::{Error, Result, Sha256Digest};
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::transfer::fetch_verify_store;

/// What happened to a message, and so what its shell does with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    Stored {
        bytes: u64,
    },
    /// Already in the mirror.
    Skipped,
    /// Counted as failed for its run and moved to the DLQ.
    Failed {
        reason: String,
    },
    /// Refused as invalid and moved to the DLQ.
    Refused {
        reason: String,
    },
    /// Sent again as a fresh message (its receive count starts over).
    Requeued {
        reason: String,
    },
    /// Leave it: SQS delivers it again after `delay` (or its visibility timeout).
    Retry {
        reason: String,
        delay: Option<Duration>,
    },
}

impl Disposition {
    /// Whether the message is done with and may be deleted.
    pub fn acknowledges(&self) -> bool {
        !matches!(self, Disposition::Retry { .. })
    }
}

/// Receives kept back from the queue's redrive limit. The consumer gives a
/// bottle up (counts it failed, moves its message to the DLQ itself) this
/// many receives before SQS would: when a worker dies during that last
/// attempt, or its message's visibility runs out, SQS still hands the
/// message to a worker that counts it, instead of dead-lettering it
/// uncounted and leaving its run unable to drain (found by the load runs).
pub const RESERVED_RECEIVES: u32 = 2;

/// How many receives a bottle gets under a redrive limit of
/// `max_receive_count`.
pub fn attempts_allowed(max_receive_count: u32) -> u32 {
    max_receive_count.saturating_sub(RESERVED_RECEIVES).max(1)
}

pub struct Consumer {
    pub services: Arc<FleetServices>,
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

impl Consumer {
    pub fn new(
        services: Arc<FleetServices>,
        worker_id: String,
        max_receive_count: Option<u32>,
    ) -> Self {
        Consumer {
            services,
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
            if let Err(e) = finish_run_if_due(&self.services, &run_id, &self.worker_id).await {
                tracing::warn!(%run_id, error = %e, "could not check whether the run drained");
            }
        }
    }

    fn is_last_attempt(&self, message: &QueueMessage) -> bool {
        self.max_receive_count
            .is_some_and(|max| message.receive_count >= attempts_allowed(max))
    }

    /// Handles one message; never panics on bad input, never returns an error:
    /// infrastructure failures become `Retry`.
    pub async fn handle(&self, message: &QueueMessage, cancel: &CancellationToken) -> Disposition {
        let disposition = self.settle(message, cancel).await;
        log_settlement(message, &disposition);
        disposition
    }

    async fn settle(&self, message: &QueueMessage, cancel: &CancellationToken) -> Disposition {
        let parsed = match BottleMessage::parse(&message.body, &self.services.config.hosts) {
            Ok(parsed) => parsed,
            Err(e) => return self.refuse(message, e.to_string()).await,
        };
        match self.run_exists(&parsed.run_id).await {
            Ok(true) => {}
            Ok(false) => {
                return self
                    .refuse(message, format!("unknown run id {:?}", parsed.run_id))
                    .await;
            }
            Err(e) => return retry(format!("ledger unavailable: {e}")),
        }
        let mut download = None;
        // Every log line of this bottle carries its run id and sha256.
        let span = tracing::info_span!("bottle", run_id = %parsed.run_id, sha256 = %parsed.job.sha256, bottle = %parsed.job.label());
        let disposition = match self
            .process(&parsed, message, cancel, &mut download)
            .instrument(span)
            .await
        {
            Ok(d) => d,
            Err(e) => retry(format!("{e}")),
        };
        self.emit_metrics(
            &parsed.run_id,
            parsed.job.sha256.as_str(),
            message,
            &disposition,
            download,
        );
        if matches!(
            disposition,
            Disposition::Stored { .. } | Disposition::Skipped | Disposition::Failed { .. }
        ) {
            self.report_progress(&parsed.run_id).await;
            self.unchecked_runs
                .lock()
                .expect("unchecked runs")
                .insert(parsed.run_id.clone());
            if self.queue_may_be_empty.load(Ordering::Relaxed) {
                self.finish_drained_runs().await;
            }
        }
        disposition
    }

    async fn run_exists(&self, run_id: &str) -> Result<bool> {
        Ok(self.run_route(run_id).await?.is_some())
    }

    /// The run's route, or `None` when the run does not exist.
    async fn run_route(&self, run_id: &str) -> Result<Option<Route>> {
        if let Some(route) = self.known_runs.lock().expect("run cache").get(run_id) {
            return Ok(Some(*route));
        }
        let route = self.services.ledger.run(run_id).await?.map(|run| run.route);
        if let Some(route) = route {
            self.known_runs
                .lock()
                .expect("run cache")
                .insert(run_id.to_string(), route);
        }
        Ok(route)
    }

    /// After a bottle of an ECS run was counted: posts a progress message if
    /// this worker wins the fleet-wide slot (at most one per
    /// `BOTTLESYNC_PROGRESS_INTERVAL_SECONDS` for all workers together) and
    /// the run has not drained (then the summary says it all).
    async fn report_progress(&self, run_id: &str) {
        let Some(interval) = self.services.config.progress_interval else {
            return;
        };
        // The slot is a conditional write: try it at most once per interval
        // per worker, not after every bottle (writes are the fleet's cost).
        {
            let mut next = self.next_progress_attempt.lock().expect("progress gate");
            let now = Instant::now();
            if next.is_some_and(|at| now < at) {
                return;
            }
            *next = Some(now + interval);
        }
        match self.run_route(run_id).await {
            Ok(Some(Route::Ecs)) => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(run_id, error = %e, "could not read the run for a progress message");
                return;
            }
        }
        match self
            .services
            .ledger
            .try_progress_slot(run_id, interval)
            .await
        {
            Ok(Some(run)) if run.done() < run.expected => {
                let message = bottlesync_core::run::messages::progress(
                    &run,
                    &self.services.message_context(),
                    Utc::now(),
                );
                tracing::info!(
                    run_id,
                    done = run.done(),
                    expected = run.expected,
                    "posting progress"
                );
                notify_or_log(self.services.notifier.as_ref(), &message).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(run_id, error = %e, "could not take the progress slot"),
        }
    }

    /// One EMF line per message with a counted outcome (when metrics are on).
    fn emit_metrics(
        &self,
        run_id: &str,
        sha256: &str,
        message: &QueueMessage,
        disposition: &Disposition,
        download: Option<Duration>,
    ) {
        if !self.services.config.emit_metrics {
            return;
        }
        let mut values: Vec<(&str, f64, Unit)> = match disposition {
            Disposition::Stored { bytes } => vec![
                ("BottlesStored", 1.0, Unit::Count),
                ("BytesStored", *bytes as f64, Unit::Bytes),
            ],
            Disposition::Skipped => vec![("BottlesSkipped", 1.0, Unit::Count)],
            Disposition::Failed { .. } | Disposition::Refused { .. } => {
                vec![("BottlesFailed", 1.0, Unit::Count)]
            }
            Disposition::Requeued { .. } | Disposition::Retry { .. } => return,
        };
        if let Some(download) = download {
            values.push(("DownloadSeconds", download.as_secs_f64(), Unit::Seconds));
        }
        if let Some(sent_at) = message.sent_at {
            let waited = (Utc::now() - sent_at).num_milliseconds().max(0) as f64 / 1000.0;
            values.push(("TimeInQueueSeconds", waited, Unit::Seconds));
        }
        metrics::emit(
            &self.services.config.environment,
            &values,
            &[("run_id", run_id), ("sha256", sha256)],
        );
    }

    async fn process(
        &self,
        message: &BottleMessage,
        received: &QueueMessage,
        cancel: &CancellationToken,
        download: &mut Option<Duration>,
    ) -> Result<Disposition> {
        let job = &message.job;
        let ledger = &self.services.ledger;
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
                return Ok(retry(format!("claim failed: {e}")));
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
            .work_claimed(message, received, &owner, cancel, download)
            .await
        {
            Ok(disposition) => Ok(disposition),
            Err(e) => {
                // Whatever failed after the claim was granted, the claim
                // must not outlive this attempt.
                self.release(&job.sha256, &owner, "the attempt failed")
                    .await;
                Ok(retry(format!("{e}")))
            }
        }
    }

    /// Everything after a granted claim. An error return means the claim
    /// may still be held: the caller releases it.
    async fn work_claimed(
        &self,
        message: &BottleMessage,
        received: &QueueMessage,
        owner: &str,
        cancel: &CancellationToken,
        download: &mut Option<Duration>,
    ) -> Result<Disposition> {
        let job = &message.job;
        let ledger = &self.services.ledger;
        if received.receive_count > 1 {
            // An earlier attempt may have died mid-upload; we hold the claim now.
            match self.services.store.abort_incomplete_uploads(&job.key).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(aborted = n, "aborted uploads left by an earlier attempt"),
                Err(e) => tracing::warn!(error = %e, "could not check for abandoned uploads"),
            }
        }
        let started = Instant::now();
        let transfer = self.transfer_with_heartbeat(message, owner, cancel).await;
        *download = Some(started.elapsed());
        match transfer {
            TransferEnd::Stored(bytes) => {
                let bottle = MirroredBottle::from_job(job, bytes, Utc::now());
                match ledger
                    .complete(&message.run_id, owner, &job.sha256, &bottle)
                    .await?
                {
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
                            .later(
                                received,
                                "claim lost while storing".into(),
                                Duration::from_secs(5),
                            )
                            .await)
                    }
                }
            }
            TransferEnd::Cancelled => {
                self.release(&job.sha256, owner, "cancelled").await;
                Ok(Disposition::Retry {
                    reason: "cancelled: the worker is stopping".into(),
                    delay: Some(Duration::ZERO),
                })
            }
            TransferEnd::ClaimLost => {
                // Someone else took the bottle over: whatever they do, the
                // next receive of this message finds it stored or held.
                Ok(retry(
                    "claim lost during the download: transfer stopped".into(),
                ))
            }
            TransferEnd::Failed(e) => {
                let reason = e.to_string();
                self.release(&job.sha256, owner, "the attempt failed").await;
                if self.is_last_attempt(received) {
                    self.count_failure(&message.run_id, &job.sha256, message, &reason)
                        .await?;
                    tracing::error!(%reason, attempts = received.receive_count, "failed for good");
                    Ok(self
                        .dead_letter(received, Disposition::Failed { reason })
                        .await)
                } else {
                    tracing::warn!(%reason, attempt = received.receive_count, "attempt failed; SQS will retry");
                    Ok(Disposition::Retry {
                        reason,
                        delay: Some(backoff_for(self.retry_base, received.receive_count)),
                    })
                }
            }
        }
    }

    /// Gives a claim back, best effort: a claim that cannot be released now
    /// is taken over by the next receive of the same message, or expires.
    async fn release(&self, sha256: &Sha256Digest, owner: &str, why: &str) {
        if let Err(e) = self.services.ledger.release_claim(sha256, owner).await {
            tracing::warn!(%owner, error = %e, "could not release the claim ({why}); the next receive of this message takes it over, or it expires");
        }
    }

    /// Another copy of the message holds the bottle's claim (a live worker,
    /// or a dead one whose lease runs on). Rather than come back as this
    /// receive (every receive counts towards the queue's redrive limit, and
    /// a 15-minute claim outlasts a few short visibility timeouts), send a
    /// fresh copy that appears when the claim can have expired, or in a
    /// minute at most (a live holder usually finishes sooner: the copy then
    /// finds the bottle stored), and drop this one: a bottle is given up
    /// only after its real attempts. Without a source queue the message is
    /// hidden as long instead.
    async fn wait_for_holder(
        &self,
        received: &QueueMessage,
        holder: &str,
        lease_expires: chrono::DateTime<Utc>,
    ) -> Disposition {
        let wait =
            (lease_expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
        let wait = wait.min(self.holder_check) + Duration::from_millis(rand::random_range(0..2000));
        let reason = format!("claimed by {holder} until {lease_expires}");
        if let Some(source) = &self.source {
            match source.send_delayed(received.body.clone(), wait).await {
                Ok(()) => {
                    tracing::info!(%holder, wait_s = wait.as_secs(), "claimed elsewhere: sent a fresh copy for later");
                    return Disposition::Requeued { reason };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not send a delayed copy; hiding this one instead")
                }
            }
        }
        Disposition::Retry {
            reason,
            delay: Some(wait),
        }
    }

    /// The transfer, extending the claim while it runs. A claim found lost
    /// stops the transfer (someone else owns the bottle now).
    async fn transfer_with_heartbeat(
        &self,
        message: &BottleMessage,
        owner: &str,
        cancel: &CancellationToken,
    ) -> TransferEnd {
        let services = &self.services;
        let job = &message.job;
        let no_progress = |_: u64| {};
        let stop = cancel.child_token();
        let transfer = fetch_verify_store(
            services.registry.as_ref(),
            services.store.as_ref(),
            job,
            &services.retry,
            &no_progress,
            &stop,
        );
        tokio::pin!(transfer);
        let mut beat = tokio::time::interval(self.lease / 3);
        beat.tick().await;
        let mut claim_lost = false;
        let result = loop {
            tokio::select! {
                result = &mut transfer => break result,
                _ = beat.tick(), if !claim_lost => {
                    match services.ledger.extend_claim(&job.sha256, owner, self.lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("claim lost during the download: stopping the transfer");
                            claim_lost = true;
                            stop.cancel();
                        }
                        Err(e) => tracing::warn!(error = %e, "could not extend the claim; trying again at the next beat"),
                    }
                }
            }
        };
        match result {
            Ok(transfer) => TransferEnd::Stored(transfer.bytes),
            Err(Error::Cancelled) if claim_lost && !cancel.is_cancelled() => TransferEnd::ClaimLost,
            Err(Error::Cancelled) => TransferEnd::Cancelled,
            Err(e) => TransferEnd::Failed(e),
        }
    }

    async fn count_failure(
        &self,
        run_id: &str,
        sha256: &Sha256Digest,
        message: &BottleMessage,
        reason: &str,
    ) -> Result<()> {
        let note = FailureNote {
            name: message.job.name.clone(),
            tag: message.job.tag.to_string(),
            sha256: sha256.to_string(),
            reason: reason.to_string(),
        };
        self.services
            .ledger
            .count_failed(run_id, sha256, &note)
            .await
            .map(|_| ())
    }

    /// Not this worker's turn: retry after `delay`, or, on the last receive,
    /// re-enqueue the body so the redrive policy does not dead-letter a
    /// bottle nobody counted.
    async fn later(&self, message: &QueueMessage, reason: String, delay: Duration) -> Disposition {
        if let (true, Some(source)) = (self.is_last_attempt(message), &self.source) {
            match source.send_all(vec![message.body.clone()]).await {
                Ok(()) => return Disposition::Requeued { reason },
                Err(e) => tracing::warn!(error = %e, "could not re-enqueue"),
            }
        }
        Disposition::Retry {
            reason,
            delay: Some(delay),
        }
    }

    /// A message that can never succeed: counted for its run when it names
    /// one, then moved to the DLQ.
    async fn refuse(&self, message: &QueueMessage, reason: String) -> Disposition {
        tracing::error!(message_id = %message.message_id, %reason, "refusing message");
        if let Some((run_id, sha256)) = salvage_ids(&message.body)
            && matches!(self.run_exists(&run_id).await, Ok(true))
        {
            let note = FailureNote {
                name: "(invalid message)".into(),
                tag: String::new(),
                sha256: sha256.to_string(),
                reason: reason.clone(),
            };
            if let Err(e) = self
                .services
                .ledger
                .count_failed(&run_id, &sha256, &note)
                .await
            {
                return retry(format!("ledger unavailable: {e}"));
            }
            if let Err(e) = finish_run_if_due(&self.services, &run_id, &self.worker_id).await {
                tracing::warn!(error = %e, "could not check whether the run drained");
            }
            let disposition = self
                .dead_letter(message, Disposition::Refused { reason })
                .await;
            self.emit_metrics(&run_id, sha256.as_str(), message, &disposition, None);
            return disposition;
        }
        self.dead_letter(message, Disposition::Refused { reason })
            .await
    }

    /// A bottle too slow for this worker (the Lambda deadline came first):
    /// its message goes to the ECS queue as a fresh copy, and this one is
    /// done with. Without an ECS queue it stays for SQS to deliver again.
    pub async fn hand_off_to_ecs(&self, message: &QueueMessage, why: &str) -> Disposition {
        let Some(ecs) = &self.services.large_queue else {
            return retry(format!(
                "{why}; no BOTTLESYNC_LARGE_QUEUE_URL to hand it to: left for SQS to deliver again"
            ));
        };
        match ecs.send_all(vec![message.body.clone()]).await {
            Ok(()) => {
                let reason = format!("{why}: handed to the ECS queue");
                tracing::warn!(message_id = %message.message_id, %reason, "bottle handed off");
                Disposition::Requeued { reason }
            }
            Err(e) => retry(format!("{why}; could not hand it to the ECS queue: {e}")),
        }
    }

    /// Sends the body to the DLQ, so it can be inspected and replayed; without
    /// a DLQ setting the redrive policy moves it after maxReceiveCount.
    async fn dead_letter(&self, message: &QueueMessage, disposition: Disposition) -> Disposition {
        let Some(dlq) = &self.services.dlq else {
            return retry(format!(
                "{disposition:?} (no BOTTLESYNC_DLQ_URL: left for the redrive policy)"
            ));
        };
        match dlq.send_all(vec![message.body.clone()]).await {
            Ok(()) => disposition,
            Err(e) => retry(format!("could not move the message to the DLQ: {e}")),
        }
    }
}

/// Every message given back to the queue says why, and when it returns.
fn log_settlement(message: &QueueMessage, disposition: &Disposition) {
    match disposition {
        Disposition::Retry { reason, delay } => tracing::warn!(
            message_id = %message.message_id,
            receive_count = message.receive_count,
            %reason,
            delay_s = delay.map(|d| d.as_secs()),
            "leaving the message for the queue to deliver again"
        ),
        Disposition::Requeued { reason } => tracing::info!(
            message_id = %message.message_id,
            receive_count = message.receive_count,
            %reason,
            "replaced the message by a fresh copy"
        ),
        _ => {}
    }
}

/// How a transfer under a claim ended.
enum TransferEnd {
    Stored(u64),
    Cancelled,
    ClaimLost,
    Failed(Error),
}

/// How long a copy of a bottle held elsewhere waits before it looks again.
const HOLDER_CHECK: Duration = Duration::from_secs(60);

fn retry(reason: String) -> Disposition {
    Disposition::Retry {
        reason,
        delay: None,
    }
}

/// Visibility before the next attempt: `base`, 2x, 4x ... capped at 15 min,
/// plus up to 25% jitter so a burst of failures does not return as a burst.
pub fn backoff_for(base: Duration, receive_count: u32) -> Duration {
    let delay = base
        .saturating_mul(1 << receive_count.saturating_sub(1).min(7))
        .min(Duration::from_secs(900));
    delay + delay.mul_f64(rand::random::<f64>() / 4.0)
}
