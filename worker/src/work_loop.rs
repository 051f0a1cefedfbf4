//! The ECS worker: long-polls a queue with N concurrent slots (a semaphore),
//! keeps the messages it works on invisible (heartbeat), and on shutdown
//! stops receiving, lets in-flight bottles finish for a grace period, then
//! cancels the rest (uploads aborted, messages made visible again).
//! With `drain`, it returns once the queue has stayed empty for a while.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bottlesync_core::Result;
use bottlesync_core::lease::{Lease, Renewal};
use bottlesync_core::ports::protection::ProtectionAgent;
use bottlesync_core::ports::queue::{Queue, QueueMessage};
use bottlesync_core::shutdown::Shutdown;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::consumer::{Consumer, Disposition};

/// A message in work, kept invisible (`ChangeMessageVisibility`). SQS
/// cannot say that another receive has it: a failed extension is an error,
/// never a loss.
struct MessageVisibility {
    queue: Arc<dyn Queue>,
    message_id: String,
    receipt: String,
    visibility: Duration,
}

#[async_trait]
impl Renewal for MessageVisibility {
    fn what(&self) -> String {
        format!("message {}: visibility", self.message_id)
    }

    async fn renew(&self) -> Result<bool> {
        self.queue
            .set_visibility(&self.receipt, self.visibility)
            .await
            .map(|()| true)
    }
}

#[derive(Clone, Debug)]
pub struct WorkOptions {
    pub concurrency: usize,
    /// Return once the queue has been empty (visible and in flight) this long.
    pub drain: Option<Duration>,
    /// The queue's visibility timeout; messages in work are extended by it.
    pub visibility_timeout: Duration,
    /// After a shutdown signal, how long in-flight bottles may still finish.
    pub shutdown_grace: Duration,
    /// Long-poll wait per receive.
    pub poll_wait: Duration,
    /// The ECS agent, for scale-in protection while bottles are in flight
    /// (none outside ECS).
    pub protection: Option<Arc<dyn ProtectionAgent>>,
}

