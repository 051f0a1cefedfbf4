//! `bottlesync work`: the ECS worker. Consumes a queue until SIGTERM (or,
//! with `--drain`, until it stays empty).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bottlesync_core::Error;
use bottlesync_core::shutdown::ShutdownSignal;
use bottlesync_worker::consumer::Consumer;
use bottlesync_worker::work_loop::{WorkOptions, run_work_loop};

use super::{adapters, finish, stop_on_signals};
use crate::cli::WorkArgs;

pub async fn run(args: WorkArgs) -> ExitCode {
    finish(async {
        let fleet = adapters(&args.fleet).await?;
        let queue_url = match &args.consume_queue_url {
            Some(url) => url.clone(),
            None => fleet.config.require_large_queue()?.to_string(),
        };
        let queue = bottlesync_adapters::wiring::aws_queue(&queue_url).await?;
        let max_receive_count = queue.max_receive_count().await.map_err(|e| {
            Error::config("--queue-url", format!("cannot read the queue's attributes: {e}"))
        })?;
        let consumer = Arc::new(
            Consumer::new(fleet.worker(), Consumer::default_worker_id(), max_receive_count)
                .with_source(queue.clone())
                .with_lease(args.lease_seconds.map_or(fleet.config.claim_lease, |s| Duration::from_secs(s.max(1))))
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
        let shutdown = ShutdownSignal::new();
        stop_on_signals(&shutdown, "");
        tracing::info!(queue = %queue_url, worker = %consumer.worker_id, concurrency = options.concurrency, "working");
        let stats = run_work_loop(consumer, queue, options, shutdown.subscribe()).await?;
        Ok(serde_json::json!({
            "stored": stats.stored, "skipped": stats.skipped, "failed": stats.failed,
            "refused": stats.refused, "retried": stats.retried,
        }))
    }
    .await)
}
