//! The fleet planner: the same plan as `sync`, then a run record in the
//! ledger and one SQS message per missing bottle, routed by size.
//! `bottlesync plan` and the planner Lambda both call [`plan_fleet_run`].

use std::collections::{HashMap, HashSet};

use bottlesync_core::destination::{Location, read_external_hashes};
use bottlesync_core::drain::finish_latest_if_due;
use bottlesync_core::fleet_ledger::{BottleState, Route, RunRecord};
use bottlesync_core::message::BottleMessage;
use bottlesync_core::notifier::{notify_or_log, started};
use bottlesync_core::run_manifest::{ManifestMessage, RunManifest};
use bottlesync_core::services::FleetServices;
use bottlesync_core::{BottleJob, Error, Result};
use chrono::{NaiveDate, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::index_source::fetch_index;
use crate::select::{PlanRequest, TagSelection, plan};
use crate::sizing::size_jobs;

/// A queued mark outlives no message: SQS keeps messages 4 days by default,
/// so after that a mark left by a crashed planner stops blocking the bottle.
const QUEUED_MARK_LIFETIME: chrono::Duration = chrono::Duration::days(4);
const LEDGER_CONCURRENCY: usize = 16;
const SIZING_CONCURRENCY: usize = 16;

/// What a caller may override (the Lambda's manual invocation, the CLI).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetPlanRequest {
    /// Dated folder (default: today, UTC).
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub dry_run: bool,
    /// Overrides `BOTTLESYNC_TAGS`.
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub formulae: Vec<String>,
    #[serde(default)]
    pub with_deps: bool,
    #[serde(default)]
    pub include_disabled: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FleetPlanOutcome {
    /// `None` for a dry run or when there was nothing to do.
    pub run_id: Option<String>,
    pub date: String,
    pub enqueued: u64,
    pub bytes: u64,
    pub route: Route,
    pub already_mirrored: usize,
    /// Wanted bottles another run has queued or is downloading.
    pub in_flight: usize,
    pub in_hash_file: usize,
    pub rejected_entries: usize,
    /// Sizes not read from a manifest (Content-Length, previous bottle, default).
    pub estimated_sizes: usize,
    /// Messages sent to the ECS queue (the whole run, or its oversized bottles).
    pub to_ecs: u64,
    /// The ECS service's desired count before and after the planner woke it.
    pub ecs_desired_count: Option<(i32, i32)>,
    pub external_hash_file_error: Option<String>,
    pub dry_run: bool,
}

/// `YYYYMMDDTHHMMSSZ-xxxxxxxx`: sortable, unique enough, safe in keys.
pub fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

pub async fn plan_fleet_run(
    services: &FleetServices,
    request: &FleetPlanRequest,
    owner: &str,
) -> Result<FleetPlanOutcome> {
    let config = &services.config;
    let tags_text = request.tags.as_deref().unwrap_or(&config.tags);
    let tags = TagSelection::parse("BOTTLESYNC_TAGS", tags_text)?;
    let date = request.date.unwrap_or_else(|| Utc::now().date_naive());

    // A previous run that drained without its summary gets it now.
    if !request.dry_run
        && let Err(e) = finish_latest_if_due(services, owner).await
    {
        tracing::warn!(error = %e, "could not finish the previous run");
    }

    let index = fetch_index(
        &services.registry,
        &services.retry,
        &config.api_url,
        &config.hosts,
    )
    .await?;
    let (external, external_hash_file_error) = match &config.external_hash_file {
        None => (HashSet::new(), None),
        Some(text) => {
            let loaded = match Location::parse("BOTTLESYNC_EXTERNAL_HASH_FILE", text, true) {
                Ok(location) => read_external_hashes(&location, &services.registry).await,
                Err(e) => Err(e),
            };
            match loaded {
                Ok(hashes) => (hashes.digests.into_iter().collect(), None),
                Err(e) if config.external_hash_file_required => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "external hash file unavailable; planning without it");
                    (HashSet::new(), Some(e.to_string()))
                }
            }
        }
    };
    let now = Utc::now();
    let mut stored = HashSet::new();
    let mut in_flight = HashSet::new();
    let mut previous_sizes = HashMap::new();
    for (sha, state) in services.ledger.bottle_states().await? {
        match state {
            BottleState::Stored(bottle) => {
                previous_sizes.insert((bottle.name.clone(), bottle.tag.to_string()), bottle.size);
                stored.insert(sha);
            }
            BottleState::Queued { until, .. } if until > now => {
                in_flight.insert(sha);
            }
            BottleState::Claimed { lease_expires, .. } if lease_expires > now => {
                in_flight.insert(sha);
            }
            _ => {}
        }
    }
    let plan_request = PlanRequest {
        tags,
        formulae: request.formulae.clone(),
        with_deps: request.with_deps,
        include_disabled: request.include_disabled,
        date,
    };
    let mut plan = plan(&index, &plan_request, &stored, &external)?;
    let before = plan.jobs.len();
    plan.jobs.retain(|job| !in_flight.contains(&job.sha256));
    let in_flight_count = before - plan.jobs.len();
    let sizing = size_jobs(
        &services.registry,
        &services.retry,
        &mut plan.jobs,
        SIZING_CONCURRENCY,
    )
    .await;
    let estimated = crate::sizing::estimate_unknown_sizes(&mut plan.jobs, &previous_sizes);
    if estimated > 0 {
        tracing::warn!(
            estimated,
            "bottle sizes estimated (no manifest size, no Content-Length)"
        );
    }
    let bytes = plan.bytes();
    let route = if bytes >= config.size_threshold_bytes {
        Route::Ecs
    } else {
        Route::Lambda
    };
    let mut outcome = FleetPlanOutcome {
        run_id: None,
        date: date.format("%Y-%m-%d").to_string(),
        enqueued: 0,
        bytes,
        route,
        already_mirrored: plan.already_mirrored.len(),
        in_flight: in_flight_count,
        in_hash_file: plan.in_hash_file.len(),
        rejected_entries: index.rejections.len(),
        estimated_sizes: estimated + sizing.from_content_length,
        to_ecs: 0,
        ecs_desired_count: None,
        external_hash_file_error,
        dry_run: request.dry_run,
    };
    if request.dry_run {
        outcome.enqueued = plan.jobs.len() as u64;
        return Ok(outcome);
    }
    let lambda_queue = services.queue.clone();
    let ecs_queue = services.large_queue.clone();
    let goes_to_ecs =
        |job: &BottleJob| route == Route::Ecs || job.size > config.lambda_max_bottle_bytes;
    if plan.jobs.iter().any(goes_to_ecs) && ecs_queue.is_none() {
        return Err(Error::config("BOTTLESYNC_LARGE_QUEUE_URL", "is not set"));
    }
    if !plan.jobs.iter().all(goes_to_ecs) && lambda_queue.is_none() {
        return Err(Error::config("BOTTLESYNC_QUEUE_URL", "is not set"));
    }

    let run_id = new_run_id();
    // Mark first: a bottle another planner queued meanwhile is left to it.
    let until = now + QUEUED_MARK_LIFETIME;
    let marks: Vec<(usize, Result<bool>)> = stream::iter(plan.jobs.iter().enumerate())
        .map(|(i, job)| {
            let run_id = run_id.clone();
            async move {
                (
                    i,
                    services
                        .ledger
                        .mark_queued(&job.sha256, &run_id, until)
                        .await,
                )
            }
        })
        .buffer_unordered(LEDGER_CONCURRENCY)
        .collect()
        .await;
    let mut marked = vec![false; plan.jobs.len()];
    for (i, result) in marks {
        marked[i] = result?;
    }
    let jobs: Vec<_> = plan
        .jobs
        .into_iter()
        .zip(marked)
        .filter_map(|(job, m)| m.then_some(job))
        .collect();
    outcome.in_flight += before - in_flight_count - jobs.len();
    outcome.bytes = jobs.iter().map(|j| j.size).sum();
    outcome.enqueued = jobs.len() as u64;
    if jobs.is_empty() {
        // No run record: `run#latest` keeps pointing at a run that may
        // still be draining, so its takeover and status stay visible.
        tracing::info!("nothing to do: every wanted bottle is mirrored or in flight");
        return Ok(outcome);
    }
    outcome.run_id = Some(run_id.clone());

    let run = RunRecord::new(
        run_id.clone(),
        outcome.date.clone(),
        jobs.len() as u64,
        outcome.bytes,
        route,
        now,
    );
    services.ledger.create_run(&run).await?;
    let (to_ecs, to_lambda): (Vec<BottleJob>, Vec<BottleJob>) =
        jobs.into_iter().partition(goes_to_ecs);
    outcome.to_ecs = to_ecs.len() as u64;
    if !to_ecs.is_empty() {
        match &services.capacity {
            Some(capacity) => match capacity.ensure_at_least(config.ecs_wake_tasks).await {
                Ok(counts) => {
                    tracing::info!(before = counts.0, after = counts.1, "ECS workers woken");
                    outcome.ecs_desired_count = Some(counts);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not wake the ECS service; queue-depth scaling must")
                }
            },
            None => tracing::info!(
                "BOTTLESYNC_ECS_CLUSTER/SERVICE not set: relying on queue-depth scaling"
            ),
        }
    }
    let batches = [
        (Route::Ecs, to_ecs, &ecs_queue),
        (Route::Lambda, to_lambda, &lambda_queue),
    ]
    .map(|(route, jobs, queue)| {
        let bodies: Vec<String> = jobs
            .into_iter()
            .map(|job| BottleMessage::new(&run_id, job).to_body())
            .collect();
        (route, bodies, queue)
    });
    // The manifest goes first: whatever happens to the messages, the
    // reconcile can name every bottle of the run.
    let manifest = RunManifest::new(
        run_id.clone(),
        batches
            .iter()
            .flat_map(|(route, bodies, _)| {
                bodies.iter().map(|body| ManifestMessage {
                    route: *route,
                    body: body.clone(),
                })
            })
            .collect(),
    );
    manifest.write(services.store.as_ref()).await?;
    for (_, bodies, queue) in batches {
        if let (false, Some(queue)) = (bodies.is_empty(), queue) {
            queue.send_all(bodies).await?;
        }
    }
    services.ledger.seal_run(&run_id, outcome.enqueued).await?;
    tracing::info!(run_id, enqueued = outcome.enqueued, to_ecs = outcome.to_ecs, bytes = outcome.bytes, route = ?route, "run planned");
    let mut message = started(&run, &services.message_context());
    if let Some(problem) = &outcome.external_hash_file_error {
        message
            .text
            .push_str(&format!("\nExternal hash file not used: {problem}"));
    }
    notify_or_log(services.notifier.as_ref(), &message).await;
    Ok(outcome)
}

