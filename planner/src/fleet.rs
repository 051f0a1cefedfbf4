//! The fleet planner: the same plan as `sync`, then a run record in the
//! ledger and one SQS message per missing bottle, routed by size.
//! `bottlesync plan` and the planner Lambda both call [`plan_fleet_run`].

use bottlesync_core::fleet_config::PORTABLE_RUBY_VARIABLE;
use bottlesync_core::model::location::Location;
use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::plan::route::{Route, route_for};
use bottlesync_core::plan::select::{PlanRequest, TagSelection};
use bottlesync_core::ports::notifier::notify_or_log;
use bottlesync_core::run::manifest::{ManifestMessage, RunManifest};
use bottlesync_core::run::messages::started;
use bottlesync_core::run::record::RunRecord;
use bottlesync_core::services::FleetServices;
use bottlesync_core::{BottleJob, Result};
use chrono::{NaiveDate, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::planning_lease::PlanningLease;
use crate::prepare::{
    ExternalHashFile, IndexSource, MirrorView, Prepared, Sources, fetch_inputs, prepare,
};
use bottlesync_core::brew::publish::{publish, stage};
use bottlesync_core::journal::read_hash_file;
use bottlesync_core::services::WorkQueues;

/// A queued mark outlives no message: SQS keeps messages 4 days by default,
/// so after that a mark left by a crashed planner stops blocking the bottle.
const QUEUED_MARK_LIFETIME: chrono::Duration = chrono::Duration::days(4);
const LEDGER_CONCURRENCY: usize = 16;
/// Marks and messages go out this many at a time, the planning lease
/// renewed in between.
const SEND_CHUNK: usize = 200;
/// Attempts at sending one chunk of messages.
const SEND_ATTEMPTS: u32 = 3;

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
    /// With `with_deps`, on Linux tags: also `glibc` and `gcc` (`None`: on).
    #[serde(default)]
    pub linux_host_formulae: Option<bool>,
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
    /// Planned bottles whose send could not be confirmed (every attempt
    /// failed, or its answer was lost after SQS took it). They stay in the
    /// run, with their queued marks: the ones that never arrived are sent
    /// again by the reconcile once the run stalls, so `expected` stays exact.
    #[serde(default)]
    pub unsent: u64,
    /// The ECS service's desired count before and after the planner woke it.
    pub ecs_desired_count: Option<(i32, i32)>,
    pub external_hash_file_error: Option<String>,
    pub dry_run: bool,
    /// The Portable Ruby bottles planned (`portable-ruby <version> <tag>`),
    /// fetched with the run or already mirrored.
    #[serde(default)]
    pub portable_ruby: Vec<String>,
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

    // Earlier runs first: one an earlier planner left unsealed (a Lambda
    // retry after it died) is resumed, one that stalled is settled, one
    // that drained without its summary gets it.
    if !request.dry_run {
        reconcile_before_planning(services, owner).await;
    }

    let sources = Sources {
        registry: services.registry.as_ref(),
        documents: services.documents.as_ref(),
        retry: &services.retry,
        mirror: (!request.dry_run).then_some(services.store.as_ref()),
    };
    let external_hash_file = config
        .external_hash_file
        .as_deref()
        .map(|text| ExternalHashFile {
            location: Location::parse("BOTTLESYNC_EXTERNAL_HASH_FILE", text, true),
            required: config.external_hash_file_required,
        });
    let mut inputs = fetch_inputs(
        sources,
        IndexSource {
            api_url: &config.api_url,
            hosts: &config.hosts,
            tags: &tags,
            portable_ruby: (PORTABLE_RUBY_VARIABLE, &config.portable_ruby),
        },
        external_hash_file,
    )
    .await?;
    let now = Utc::now();
    let mirror = MirrorView::from_bottle_states(services.ledger.bottle_states().await?, now);
    let plan_request = PlanRequest {
        tags,
        formulae: request.formulae.clone(),
        with_deps: request.with_deps,
        linux_host_formulae: request.linux_host_formulae.unwrap_or(true),
        include_disabled: request.include_disabled,
        date,
    };
    let Prepared {
        plan,
        in_flight: in_flight_count,
        sizing,
        estimated,
    } = prepare(sources, &inputs, &plan_request, &mirror).await?;
    let portable_ruby = inputs.portable_ruby.labels();
    inputs.api.scope = plan_request.scope();
    let bytes = plan.bytes();
    let route = Route::for_run_bytes(bytes, config.size_threshold_bytes);
    let mut outcome = FleetPlanOutcome {
        run_id: None,
        date: date.format("%Y-%m-%d").to_string(),
        enqueued: 0,
        bytes,
        route,
        already_mirrored: plan.already_mirrored.len(),
        in_flight: in_flight_count,
        in_hash_file: plan.in_hash_file.len(),
        rejected_entries: inputs.index.rejections.len() + plan.rejected_client_entries.len(),
        estimated_sizes: estimated + sizing.from_content_length,
        to_ecs: 0,
        unsent: 0,
        ecs_desired_count: None,
        external_hash_file_error: inputs.external_hash_file_error.clone(),
        dry_run: request.dry_run,
        portable_ruby,
    };
    if request.dry_run {
        outcome.enqueued = plan.jobs.len() as u64;
        return Ok(outcome);
    }
    let queues = WorkQueues::of(services);
    let route_of = |job: &BottleJob| route_for(route, job.size, config.lambda_max_bottle_bytes);
    let goes_to_ecs = |job: &BottleJob| route_of(job) == Route::Ecs;
    queues.check(plan.jobs.iter().map(route_of))?;

    if plan.jobs.is_empty() {
        // No run record: `run#latest` keeps pointing at a run that may
        // still be draining, so its takeover and status stay visible.
        if in_flight_count > 0 {
            // API files published now would name the bottles still in
            // flight, which clients would get 404s for until they land:
            // the run draining them publishes when it finishes.
            tracing::info!(
                in_flight = in_flight_count,
                "nothing to do: every wanted bottle is mirrored or in flight; the API files are published by the run in flight when it finishes"
            );
            return Ok(outcome);
        }
        tracing::info!("nothing to do: every wanted bottle is mirrored");
        // The API files may still have moved on (a formula removed, a
        // bottle already mirrored): publish them over what is stored.
        let record = read_hash_file(services.store.as_ref()).await?;
        publish(services.store.as_ref(), &record.bottles, &inputs.api).await?;
        return Ok(outcome);
    }

    // The run and its manifest come before any mark or message: a planner
    // that dies anywhere after this leaves a run the reconcile (or the next
    // planner) can resume, never marks or messages nobody can account for.
    let run_id = bottlesync_core::run::record::new_run_id();
    // The planning lease starts when the run opens, not when planning
    // began: `prepare` on a full mirror outlasts the lease, and a run born
    // with an expired lease is resumed by any reconcile while this planner
    // is still sending it.
    let opened = Utc::now();
    let mut run = RunRecord::new(
        run_id.clone(),
        outcome.date.clone(),
        plan.jobs.len() as u64,
        outcome.bytes,
        route,
        opened,
    );
    run.planner = Some(owner.to_string());
    run.planning_until = Some(PlanningLease::until(opened, config.planning_lease));
    services.ledger.create_run(&run).await?;
    outcome.run_id = Some(run_id.clone());
    let mut lease = PlanningLease::new(services, &run_id, owner);
    let manifest_of = |jobs: &[&BottleJob]| {
        RunManifest::new(
            run_id.clone(),
            jobs.iter()
                .map(|job| ManifestMessage {
                    route: route_of(job),
                    body: BottleMessage::new(&run_id, (*job).clone()).to_body(),
                })
                .collect(),
        )
    };
    let planned: Vec<&BottleJob> = plan.jobs.iter().collect();
    manifest_of(&planned).write(services.store.as_ref()).await?;
    // For the worker that finishes the run, which publishes them once the
    // bottles are in (the run cannot finish before it is sealed below).
    stage(services.store.as_ref(), &run_id, &inputs.api).await?;

    // Mark: a bottle another planner queued meanwhile is left to it.
    let until = Utc::now() + QUEUED_MARK_LIFETIME;
    let mut marked = vec![false; plan.jobs.len()];
    for chunk in (0..plan.jobs.len()).collect::<Vec<_>>().chunks(SEND_CHUNK) {
        lease.keep().await?;
        let marks: Vec<(usize, Result<bool>)> = stream::iter(chunk.iter().copied())
            .map(|i| {
                let run_id = run_id.clone();
                let job = &plan.jobs[i];
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
        for (i, result) in marks {
            marked[i] = result?;
        }
    }
    let jobs: Vec<&BottleJob> = plan
        .jobs
        .iter()
        .zip(&marked)
        .filter_map(|(job, m)| m.then_some(job))
        .collect();
    outcome.in_flight += plan.jobs.len() - jobs.len();

    if jobs.iter().any(|job| goes_to_ecs(job)) {
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

    // Send in chunks, renewing the planning lease; a chunk that fails is
    // tried again (a duplicate message is harmless: the ledger counts a
    // bottle once). A chunk still failing may have landed all the same (its
    // answer lost after SQS took it), and its bottles would then be counted
    // by workers: it stays in the run, whose manifest names it, and the
    // reconcile of the stalled run sends again what never arrived (once,
    // then counts it lost). So `expected` is exactly what this run counts.
    let mut sent: Vec<&BottleJob> = Vec::with_capacity(jobs.len());
    let mut unconfirmed: Vec<&BottleJob> = Vec::new();
    for chunk in jobs.chunks(SEND_CHUNK) {
        lease.keep().await?;
        for route in [Route::Ecs, Route::Lambda] {
            let part: Vec<&BottleJob> = chunk
                .iter()
                .copied()
                .filter(|j| route_of(j) == route)
                .collect();
            if part.is_empty() {
                continue;
            }
            let queue = queues.get(route).expect("checked above");
            let bodies: Vec<String> = part
                .iter()
                .map(|job| BottleMessage::new(&run_id, (*job).clone()).to_body())
                .collect();
            if send_with_retries(queue, bodies, &run_id).await {
                sent.extend(part);
            } else {
                unconfirmed.extend(part);
            }
        }
    }
    let in_run: Vec<&BottleJob> = sent.iter().chain(&unconfirmed).copied().collect();
    if in_run.len() != plan.jobs.len() {
        // The manifest names exactly the run's bottles (those another
        // planner had queued are its): the reconcile re-sends only these.
        manifest_of(&in_run).write(services.store.as_ref()).await?;
    }
    run.expected = in_run.len() as u64;
    run.bytes_planned = in_run.iter().map(|j| j.size).sum();
    // Sealed only by the lease's holder: a planner whose run was taken over
    // leaves the seal to the resumer, which sends what this one did not.
    lease.confirm().await?;
    services.ledger.seal_run(&run_id, run.expected).await?;
    if !unconfirmed.is_empty() {
        tracing::error!(
            run_id,
            unconfirmed = unconfirmed.len(),
            "some sends could not be confirmed: those bottles stay in the run; the reconcile sends again whatever never arrived once the run stalls (BOTTLESYNC_RUN_STALL_MINUTES)"
        );
    }
    outcome.enqueued = run.expected;
    outcome.bytes = run.bytes_planned;
    outcome.to_ecs = in_run.iter().filter(|job| goes_to_ecs(job)).count() as u64;
    outcome.unsent = unconfirmed.len() as u64;
    if in_run.is_empty() {
        // Sealed at 0, the run has drained: finish it now (its summary says
        // nothing was sent) rather than leave it to the reconcile.
        if let Err(e) =
            bottlesync_core::run::finish::finish_run_if_due(services, &run_id, owner).await
        {
            tracing::warn!(run_id, error = %e, "could not finish the empty run");
        }
        return Ok(outcome);
    }
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
            ("route", outcome.route.as_str()),
        ],
    );
}

/// Sends one chunk, trying again after a failure; false when it never went.
async fn send_with_retries(
    queue: &dyn bottlesync_core::ports::queue::Queue,
    bodies: Vec<String>,
    run_id: &str,
) -> bool {
    for attempt in 1..=SEND_ATTEMPTS {
        match queue.send_all(bodies.clone()).await {
            Ok(()) => return true,
            Err(e) if attempt < SEND_ATTEMPTS => {
                tracing::warn!(run_id, attempt, messages = bodies.len(), error = %e, "sending failed; sending the chunk again (duplicates are counted once)");
                tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
            }
            Err(e) => {
                tracing::error!(run_id, attempt, messages = bodies.len(), error = %e, "sending failed for good: these bottles leave the run");
            }
        }
    }
    false
}

/// Runs the reconcile, after waiting out the planning lease of a run whose
/// planner has just stopped (so a rerun resumes it at once instead of
/// leaving it to the next scheduled reconcile). Failures are logged: they
/// must not stop a new plan.
async fn reconcile_before_planning(services: &FleetServices, owner: &str) {
    let lease = services.config.planning_lease;
    match services.ledger.open_runs().await {
        Ok(runs) => {
            let now = Utc::now();
            let wait = runs
                .iter()
                .filter(|run| {
                    !run.sealed && run.state == bottlesync_core::run::record::RunState::Running
                })
                .filter_map(|run| run.planning_until)
                .filter(|until| *until > now)
                .max()
                .and_then(|until| (until - now).to_std().ok())
                .filter(|wait| *wait <= lease);
            if let Some(wait) = wait {
                tracing::info!(
                    wait_s = wait.as_secs_f64(),
                    "an unsealed run's planner lease is about to run out: waiting to resume it"
                );
                tokio::time::sleep(wait + std::time::Duration::from_millis(200)).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list open runs"),
    }
    match bottlesync_core::run::reconcile::reconcile(services, owner).await {
        Ok(report) => {
            for run in report.runs.iter().filter(|r| r.verdict != "progressing") {
                tracing::info!(run_id = %run.run_id, verdict = %run.verdict, resent = run.resent, "earlier run reconciled");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not reconcile earlier runs"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_valid_and_distinct() {
        let a = bottlesync_core::run::record::new_run_id();
        let b = bottlesync_core::run::record::new_run_id();
        bottlesync_core::model::message::validate_run_id(&a).unwrap();
        assert_eq!(a.len(), "20261129T030000Z-1a2b3c4d".len());
        assert_ne!(a, b);
    }
}