impl Default for WorkOptions {
    fn default() -> Self {
        WorkOptions {
            concurrency: 4,
            drain: None,
            visibility_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(80),
            poll_wait: Duration::from_secs(20),
            protection: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkStats {
    pub stored: usize,
    pub skipped: usize,
    pub failed: usize,
    pub refused: usize,
    pub retried: usize,
}

impl WorkStats {
    fn add(&mut self, d: &Disposition) {
        match d {
            Disposition::Stored { .. } => self.stored += 1,
            Disposition::Skipped => self.skipped += 1,
            Disposition::Failed { .. } => self.failed += 1,
            Disposition::Refused { .. } => self.refused += 1,
            Disposition::Retry { .. } | Disposition::Requeued { .. } => self.retried += 1,
        }
    }
}

pub async fn run_work_loop(
    consumer: Arc<Consumer>,
    queue: Arc<dyn Queue>,
    options: WorkOptions,
    mut shutdown: Shutdown,
) -> Result<WorkStats> {
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let cancel = CancellationToken::new();
    let mut tasks: JoinSet<Disposition> = JoinSet::new();
    let mut stats = WorkStats::default();
    let mut empty_since: Option<Instant> = None;
    let protection = crate::protection::TaskProtection::new(options.protection.clone());
    let acks = Acks::start(queue.clone());
    let mut protected = false;
    loop {
        while let Some(done) = tasks.try_join_next() {
            count_finished(done, &mut stats);
        }
        // Scale-in protection exactly while bottles are in flight.
        let busy = !tasks.is_empty();
        if protected != busy {
            protected = busy;
            protection.set(protected).await;
        }
        if shutdown.is_shutdown() {
            break;
        }
        let free = slots.available_permits().min(10);
        if free == 0 {
            tokio::select! {
                Some(done) = tasks.join_next() => count_finished(done, &mut stats),
                _ = shutdown.recv() => {}
            }
            continue;
        }
        let wait = match options.drain {
            Some(grace) => options.poll_wait.min(grace).min(Duration::from_secs(2)),
            None => options.poll_wait,
        };
        let received = tokio::select! {
            received = queue.receive(free, wait) => received,
            _ = shutdown.recv() => continue,
        };
        let messages = match received {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, queue = %queue.name(), "receive failed; backing off");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        // Fewer than asked: the queue may have run dry, so a bottle counted
        // now may be a run's last (see `Consumer::finish_drained_runs`).
        consumer.set_queue_may_be_empty(messages.len() < free);
        if messages.is_empty() {
            consumer.finish_drained_runs().await;
            if let Some(grace) = options.drain
                && tasks.is_empty()
            {
                let depth = queue.depth().await?;
                if depth.is_empty() {
                    let since = *empty_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= grace {
                        break;
                    }
                } else {
                    empty_since = None;
                }
            }
            continue;
        }
        empty_since = None;
        for message in messages {
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let consumer = consumer.clone();
            let queue = queue.clone();
            let cancel = cancel.child_token();
            let visibility = options.visibility_timeout;
            let acks = acks.sender();
            tasks.spawn(async move {
                let _permit = permit;
                handle_keeping_invisible(consumer, queue, acks, message, visibility, cancel).await
            });
        }
    }

    shutdown
        .drain(
            &mut tasks,
            options.shutdown_grace,
            |done| count_finished(done, &mut stats),
            || cancel.cancel(),
        )
        .await;
    acks.close().await;
    if protected {
        protection.set(false).await;
    }
    if options.drain.is_some()
        && !shutdown.is_shutdown()
        && let Err(e) = consumer
            .ports
            .finisher
            .finish_latest_if_due(&consumer.worker_id)
            .await
    {
        tracing::warn!(error = %e, "could not finish the latest run");
    }
    Ok(stats)
}

fn count_finished(
    done: std::result::Result<Disposition, tokio::task::JoinError>,
    stats: &mut WorkStats,
) {
    match done {
        Ok(d) => stats.add(&d),
        Err(e) => {
            tracing::error!(error = %e, "message task panicked");
            stats.retried += 1;
        }
    }
}

/// One message: handled while its visibility is extended, then deleted or
/// returned to the queue.
async fn handle_keeping_invisible(
    consumer: Arc<Consumer>,
    queue: Arc<dyn Queue>,
    acks: mpsc::UnboundedSender<String>,
    message: QueueMessage,
    visibility: Duration,
    cancel: CancellationToken,
) -> Disposition {
    // Invisible while it is handled: a third of the visibility before it
    // runs out, SQS hears again that it is in work.
    let invisible = Lease::keep(
        Arc::new(MessageVisibility {
            queue: queue.clone(),
            message_id: message.message_id.clone(),
            receipt: message.receipt.clone(),
            visibility,
        }),
        visibility,
    );
    let disposition = consumer.handle(&message, &cancel).await;
    invisible.stop().await;
    let result = match &disposition {
        d if d.acknowledges() => match acks.send(message.receipt.clone()) {
            Ok(()) => Ok(()),
            Err(_) => queue.delete(&message.receipt).await,
        },
        Disposition::Retry { delay, .. } => {
            // Cancelled work goes back at once; failures after a backoff.
            let delay = if cancel.is_cancelled() {
                Duration::ZERO
            } else {
                *delay
            };
            queue.set_visibility(&message.receipt, delay).await
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(message_id = %message.message_id, error = %e, "could not settle the message");
    }
    disposition
}

/// How long an acknowledged message waits for others to share its delete.
const ACK_LINGER: Duration = Duration::from_millis(500);

/// Deletes acknowledged messages in batches of up to ten: one
/// DeleteMessageBatch instead of ten DeleteMessage calls. A delete lost to a
/// crash only means a redelivery, which the ledger counts once.
struct Acks {
    sender: mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Acks {
    fn start(queue: Arc<dyn Queue>) -> Acks {
        let (sender, mut receipts) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            let mut batch: Vec<String> = Vec::with_capacity(10);
            while let Some(first) = receipts.recv().await {
                batch.push(first);
                let linger = tokio::time::sleep(ACK_LINGER);
                tokio::pin!(linger);
                while batch.len() < 10 {
                    tokio::select! {
                        next = receipts.recv() => match next {
                            Some(receipt) => batch.push(receipt),
                            None => break,
                        },
                        _ = &mut linger => break,
                    }
                }
                match queue.delete_batch(&batch).await {
                    Ok(failed) if failed.is_empty() => {}
                    Ok(failed) => {
                        tracing::warn!(
                            failed = failed.len(),
                            "some deletes failed: those messages come back"
                        )
                    }
                    Err(e) => tracing::warn!(error = %e, "delete failed: those messages come back"),
                }
                batch.clear();
            }
        });
        Acks { sender, task }
    }

    fn sender(&self) -> mpsc::UnboundedSender<String> {
        self.sender.clone()
    }

    /// Flushes what is pending.
    async fn close(self) {
        drop(self.sender);
        let _ = self.task.await;
    }
}
