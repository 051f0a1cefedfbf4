//! One way to keep what a process holds for a while: `sync`'s store lock, a
//! run's planning and finishing leases, a bottle's claim, a message's
//! visibility. The holder has taken it; [`Lease::keep`] renews it every
//! third of its length in the background, so a renewal that fails (an
//! outage, a lost answer) is logged and tried again at the next beat, two
//! more before it runs out. A renewal the other side refuses (someone else
//! holds it now) fires [`Lease::lost`], a cancellation token the work under
//! the lease watches. [`Lease::stop`] ends the renewals (waiting for one in
//! flight) before the holder hands the thing back: nothing a process holds
//! outlives it for longer than one length.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;
/// The token [`Lease::lost`] hands out, for callers without tokio-util.
pub use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// How to renew one held thing.
#[async_trait]
pub trait Renewal: Send + Sync + 'static {
    /// What is held, for log lines ("run X: planning lease").
    fn what(&self) -> String;

    /// Renews it for a full length from now. `Ok(false)`: it is someone
    /// else's now (the lease is lost); `Err`: try again at the next beat.
    async fn renew(&self) -> Result<bool>;
}

/// A held thing, renewed until [`Lease::stop`].
pub struct Lease {
    renewal: Arc<dyn Renewal>,
    lost: CancellationToken,
    stop: CancellationToken,
    /// Taken by [`Lease::stop`].
    task: Option<JoinHandle<()>>,
}

impl Lease {
    /// Starts renewing what `renewal` names, just taken for `length`.
    pub fn keep(renewal: Arc<dyn Renewal>, length: Duration) -> Lease {
        Self::keep_at_most(renewal, length, None)
    }

    /// [`Lease::keep`], but renewing for no longer than `most`: a holder
    /// stuck that long (a hung step) lets it go to the next taker.
    pub fn keep_at_most(
        renewal: Arc<dyn Renewal>,
        length: Duration,
        most: Option<Duration>,
    ) -> Lease {
        let (lost, stop) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(renew_every_third(
            renewal.clone(),
            length,
            most,
            lost.clone(),
            stop.clone(),
        ));
        Lease {
            renewal,
            lost,
            stop,
            task: Some(task),
        }
    }

    /// Fires when the lease is lost to someone else.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Renews now, outside the beat: right before an act only the holder
    /// may do (sealing a run, posting its summary), so that a fresh full
    /// lease covers it. `Ok(false)` (and [`Lease::lost`] fires) when it
    /// was lost.
    pub async fn confirm(&self) -> Result<bool> {
        if self.is_lost() {
            return Ok(false);
        }
        let held = self.renewal.renew().await?;
        if !held {
            tracing::warn!(held = %self.renewal.what(), "lost to another holder");
            self.lost.cancel();
        }
        Ok(held)
    }

    /// Stops renewing; returns once a renewal in flight has landed, so
    /// the holder can hand the thing back without a renewal racing it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let Some(task) = self.task.take() else {
            return;
        };
        if let Err(e) = task.await {
            tracing::warn!(held = %self.renewal.what(), error = %e, "the lease's renewals ended abnormally");
        }
    }
}

impl Drop for Lease {
    /// A holder that returns early (an error, a panic) stops the renewals
    /// too: the thing then runs out instead of being held forever.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn renew_every_third(
    renewal: Arc<dyn Renewal>,
    length: Duration,
    most: Option<Duration>,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let give_up = most.map(|most| tokio::time::Instant::now() + most.max(length));
    let mut beat = tokio::time::interval((length / 3).max(Duration::from_millis(10)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = beat.tick() => {}
        }
        if give_up.is_some_and(|at| tokio::time::Instant::now() >= at) {
            tracing::error!(
                held = %renewal.what(),
                "held for {} s: no longer renewing, so another taker can have it",
                most.unwrap_or_default().as_secs()
            );
            return;
        }
        // A renewal is not interrupted by `stop`: `Lease::stop` waits for it.
        match renewal.renew().await {
            Ok(true) => tracing::debug!(held = %renewal.what(), "renewed"),
            Ok(false) => {
                tracing::warn!(held = %renewal.what(), "lost to another holder");
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(held = %renewal.what(), error = %e, "could not renew: trying again at the next beat")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::Error;

    /// Answers renewals from a script: true, false, or an error.
    struct Scripted {
        answers: std::sync::Mutex<Vec<Option<bool>>>,
        calls: AtomicU32,
    }

    #[async_trait]
    impl Renewal for Scripted {
        fn what(&self) -> String {
            "test lease".into()
        }
        async fn renew(&self) -> Result<bool> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.answers.lock().unwrap().pop() {
                Some(Some(held)) => Ok(held),
                Some(None) => Err(Error::ledger("test", "outage")),
                None => Ok(true),
            }
        }
    }

    fn scripted(answers_in_order: &[Option<bool>]) -> Arc<Scripted> {
        let mut answers = answers_in_order.to_vec();
        answers.reverse();
        Arc::new(Scripted {
            answers: std::sync::Mutex::new(answers),
            calls: AtomicU32::new(0),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn renews_every_third_through_outages_and_fires_on_loss() {
        let renewal = scripted(&[Some(true), None, Some(true), Some(false)]);
        let lease = Lease::keep(renewal.clone(), Duration::from_secs(30));
        let lost = lease.lost();
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(renewal.calls.load(Ordering::SeqCst), 2, "at 10 s and 20 s");
        assert!(!lease.is_lost(), "an outage is not a loss");
        tokio::time::timeout(Duration::from_secs(30), lost.cancelled())
            .await
            .expect("the refused renewal at 40 s fires the token");
        assert_eq!(renewal.calls.load(Ordering::SeqCst), 4);
        lease.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_and_drop_end_the_renewals_and_a_bounded_lease_gives_up() {
        let renewal = scripted(&[]);
        let lease = Lease::keep(renewal.clone(), Duration::from_secs(30));
        tokio::time::sleep(Duration::from_secs(11)).await;
        lease.stop().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(renewal.calls.load(Ordering::SeqCst), 1);

        let dropped = scripted(&[]);
        drop(Lease::keep(dropped.clone(), Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(dropped.calls.load(Ordering::SeqCst), 0);

        let bounded = scripted(&[]);
        let lease = Lease::keep_at_most(
            bounded.clone(),
            Duration::from_secs(30),
            Some(Duration::from_secs(45)),
        );
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(bounded.calls.load(Ordering::SeqCst), 4, "10, 20, 30, 40 s");
        assert!(!lease.is_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn confirm_renews_now_and_reports_a_loss() {
        let renewal = scripted(&[Some(true), Some(false)]);
        let lease = Lease::keep(renewal.clone(), Duration::from_secs(30));
        assert!(lease.confirm().await.unwrap());
        assert!(!lease.confirm().await.unwrap());
        assert!(lease.is_lost());
        assert!(!lease.confirm().await.unwrap(), "lost stays lost");
        assert_eq!(renewal.calls.load(Ordering::SeqCst), 2);
    }
}
