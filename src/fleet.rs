//! The fleet commands: `plan`, `work` and `compact`, thin shells over the
//! planner and worker crates with the AWS services from `FleetConfig`.
//! Exit status: 0 done, 2 a bad setting or an unusable service.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bottlesync_adapters::aws::sqs_queue::SqsQueue;
use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_core::model::hash_file::read_external_hashes;
use bottlesync_core::model::location::Location;
use bottlesync_core::ports::queue::Queue;
use bottlesync_core::services::FleetServices;
use bottlesync_core::{Error, Result};
use bottlesync_planner::fleet::{FleetPlanRequest, plan_fleet_run};
use bottlesync_worker::consumer::Consumer;
use bottlesync_worker::work_loop::{WorkOptions, run_work_loop};
use tokio::sync::watch;

use crate::cli::{CompactArgs, DlqAction, DlqArgs, ImportArgs, PlanArgs, StatusArgs, WorkArgs};

fn finish(result: Result<serde_json::Value>) -> ExitCode {
    match result {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("reports serialise")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn services(args: &bottlesync::config::FleetArgs) -> Result<Arc<FleetServices>> {
    let config = FleetConfig::from_settings(&args.clone().into())?;
    Ok(Arc::new(
        bottlesync_adapters::wiring::aws_services(config).await?,
    ))
}

pub async fn plan(args: PlanArgs) -> ExitCode {
    finish(
        async {
            let services = services(&args.fleet).await?;
            let request = FleetPlanRequest {
                date: args.date,
                dry_run: args.dry_run,
                tags: None,
                formulae: args.formulae.clone(),
                with_deps: args.with_deps,
                include_disabled: args.include_disabled,
            };
            let outcome =
                plan_fleet_run(&services, &request, &Consumer::default_worker_id()).await?;
            Ok(serde_json::to_value(outcome).expect("serialises"))
        }
        .await,
    )
}

/// SIGTERM (ECS stopping the task) or Ctrl-C flips the returned channel.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::warn!("interrupted: stopping"),
        }
        let _ = tx.send(true);
    });
    rx
}

pub async fn work(args: WorkArgs) -> ExitCode {
    finish(async {
        let services = services(&args.fleet).await?;
        let queue_url = match &args.consume_queue_url {
            Some(url) => url.clone(),
            None => services.config.require_large_queue()?.to_string(),
        };
        let sdk = bottlesync_adapters::aws::sdk_config().await?;
        let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(aws_sdk_sqs_client(&sdk), &queue_url));
        let max_receive_count = queue.max_receive_count().await.map_err(|e| {
            Error::config("--queue-url", format!("cannot read the queue's attributes: {e}"))
        })?;
        let consumer = Arc::new(
            Consumer::new(services.clone(), Consumer::default_worker_id(), max_receive_count)
                .with_source(queue.clone())
                .with_lease(args.lease_seconds.map_or(services.config.claim_lease, |s| Duration::from_secs(s.max(1))))
                .with_retry_base(Duration::from_secs(args.retry_delay)),
        );
        let options = WorkOptions {
            concurrency: args.concurrency as usize,
            drain: args.drain.then(|| Duration::from_secs(args.drain_grace)),
            visibility_timeout: Duration::from_secs(args.visibility_timeout.max(10)),
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            protection: bottlesync_adapters::http::ecs_agent::EcsAgent::from_env()
                .map(|agent| Arc::new(agent) as _),
            ..WorkOptions::default()
        };
        tracing::info!(queue = %queue_url, worker = %consumer.worker_id, concurrency = options.concurrency, "working");
        let stats = run_work_loop(consumer, queue, options, shutdown_signal()).await?;
        Ok(serde_json::json!({
            "stored": stats.stored, "skipped": stats.skipped, "failed": stats.failed,
            "refused": stats.refused, "retried": stats.retried,
        }))
    }
    .await)
}

