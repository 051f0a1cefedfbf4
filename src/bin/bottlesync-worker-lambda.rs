//! The worker Lambda: sets up logging and clients, then hands each SQS batch
//! to `lambda::handle_batch` as queue messages and reports the ones to
//! retry as batch item failures. Settings come from `BOTTLESYNC_*`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bottlesync::{config, telemetry};
use bottlesync_adapters::wiring::aws_adapters;
use bottlesync_core::ports::queue::QueueMessage;
use bottlesync_worker::consumer::Consumer;
use bottlesync_worker::lambda::{Invocation, handle_batch};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let fleet = aws_adapters(config::fleet_config_from_env(env!("CARGO_BIN_NAME"))?).await?;
    let queue = fleet
        .queues
        .lambda
        .clone()
        .ok_or("BOTTLESYNC_QUEUE_URL: is not set")?;
    let max_receive_count = queue.max_receive_count().await?;
    let consumer = Arc::new(
        Consumer::new(
            fleet.worker(),
            Consumer::default_worker_id(),
            max_receive_count,
        )
        .with_source(queue)
        .with_lease(fleet.config.claim_lease),
    );
    run(service_fn(move |event| handler(consumer.clone(), event))).await
}

async fn handler(
    consumer: Arc<Consumer>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let invocation = Invocation::from_deadline_ms(event.context.deadline);
    let messages = event.payload.records.iter().map(to_queue_message).collect();
    let mut response = SqsBatchResponse::default();
    for id in handle_batch(consumer, messages, invocation).await {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// A record of the event as the queue port's message (the receive count
/// and sent time from the record's attributes, as `ReceiveMessage` has them).
fn to_queue_message(record: &SqsMessage) -> QueueMessage {
    QueueMessage {
        message_id: record.message_id.clone().unwrap_or_default(),
        receipt: record.receipt_handle.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        sent_at: record
            .attributes
            .get("SentTimestamp")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis),
    }
}
