//! Retrying transient failures: exponential backoff with jitter (backon),
//! overridden by the server's `Retry-After` when it gives one.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::error::Result;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` we honour; a longer one is capped.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// For webhooks: a few quick tries, then give up (and log).
    pub fn notifications() -> Self {
        RetryPolicy {
            retries: 3,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
        }
    }

    /// The delays before each retry, jittered.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.retries)
            .with_jitter()
            .build()
    }

    /// How long to wait after `error`, given the next backoff delay.
    pub fn wait_for(&self, error: &crate::Error, backoff: Duration) -> Duration {
        error
            .retry_after()
            .map(|d| d.min(self.max_retry_after))
            .unwrap_or(backoff)
    }

    /// Runs `op`, retrying transient errors.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut delays = self.delays();
        loop {
            match op().await {
                Err(e) if e.is_transient() => match delays.next() {
                    Some(delay) => {
                        let wait = self.wait_for(&e, delay);
                        tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }
}

/// A write that must land (a seal, a posted summary's record, a stored
/// bottle's record), tried up to `attempts` times whatever the error:
/// each failure but the last is logged at warn as "could not `what`:
/// trying again", then waits `wait(attempt)`. The last error is returned
/// for the caller to say what its loss means.
pub async fn retry_write<T, F, Fut>(
    what: &str,
    attempts: u32,
    wait: impl Fn(u32) -> Duration,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < attempts => {
                let wait = wait(attempt);
                tracing::warn!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "could not {what}: trying again");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_retry_after: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn a_write_is_tried_the_given_times_then_its_last_error_returned() {
        let calls = AtomicUsize::new(0);
        let result: Result<()> = retry_write(
            "write",
            3,
            |_| Duration::ZERO,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Err(crate::Error::config("x", format!("failure {n}")))
            },
        )
        .await;
        assert!(result.unwrap_err().to_string().contains("failure 2"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let calls = AtomicUsize::new(0);
        let result = retry_write(
            "write",
            3,
            |_| Duration::ZERO,
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(crate::Error::config("x", "once")),
                    n => Ok(n),
                }
            },
        )
        .await;
        assert_eq!(result.unwrap(), 1);
    }

    #[tokio::test]
    async fn retries_transient_then_gives_up() {
        let calls = AtomicUsize::new(0);
        let result: Result<()> = fast()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(crate::Error::transient_fetch("u", "reset"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicUsize::new(0);
        let _ = fast()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(crate::Error::permanent_fetch("u", "404"))
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn retry_after_is_capped() {
        let e = crate::Error::Fetch {
            url: "u".into(),
            problem: "429".into(),
            transient: true,
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(
            fast().wait_for(&e, Duration::from_millis(1)),
            Duration::from_millis(5)
        );
    }
}
