//! One shutdown for everything that works through bottles (`sync`'s pool,
//! the ECS work loop), as mini-redis's `Shutdown`: whoever decides to stop
//! (a signal handler, a lost store lease, a test) holds a [`ShutdownSignal`];
//! every loop holds a [`Shutdown`] and asks it `is_shutdown()` or waits on
//! `recv()`. Stopping is two steps: `stop` (take no new work; what is in
//! flight may finish within a grace) and `cancel` (abandon it now).
//! [`Shutdown::drain`] is the second half of every loop: it waits for the
//! in-flight tasks and abandons them when the grace is over or on `cancel`.

use std::future::pending;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};

/// The sending side: clone it to whoever may stop the work.
#[derive(Clone, Debug)]
pub struct ShutdownSignal {
    stop: watch::Sender<bool>,
    cancel: watch::Sender<bool>,
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        ShutdownSignal {
            stop: watch::Sender::new(false),
            cancel: watch::Sender::new(false),
        }
    }
}

impl ShutdownSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            stop: self.stop.subscribe(),
            cancel: self.cancel.subscribe(),
        }
    }

    /// Take no new work; what is in flight may finish within the grace.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stop, and abandon what is in flight now.
    pub fn cancel(&self) {
        self.stop();
        self.cancel.send_replace(true);
    }

    /// Cancels once `lost` fires (a store lease lost to another run),
    /// from a task of its own.
    pub fn cancel_when(&self, lost: tokio_util::sync::CancellationToken) {
        let signal = self.clone();
        tokio::spawn(async move {
            lost.cancelled().await;
            signal.cancel();
        });
    }
}

/// The listening side, one per loop.
#[derive(Clone, Debug)]
pub struct Shutdown {
    stop: watch::Receiver<bool>,
    cancel: watch::Receiver<bool>,
}

impl Shutdown {
    /// A shutdown that never comes (work that runs to its end).
    pub fn never() -> Self {
        ShutdownSignal::new().subscribe()
    }

    pub fn is_shutdown(&self) -> bool {
        *self.stop.borrow()
    }

    /// Returns once the stop is signalled (at once if it already was). A
    /// signal whose senders are all gone can no longer stop anything: this
    /// then never returns.
    pub async fn recv(&mut self) {
        became_true(&mut self.stop).await
    }

    /// Returns once what is in flight is to be abandoned (`cancel`).
    pub async fn cancelled(&mut self) {
        became_true(&mut self.cancel).await
    }

    /// Waits for every task in `tasks`, handing each result to `on_done`.
    /// Once the stop is signalled they have `grace` to finish; then, or at
    /// once on `cancel`, `abandon` is called (once) and the rest awaited.
    pub async fn drain<T: 'static>(
        &mut self,
        tasks: &mut JoinSet<T>,
        grace: Duration,
        mut on_done: impl FnMut(Result<T, JoinError>),
        abandon: impl FnOnce(),
    ) {
        let mut abandon = Some(abandon);
        let mut grace_over = None;
        loop {
            if grace_over.is_none() && self.is_shutdown() && !tasks.is_empty() {
                tracing::info!(
                    in_flight = tasks.len(),
                    grace_s = grace.as_secs(),
                    "stopping: letting in-flight bottles finish"
                );
                grace_over = Some(Box::pin(tokio::time::sleep(grace)));
            }
            let (stopped, waiting, timing) =
                (self.is_shutdown(), abandon.is_some(), grace_over.is_some());
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(done) => on_done(done),
                    None => return,
                },
                _ = became_true(&mut self.stop), if !stopped => {}
                _ = async { grace_over.as_mut().expect("guarded").await }, if waiting && timing => {
                    tracing::warn!(in_flight = tasks.len(), "grace period over: abandoning in-flight bottles");
                    abandon.take().expect("guarded")();
                }
                _ = became_true(&mut self.cancel), if waiting => {
                    tracing::warn!(in_flight = tasks.len(), "cancelled: abandoning in-flight bottles now");
                    abandon.take().expect("guarded")();
                }
            }
        }
    }
}

async fn became_true(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        pending::<()>().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_is_seen_by_every_subscriber_even_after_the_fact() {
        let signal = ShutdownSignal::new();
        let mut early = signal.subscribe();
        assert!(!early.is_shutdown());
        signal.stop();
        let mut late = signal.subscribe();
        early.recv().await;
        late.recv().await;
        assert!(early.is_shutdown() && late.is_shutdown());
    }

    #[tokio::test]
    async fn a_dropped_signal_is_not_a_stop() {
        let mut shutdown = ShutdownSignal::new().subscribe();
        let waited = tokio::time::timeout(SHORT, shutdown.recv()).await;
        assert!(waited.is_err());
        assert!(!shutdown.is_shutdown());
    }

    // Outcomes, not timings: the grace is either far longer or far shorter
    // than the work, and a 60 s guard turns a hang into a failure.
    const LONG: Duration = Duration::from_secs(3600);
    const SHORT: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn drain_lets_work_finish_within_the_grace() {
        let signal = ShutdownSignal::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(async {
            tokio::time::sleep(SHORT).await;
            "finished"
        });
        signal.stop();
        let mut done = Vec::new();
        let mut abandoned = false;
        let mut shutdown = signal.subscribe();
        let drain = shutdown.drain(
            &mut tasks,
            LONG,
            |d| done.push(d.unwrap()),
            || abandoned = true,
        );
        tokio::time::timeout(Duration::from_secs(60), drain)
            .await
            .unwrap();
        assert_eq!((done, abandoned), (vec!["finished"], false));
    }

    /// One hour-long task that ends "abandoned" when `drain` abandons it;
    /// what `drain` handed over.
    async fn drain_a_long_task(mut shutdown: Shutdown, grace: Duration) -> Vec<&'static str> {
        let (abandon_tx, abandon_rx) = tokio::sync::oneshot::channel::<()>();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(LONG) => "finished",
                _ = abandon_rx => "abandoned",
            }
        });
        let mut done = Vec::new();
        let abandon = || {
            let _ = abandon_tx.send(());
        };
        let drain = shutdown.drain(&mut tasks, grace, |d| done.push(d.unwrap()), abandon);
        tokio::time::timeout(Duration::from_secs(60), drain)
            .await
            .unwrap();
        done
    }

    #[tokio::test]
    async fn drain_abandons_what_outlasts_the_grace() {
        let signal = ShutdownSignal::new();
        signal.stop();
        let done = drain_a_long_task(signal.subscribe(), SHORT).await;
        assert_eq!(done, vec!["abandoned"]);
    }

    #[tokio::test]
    async fn drain_without_a_stop_waits_and_cancel_abandons_at_once() {
        let signal = ShutdownSignal::new();
        let canceller = signal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SHORT).await;
            canceller.cancel();
        });
        let done = drain_a_long_task(signal.subscribe(), LONG).await;
        assert_eq!(done, vec!["abandoned"]);
    }
}
