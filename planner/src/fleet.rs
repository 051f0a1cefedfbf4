//! The fleet planner: the same plan as `sync`, then a run record in the
//! ledger and one SQS message per missing bottle, routed by size.
//! `bottlesync plan` and the planner Lambda both call [`FleetPlanner::plan_run`].

use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_core::fleet_config::PORTABLE_RUBY_VARIABLE;
use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::plan::route::{Route, route_for};
use bottlesync_core::plan::select::{PlanRequest, TagSelection};
use bottlesync_core::ports::capacity::WorkerCapacity;
use bottlesync_core::ports::documents::Documents;
use bottlesync_core::ports::notifier::notify_or_log;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::run::dispatch::{Outgoing, RunDispatch};
use bottlesync_core::run::manifest::ManifestMessage;
use bottlesync_core::run::messages::started;
use bottlesync_core::run::reconcile::Reconciler;
use bottlesync_core::run::record::RunRecord;
use bottlesync_core::{BottleJob, Result};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::prepare::{
    ExternalHashFile, IndexSource, MirrorView, Prepared, Sources, fetch_inputs, prepare,
};
use bottlesync_core::brew::publish::publish;
use bottlesync_core::mirror_record::read_hash_file;
use bottlesync_core::run::publication::stage;

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

/// What planning a fleet run touches: the reconcile it runs first (whose
/// finisher holds the ledger, the mirror store and Slack), Homebrew's API
/// and the external hash file, the ECS service it wakes, and the fleet's
/// settings. Built by `bottlesync_adapters::wiring`; `bottlesync plan` and
/// the planner Lambda both call [`FleetPlanner::plan_run`].
#[derive(Clone)]
pub struct FleetPlanner {
    pub reconciler: Reconciler,
    pub registry: Arc<dyn Registry>,
    pub documents: Arc<dyn Documents>,
    pub retry: RetryPolicy,
    /// The ECS workers, when `BOTTLESYNC_ECS_CLUSTER`/`_SERVICE` are set.
    pub capacity: Option<Arc<dyn WorkerCapacity>>,
    pub config: FleetConfig,
}

