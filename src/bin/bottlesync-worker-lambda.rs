//! The worker Lambda: sets up logging and clients, then hands each SQS batch
//! to `lambda::handle_sqs_event`. Settings come from `BOTTLESYNC_*`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use bottlesync::config::FleetArgs;
use bottlesync_adapters::wiring::aws_services;
use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_worker::consumer::Consumer;
use bottlesync_worker::lambda::{Invocation, handle_sqs_event};
use clap::Parser;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    fleet: FleetArgs,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_target(false)
        .init();
    let settings = Settings::parse_from(["bottlesync-worker-lambda"]);
    let config = FleetConfig::from_settings(&settings.fleet.into())?;
    let services = Arc::new(aws_services(config).await?);
    let queue = services
        .queue
        .clone()
        .ok_or("BOTTLESYNC_QUEUE_URL: is not set")?;
    let max_receive_count = queue.max_receive_count().await?;
    let lease = services.config.claim_lease;
    let consumer = Arc::new(
        Consumer::new(services, Consumer::default_worker_id(), max_receive_count)
            .with_source(queue)
            .with_lease(lease),
    );
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        let invocation = Invocation::from_deadline_ms(event.context.deadline);
        async move { Ok::<_, Error>(handle_sqs_event(consumer, event.payload, invocation).await) }
    }))
    .await
}