/// The planner's CloudWatch EMF line (planned bottles, bytes, route). The
/// planner Lambda emits it; the CLI prints the outcome as JSON instead, so
/// its stdout stays one parseable document.
pub fn emit_plan_metrics(
    config: &bottlesync_core::fleet_config::FleetConfig,
    outcome: &FleetPlanOutcome,
) {
    use bottlesync_core::metrics::Unit;
    let route = format!("{:?}", outcome.route).to_lowercase();
    bottlesync_core::metrics::emit_for(
        config,
        &[
            ("BottlesPlanned", outcome.enqueued as f64, Unit::Count),
            ("BytesPlanned", outcome.bytes as f64, Unit::Bytes),
            ("BottlesToEcs", outcome.to_ecs as f64, Unit::Count),
            (
                "SizesEstimated",
                outcome.estimated_sizes as f64,
                Unit::Count,
            ),
        ],
        &[
            ("run_id", outcome.run_id.as_deref().unwrap_or("")),
            ("route", route.as_str()),
        ],
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_valid_and_distinct() {
        let a = super::new_run_id();
        let b = super::new_run_id();
        bottlesync_core::message::validate_run_id(&a).unwrap();
        assert_eq!(a.len(), "20261129T030000Z-1a2b3c4d".len());
        assert_ne!(a, b);
    }
}
