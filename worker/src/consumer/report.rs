//! What the consumer tells the outside about counted bottles: an EMF
//! metrics line per message (when `BOTTLESYNC_METRICS` is on) and, for ECS
//! runs, a Slack progress message when this worker wins the fleet-wide
//! slot for it.

use std::time::{Duration, Instant};

use bottlesync_core::metrics::{self, Unit};
use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::notifier::notify_or_log;
use bottlesync_core::ports::queue::QueueMessage;
use chrono::Utc;

use super::{Consumer, Disposition};

impl Consumer {
    /// After a bottle of an ECS run was counted: posts a progress message if
    /// this worker wins the fleet-wide slot (at most one per
    /// `BOTTLESYNC_PROGRESS_INTERVAL_SECONDS` for all workers together) and
    /// the run has not drained (then the summary says it all).
    pub(super) async fn report_progress(&self, run_id: &str) {
        let Some(interval) = self.ports.progress_interval else {
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
            .ports
            .finisher
            .ledger
            .try_progress_slot(run_id, interval)
            .await
        {
            Ok(Some(run)) if run.done() < run.expected => {
                let message = bottlesync_core::run::messages::progress(
                    &run,
                    &self.ports.finisher.context,
                    Utc::now(),
                );
                tracing::info!(
                    run_id,
                    done = run.done(),
                    expected = run.expected,
                    "posting progress"
                );
                notify_or_log(self.ports.finisher.notifier.as_ref(), &message).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(run_id, error = %e, "could not take the progress slot"),
        }
    }

    /// One EMF line per message with a counted outcome (when metrics are on).
    pub(super) fn emit_metrics(
        &self,
        run_id: &str,
        sha256: &str,
        message: &QueueMessage,
        disposition: &Disposition,
        download: Option<Duration>,
    ) {
        if !self.ports.finisher.metrics.enabled {
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
            &self.ports.finisher.metrics.environment,
            &values,
            &[("run_id", run_id), ("sha256", sha256)],
        );
    }
}
