//! Runs many bottle jobs with at most `concurrency` in flight (a semaphore),
//! records each stored bottle in the ledger as soon as it is committed, and
//! stops starting new work when `shutdown` fires; in-flight transfers may
//! finish within the grace, then are cancelled (their uploads aborted).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bottlesync_core::BottleJob;
use bottlesync_core::Error;
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::ports::ledger::Ledger;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::BlobStore;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::segments::SegmentPolicy;
use bottlesync_core::shutdown::Shutdown;
use chrono::Utc;
use futures::FutureExt;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::transfer::{TransferSettings, fetch_verify_store};

/// Live counters, read by whoever shows progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes: AtomicU64,
    pub stored: AtomicUsize,
    pub failed: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// Label of the last bottle that finished, for log lines.
    pub last: Mutex<String>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub job: BottleJob,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct PoolOutcome {
    pub stored: Vec<(BottleJob, u64)>,
    pub failed: Vec<Failure>,
    /// Jobs never started because of a shutdown.
    pub not_started: usize,
    pub interrupted: bool,
}

pub struct PoolContext {
    pub registry: Arc<dyn Registry>,
    pub store: Arc<dyn BlobStore>,
    pub ledger: Arc<dyn Ledger>,
    pub retry: RetryPolicy,
    pub segments: SegmentPolicy,
}

pub async fn run_pool(
    context: Arc<PoolContext>,
    jobs: Vec<BottleJob>,
    concurrency: usize,
    progress: Arc<Progress>,
    mut shutdown: Shutdown,
    shutdown_grace: Duration,
) -> PoolOutcome {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut outcome = PoolOutcome::default();
    let total = jobs.len();
    let mut started = 0;
    for job in jobs {
        let permit = tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        started += 1;
        let context = context.clone();
        let progress = progress.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _permit = permit;
            progress.in_flight.fetch_add(1, Ordering::Relaxed);
            // A panic fails this bottle only.
            let result = AssertUnwindSafe(run_one(&context, &job, &progress, &cancel))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Some(Err("the transfer panicked (a bug: please report it)".into()))
                });
            progress.in_flight.fetch_sub(1, Ordering::Relaxed);
            *progress.last.lock().expect("progress lock") = job.label();
            (job, result)
        });
        // Reap finished tasks as we go so memory stays flat on huge plans.
        while let Some(done) = tasks.try_join_next() {
            add_to_outcome(done, &mut outcome);
        }
    }
    outcome.not_started = total - started;
    shutdown
        .drain(
            &mut tasks,
            shutdown_grace,
            |done| add_to_outcome(done, &mut outcome),
            || cancel.cancel(),
        )
        .await;
    outcome.interrupted = shutdown.is_shutdown();
    outcome
}

/// One bottle: `None` when the shutdown cancelled it (neither stored nor
/// failed: a rerun fetches it).
async fn run_one(
    context: &PoolContext,
    job: &BottleJob,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Option<Result<u64, String>> {
    let on_bytes = |n: u64| {
        progress.bytes.fetch_add(n, Ordering::Relaxed);
    };
    let transfer = fetch_verify_store(
        context.registry.as_ref(),
        context.store.as_ref(),
        job,
        TransferSettings {
            retry: &context.retry,
            segments: &context.segments,
        },
        &on_bytes,
        cancel,
    )
    .await;
    let result = match transfer {
        Err(Error::Cancelled) => return None,
        Ok(transfer) => {
            let record = MirroredBottle::from_job(job, transfer.bytes, Utc::now());
            match context.ledger.record_stored(&job.sha256, &record).await {
                Ok(()) => {
                    tracing::info!(bottle = %job.label(), key = %job.key, bytes = transfer.bytes,
                        seconds = transfer.duration.as_secs_f64(), attempts = transfer.attempts,
                        segmented = transfer.segmented, "stored");
                    Ok(transfer.bytes)
                }
                Err(e) => Err(format!("stored but not recorded: {e}")),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    match &result {
        Ok(_) => progress.stored.fetch_add(1, Ordering::Relaxed),
        Err(reason) => {
            tracing::warn!(bottle = %job.label(), sha256 = %job.sha256, reason, "failed");
            progress.failed.fetch_add(1, Ordering::Relaxed)
        }
    };
    Some(result)
}

type Finished = (BottleJob, Option<Result<u64, String>>);

fn add_to_outcome(done: Result<Finished, tokio::task::JoinError>, outcome: &mut PoolOutcome) {
    match done {
        Ok((job, Some(Ok(bytes)))) => outcome.stored.push((job, bytes)),
        Ok((job, Some(Err(reason)))) => outcome.failed.push(Failure { job, reason }),
        Ok((_, None)) => {}
        Err(e) => tracing::error!(error = %e, "a transfer task panicked"),
    }
}
