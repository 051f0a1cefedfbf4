//! Drives a run to its end, the same way for both backends: keeps the
//! requested number of workers alive until the summary is posted, kills one
//! now and then (and notes the bottles whose claim it held), and samples the
//! queue, the DLQ and the run's counters for the timeline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_core::ports::fleet_ledger::{BottleState, ClaimOwner};
use bottlesync_core::ports::queue::Queue;
use bottlesync_core::run::messages::{TITLE_COMPLETE, TITLE_FAILED};
use bottlesync_loadtest::webhook::WebhookReceiver;
use rand::Rng;
use serde::Serialize;

use crate::LoadOptions;

/// The workers of one backend: processes or tasks.
pub trait WorkerPool {
    /// Starts one more worker.
    fn spawn(&mut self) -> anyhow::Result<()>;
    /// Workers still running (reaps the ones that ended; an unexpected
    /// failure is returned as a problem).
    fn alive(&mut self) -> (usize, Vec<String>);
    /// The prefix of the claim owners of each live worker, in order.
    fn owner_prefixes(&self) -> Vec<String>;
    /// Kills worker `index` of the live ones without warning; returns the
    /// prefix of the claim owners it used.
    fn kill(&mut self, index: usize) -> impl Future<Output = Option<String>>;
    /// Peak resident memory per worker so far, in bytes.
    fn peak_rss(&mut self) -> Vec<u64>;
    /// Called every tick: runs the scheduled reconcile when it is due and
    /// the backend has one; returns a problem it met.
    fn reconcile(&mut self) -> Option<String> {
        None
    }
}

/// One point of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub seconds: f64,
    pub visible: u64,
    pub in_flight: u64,
    pub dlq: u64,
    /// Stored + skipped + failed so far.
    pub done: u64,
    pub stored: u64,
    pub workers: usize,
}

#[derive(Debug, Default)]
pub struct Driven {
    pub samples: Vec<Sample>,
    pub kills: usize,
    /// Per sha256: how many killed workers held its claim.
    pub held_at_kills: BTreeMap<String, u64>,
    /// From the first worker's start to the summary.
    pub elapsed: Duration,
    /// From the run's last counted bottle to the summary (sampling resolution).
    pub last_bottle_to_summary: Option<Duration>,
    /// Workers that ended badly (not killed by us).
    pub problems: Vec<String>,
    pub timed_out: bool,
    /// The Slack outage (`LoadOptions::slack_outage`), from its start, and
    /// the posts Slack refused during it.
    pub slack_outage: Option<(Duration, u64)>,
}

const TICK: Duration = Duration::from_millis(250);
const SAMPLE_EVERY: usize = 4;