fn aws_sdk_sqs_client(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

pub async fn compact(args: CompactArgs) -> ExitCode {
    finish(
        async {
            let services = services(&args.fleet).await?;
            let finished = bottlesync_core::run::finish::finish_latest_if_due(
                &services,
                &Consumer::default_worker_id(),
            )
            .await?;
            let bottles = bottlesync_core::run::finish::compact(&services).await?;
            Ok(serde_json::json!({"bottles": bottles, "finished_run": format!("{finished:?}")}))
        }
        .await,
    )
}

pub async fn reconcile(args: CompactArgs) -> ExitCode {
    finish(
        async {
            let services = services(&args.fleet).await?;
            let report = bottlesync_core::run::reconcile::reconcile(
                &services,
                &format!("reconcile-{}", Consumer::default_worker_id()),
            )
            .await?;
            Ok(serde_json::to_value(report).expect("serialises"))
        }
        .await,
    )
}

pub async fn dlq(args: DlqArgs) -> ExitCode {
    finish(
        async {
            match args.action {
                DlqAction::List { fleet, max } => {
                    let services = services(&fleet).await?;
                    let letters = bottlesync_core::run::dlq::list(&services, max).await?;
                    Ok(serde_json::json!({"count": letters.len(), "messages": letters}))
                }
                DlqAction::Replay {
                    fleet,
                    max,
                    dry_run,
                } => {
                    let services = services(&fleet).await?;
                    let run_id = bottlesync_planner::fleet::new_run_id();
                    let report =
                        bottlesync_planner::replay::replay(&services, max, dry_run, run_id).await?;
                    Ok(serde_json::to_value(report).expect("serialises"))
                }
            }
        }
        .await,
    )
}

pub async fn status(args: StatusArgs) -> ExitCode {
    let result = async {
        let services = services(&args.fleet).await?;
        bottlesync_core::run::operations::status(&services).await
    }
    .await;
    match result {
        Ok(status) if args.json => finish(Ok(serde_json::to_value(status).expect("serialises"))),
        Ok(status) => {
            println!("{} ({})", status.mirror, status.environment);
            for q in &status.queues {
                println!(
                    "  {:<7} visible {:>6}  in flight {:>6}  delayed {:>4}",
                    q.name, q.depth.visible, q.depth.in_flight, q.depth.delayed
                );
            }
            match &status.run {
                Some(r) => println!(
                    "  run {} ({:?}, {:?}): {}/{} done ({} stored, {} skipped, {} failed), {} stored at {}/s, started {}{}",
                    r.run.run_id,
                    r.run.state,
                    r.run.route,
                    r.done,
                    r.run.expected,
                    r.run.stored,
                    r.run.skipped,
                    r.run.failed,
                    bottlesync_core::run::messages::human_bytes(r.run.bytes_stored),
                    bottlesync_core::run::messages::human_bytes(r.bytes_per_second as u64),
                    r.run.started_at.to_rfc3339(),
                    r.eta
                        .map(|e| format!(", ETA {}", e.to_rfc3339()))
                        .unwrap_or_default(),
                ),
                None => println!("  no runs yet"),
            }
            if let Some(r) = &status.run {
                if let Some(stalled) = &r.stalled {
                    println!("  STALLED: {stalled}");
                }
                if r.run.summary_pending() {
                    println!(
                        "  summary pending: {} failed post(s){}; the reconcile posts it again",
                        r.run.summary_attempts,
                        r.run
                            .summary_error
                            .as_deref()
                            .map(|e| format!(", last: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => finish(Err(e)),
    }
}

pub async fn import_hashes(args: ImportArgs) -> ExitCode {
    finish(
        async {
            let services = services(&args.fleet).await?;
            let location = Location::parse("import-hashes", &args.source, true)?;
            let hashes = read_external_hashes(&location, services.documents.as_ref()).await?;
            let report = bottlesync_core::run::operations::import_hashes(
                services.ledger.as_ref(),
                hashes,
                &args.source,
            )
            .await?;
            Ok(serde_json::to_value(report).expect("serialises"))
        }
        .await,
    )
}
