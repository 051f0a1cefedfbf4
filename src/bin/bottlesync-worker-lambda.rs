//! The worker Lambda: sets up logging and clients, then hands each SQS batch
//! to `lambda::handle_sqs_event`. Settings come from `BOTTLESYNC_*`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bottlesync::{config, telemetry};
use bottlesync_adapters::wiring::aws_services;
use bottlesync_worker::consumer::Consumer;
use bottlesync_worker::lambda::{Invocation, handle_sqs_event};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let services =
        Arc::new(aws_services(config::fleet_config_from_env(env!("CARGO_BIN_NAME"))?).await?);
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
    run(service_fn(move |event| handler(consumer.clone(), event))).await
}

async fn handler(
    consumer: Arc<Consumer>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let invocation = Invocation::from_deadline_ms(event.context.deadline);
    Ok(handle_sqs_event(consumer, event.payload, invocation).await)
}