pub async fn drive<P: WorkerPool>(
    options: &LoadOptions,
    services: &FleetAdapters,
    queue: Arc<dyn Queue>,
    run_id: &str,
    webhook: &WebhookReceiver,
    pool: &mut P,
) -> anyhow::Result<Driven> {
    let mut driven = Driven::default();
    let dlq = services
        .dlq
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no DLQ configured"))?;
    let start = Instant::now();
    for _ in 0..options.workers {
        pool.spawn()?;
    }
    let mut next_kill = options.kill_every.map(|every| start + every);
    let mut outage_started: Option<Instant> = None;
    let mut outage_ends_at: Option<Instant> = None;
    let mut all_done_at: Option<Instant> = None;
    let mut summary_at: Option<Instant> = None;
    let mut rng = rand::rng();
    for tick in 0usize.. {
        tokio::time::sleep(TICK).await;
        let (alive, problems) = pool.alive();
        driven.problems.extend(problems);
        if summary_at.is_none() {
            let titles = webhook.titles();
            if titles
                .iter()
                .any(|t| t == TITLE_COMPLETE || t == TITLE_FAILED)
            {
                summary_at = Some(Instant::now());
            }
        }
        let run = services.ledger.run(run_id).await?;
        if all_done_at.is_none()
            && let Some(run) = &run
            && run.done() >= run.expected
        {
            all_done_at = Some(Instant::now());
        }
        // Slack stays down at least `slack_outage` after the last bottle,
        // and until it has refused a post: a finish that comes late (a lost
        // answer left it to the reconcile, on a loaded machine) still meets
        // the outage, so the test always sees a refused summary retried.
        if let (Some(outage), Some(_), Some(done_at)) =
            (options.slack_outage, outage_started, all_done_at)
            && outage_ends_at.is_none()
            && done_at.elapsed() >= outage
            && webhook.refused() > 0
        {
            webhook.fail_for(Duration::ZERO);
            outage_ends_at = Some(Instant::now());
            tracing::info!("Slack outage ends");
        }
        // From the first look at the run: a later start (it was at 90% of
        // the bottles) let a fast end post the summary between two ticks
        // of a loaded machine, before the outage began.
        if let (Some(_), None, Some(run)) = (options.slack_outage, outage_started, &run)
            && run.expected > 0
        {
            outage_started = Some(Instant::now());
            // Until ended above (the run's timeout bounds it).
            webhook.fail_for(options.timeout);
            tracing::info!("Slack outage begins");
        }
        if let Some(problem) = pool.reconcile() {
            driven.problems.push(problem);
        }
        if tick % SAMPLE_EVERY == 0 || (summary_at.is_some() && alive == 0) {
            let depth = queue.depth().await?;
            let dlq_depth = dlq.depth().await?;
            driven.samples.push(Sample {
                seconds: start.elapsed().as_secs_f64(),
                visible: depth.visible,
                in_flight: depth.in_flight,
                dlq: dlq_depth.visible + dlq_depth.in_flight,
                done: run.as_ref().map_or(0, |r| r.done()),
                stored: run.as_ref().map_or(0, |r| r.stored),
                workers: alive,
            });
        }
        if summary_at.is_some() && alive == 0 {
            break;
        }
        // The ledger says the summary went out, Slack never got it, and no
        // worker is left to try again: nothing more will come.
        if summary_at.is_none() && alive == 0 && run.as_ref().is_some_and(|r| r.summary_sent) {
            driven
                .problems
                .push("the run is marked summarised, but Slack never accepted its summary".into());
            break;
        }
        if start.elapsed() > options.timeout {
            driven.timed_out = true;
            break;
        }
        if summary_at.is_none() {
            if let Some(at) = next_kill
                && Instant::now() >= at
                && driven.kills < options.max_kills
                && alive > 0
            {
                // A random worker among those holding claims (killing an
                // idle one proves nothing), else any.
                let claims: Vec<String> = services
                    .ledger
                    .bottle_states()
                    .await?
                    .into_values()
                    .filter_map(|state| match state {
                        BottleState::Claimed { owner, .. } => Some(owner),
                        _ => None,
                    })
                    .collect();
                let busy: Vec<usize> = pool
                    .owner_prefixes()
                    .iter()
                    .enumerate()
                    .filter(|(_, prefix)| claims.iter().any(|owner| held_by(owner, prefix)))
                    .map(|(i, _)| i)
                    .collect();
                let victim = match busy.as_slice() {
                    [] => rng.random_range(0..alive),
                    busy => busy[rng.random_range(0..busy.len())],
                };
                if let Some(owner_prefix) = pool.kill(victim).await {
                    driven.kills += 1;
                    for (sha, state) in services.ledger.bottle_states().await? {
                        if let BottleState::Claimed { owner, .. } = state
                            && held_by(&owner, &owner_prefix)
                        {
                            *driven.held_at_kills.entry(sha.to_string()).or_default() += 1;
                        }
                    }
                    tracing::info!(kills = driven.kills, %owner_prefix, "killed a worker");
                }
                next_kill = options.kill_every.map(|every| at + every);
            }
            // Keep the fleet at strength until the run is over (a drained
            // worker may leave while a killed one's messages are invisible);
            // a run marked summarised needs no more workers.
            let (alive, _) = pool.alive();
            if !run.as_ref().is_some_and(|r| r.summary_sent) {
                for _ in alive..options.workers {
                    pool.spawn()?;
                }
            }
        }
    }
    driven.slack_outage =
        outage_started.map(|at| (at.saturating_duration_since(start), webhook.refused()));
    driven.elapsed = summary_at.unwrap_or_else(Instant::now) - start;
    driven.last_bottle_to_summary = match (all_done_at, summary_at) {
        (Some(done), Some(summary)) => Some(summary.saturating_duration_since(done)),
        _ => None,
    };
    Ok(driven)
}

/// Peak resident memory (VmHWM) of a process, in bytes.
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether the claim `owner` (a `ClaimOwner` token,
/// `<message id>#<receive>@<worker id>/<attempt>`) belongs to the worker
/// whose ids start with `worker_prefix`.
fn held_by(owner: &str, worker_prefix: &str) -> bool {
    ClaimOwner::parse(owner).is_some_and(|claim| claim.worker.starts_with(worker_prefix))
}

#[cfg(test)]
mod held_by_tests {
    use super::held_by;

    #[test]
    fn a_claim_belongs_to_the_worker_named_after_the_at_sign() {
        let owner = "8f1c-msg#2@host-4242-0a1b2c/3";
        assert!(held_by(owner, "host-4242-"));
        assert!(!held_by(owner, "host-4243-"));
        // The message id is not the worker: a prefix of it matches nothing.
        assert!(!held_by(owner, "8f1c"));
        assert!(held_by("m#1@worker-2/1", "worker-2/"));
        assert!(!held_by("not a token", "not"));
    }
}