impl FleetPlanner {
    pub async fn plan_run(
        &self,
        request: &FleetPlanRequest,
        owner: &str,
    ) -> Result<FleetPlanOutcome> {
        let config = &self.config;
        let finisher = &self.reconciler.finisher;
        let tags = match &request.tags {
            Some(text) => TagSelection::parse("BOTTLESYNC_TAGS", text)?,
            None => config.tags.clone(),
        };
        let date = request.date.unwrap_or_else(|| Utc::now().date_naive());

        // Earlier runs first: one an earlier planner left unsealed (a Lambda
        // retry after it died) is resumed, one that stalled is settled, one
        // that drained without its summary gets it.
        if !request.dry_run {
            self.reconcile_before_planning(owner).await;
        }

        let sources = Sources {
            registry: self.registry.as_ref(),
            documents: self.documents.as_ref(),
            retry: &self.retry,
            mirror: (!request.dry_run).then_some(finisher.store.as_ref()),
        };
        let external_hash_file =
            config
                .external_hash_file
                .clone()
                .map(|location| ExternalHashFile {
                    location: Ok(location),
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
        let mirror = MirrorView::from_bottle_states(finisher.ledger.bottle_states().await?, now);
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
        let queues = &self.reconciler.queues;
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
            let record = read_hash_file(finisher.store.as_ref()).await?;
            publish(finisher.store.as_ref(), &record.bottles, &inputs.api).await?;
            return Ok(outcome);
        }

        let run_id = bottlesync_core::run::record::new_run_id();
        // For the last run to finish, which publishes them once the bottles
        // are in: staged before the run opens (a staging whose run never
        // opened is never published).
        stage(finisher.store.as_ref(), &run_id, &inputs.api).await?;
        if plan.jobs.iter().any(goes_to_ecs) {
            self.wake_ecs(&mut outcome).await;
        }
        let messages: Vec<Outgoing> = plan
            .jobs
            .iter()
            .map(|job| Outgoing {
                sha256: job.sha256.clone(),
                size: job.size,
                message: ManifestMessage {
                    route: route_of(job),
                    body: BottleMessage::new(&run_id, job.clone()).to_body(),
                },
            })
            .collect();
        let run = RunRecord::new(
            run_id.clone(),
            outcome.date.clone(),
            plan.jobs.len() as u64,
            outcome.bytes,
            route,
            Utc::now(),
        );
        outcome.run_id = Some(run_id.clone());
        let dispatched = RunDispatch {
            ledger: finisher.ledger.clone(),
            store: finisher.store.as_ref(),
            queues,
            planning_lease: config.planning_lease,
            owner,
        }
        .open(run, messages, true)
        .await?;
        outcome.in_flight += dispatched.left.len();
        outcome.enqueued = dispatched.run.expected;
        outcome.bytes = dispatched.run.bytes_planned;
        outcome.to_ecs = dispatched.to(Route::Ecs) as u64;
        outcome.unsent = dispatched.unconfirmed.len() as u64;
        let run = dispatched.run;
        if run.expected == 0 {
            // Sealed at 0, the run has drained: finish it now (its summary says
            // nothing was sent) rather than leave it to the reconcile.
            if let Err(e) = finisher.finish_if_due(&run_id, owner).await {
                tracing::warn!(run_id, error = %e, "could not finish the empty run");
            }
            return Ok(outcome);
        }
        tracing::info!(run_id, enqueued = outcome.enqueued, to_ecs = outcome.to_ecs, bytes = outcome.bytes, route = ?route, "run planned");
        let mut message = started(&run, &finisher.context);
        if let Some(problem) = &outcome.external_hash_file_error {
            message
                .text
                .push_str(&format!("\nExternal hash file not used: {problem}"));
        }
        notify_or_log(finisher.notifier.as_ref(), &message).await;
        Ok(outcome)
    }
}

/// The planner's CloudWatch EMF line (planned bottles, bytes, route). The
/// planner Lambda emits it; the CLI prints the outcome as JSON instead, so
/// its stdout stays one parseable document.
pub fn emit_plan_metrics(metrics: &bottlesync_core::metrics::Metrics, outcome: &FleetPlanOutcome) {
    use bottlesync_core::metrics::Unit;
    metrics.emit(
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

/// Wakes the ECS service for a run with bottles for it; a failure is
/// logged (queue-depth scaling wakes it too).
impl FleetPlanner {
    async fn wake_ecs(&self, outcome: &mut FleetPlanOutcome) {
        let Some(capacity) = &self.capacity else {
            tracing::info!(
                "BOTTLESYNC_ECS_CLUSTER/SERVICE not set: relying on queue-depth scaling"
            );
            return;
        };
        match capacity.ensure_at_least(self.config.ecs_wake_tasks).await {
            Ok(counts) => {
                tracing::info!(before = counts.0, after = counts.1, "ECS workers woken");
                outcome.ecs_desired_count = Some(counts);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not wake the ECS service; queue-depth scaling must")
            }
        }
    }

    /// Runs the reconcile, after waiting out the planning lease of a run whose
    /// planner has just stopped (so a rerun resumes it at once instead of
    /// leaving it to the next scheduled reconcile). Failures are logged: they
    /// must not stop a new plan.
    async fn reconcile_before_planning(&self, owner: &str) {
        let lease = self.reconciler.planning_lease;
        match self.reconciler.finisher.ledger.open_runs().await {
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
        match self.reconciler.reconcile(owner).await {
            Ok(report) => {
                for run in report.runs.iter().filter(|r| r.verdict != "progressing") {
                    tracing::info!(run_id = %run.run_id, verdict = %run.verdict, resent = run.resent, "earlier run reconciled");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not reconcile earlier runs"),
        }
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
