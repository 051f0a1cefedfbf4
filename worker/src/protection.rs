//! ECS task scale-in protection: while a task has bottles in flight, scaling
//! in must not pick it (a stopped download is work thrown away). The ECS
//! agent grants it (`ProtectionAgent`, the port); outside ECS (no agent)
//! this does nothing.
//!
//! Protection is asked for with an expiry, so that a task that dies without
//! dropping it holds it no longer than that. While bottles stay in flight a
//! background task renews it well before it expires (a large transfer, or a
//! busy worker taking bottle after bottle, outlasts any expiry), and it is
//! dropped as soon as the worker goes idle.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottlesync_core::ports::protection::ProtectionAgent;
use tokio::task::JoinHandle;

/// How long protection lasts unless renewed, and how often it is renewed
/// while bottles are in flight. Settable for tests (scaled down, ratios kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectionTiming {
    /// `ExpiresInMinutes` of each request (ECS accepts 1 to 2880).
    pub expires_in_minutes: u32,
    /// Time between renewals while protected: half the expiry, so that a
    /// failed renewal leaves time for retries before protection lapses.
    pub renew_every: Duration,
    /// Time before another attempt after a refused or unanswered request.
    pub retry_after_failure: Duration,
}

impl Default for ProtectionTiming {
    fn default() -> Self {
        ProtectionTiming {
            expires_in_minutes: 60,
            renew_every: Duration::from_secs(30 * 60),
            retry_after_failure: Duration::from_secs(60),
        }
    }
}

pub struct TaskProtection {
    agent: Option<Arc<dyn ProtectionAgent>>,
    timing: ProtectionTiming,
    /// Renews the protection while it is on.
    renewer: Mutex<Option<JoinHandle<()>>>,
}

impl TaskProtection {
    pub fn new(agent: Option<Arc<dyn ProtectionAgent>>) -> Self {
        Self::with_timing(agent, ProtectionTiming::default())
    }

    pub fn with_timing(agent: Option<Arc<dyn ProtectionAgent>>, timing: ProtectionTiming) -> Self {
        assert!(
            (1..=2880).contains(&timing.expires_in_minutes),
            "ExpiresInMinutes must be between 1 and 2880, not {}",
            timing.expires_in_minutes
        );
        TaskProtection {
            agent,
            timing,
            renewer: Mutex::new(None),
        }
    }

    /// Turns protection on (renewed in the background until turned off) or
    /// off. Failures are logged with what happens next, never fatal.
    pub async fn set(&self, protected: bool) {
        let Some(agent) = &self.agent else {
            return;
        };
        // Whatever is asked now, the running renewer's job is over.
        let previous = self.renewer.lock().expect("renewer lock").take();
        if let Some(previous) = previous {
            previous.abort();
            let _ = previous.await;
        }
        let timing = self.timing;
        if !protected {
            match agent.put_state(false, timing.expires_in_minutes).await {
                Ok(()) => tracing::debug!("task scale-in protection off"),
                Err(e) => tracing::warn!(
                    error = %e,
                    lapses_within_minutes = timing.expires_in_minutes,
                    "could not drop task scale-in protection: not retrying, it lapses by itself; until then scale-in passes over this idle task"
                ),
            }
            return;
        }
        let first_wait = ask_for_protection(agent.as_ref(), timing, Request::First).await;
        let renewer = tokio::spawn(renew(agent.clone(), timing, first_wait));
        *self.renewer.lock().expect("renewer lock") = Some(renewer);
    }
}

impl Drop for TaskProtection {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.get_mut().expect("renewer lock").take() {
            renewer.abort();
        }
    }
}

/// Asks for protection again and again (each request resets the expiry),
/// until aborted by `set`.
async fn renew(agent: Arc<dyn ProtectionAgent>, timing: ProtectionTiming, mut wait: Duration) {
    loop {
        tokio::time::sleep(wait).await;
        wait = ask_for_protection(agent.as_ref(), timing, Request::Renewal).await;
    }
}

/// Whether protection is asked for the first time or renewed (only the
/// log lines differ).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Request {
    First,
    Renewal,
}

/// Asks for protection (or for its expiry to be reset); returns how long
/// until the next request: a renewal after a grant, a retry after a failure.
async fn ask_for_protection(
    agent: &dyn ProtectionAgent,
    timing: ProtectionTiming,
    request: Request,
) -> Duration {
    match agent.put_state(true, timing.expires_in_minutes).await {
        Ok(()) => {
            let state = match request {
                Request::First => "on",
                Request::Renewal => "renewed",
            };
            tracing::debug!(
                expires_in_minutes = timing.expires_in_minutes,
                "task scale-in protection {state}"
            );
            timing.renew_every
        }
        Err(e) => {
            let retry_in_s = timing.retry_after_failure.as_secs_f64();
            match request {
                Request::First => tracing::warn!(
                    error = %e,
                    retry_in_s,
                    "task scale-in protection refused: scale-in may stop this task mid-bottle; asking again"
                ),
                Request::Renewal => tracing::warn!(
                    error = %e,
                    retry_in_s,
                    "could not renew task scale-in protection: it lapses at its expiry unless a retry succeeds; retrying"
                ),
            }
            timing.retry_after_failure
        }
    }
}
