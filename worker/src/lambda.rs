//! The Lambda SQS consumer: a batch is processed concurrently and only the
//! records that should be retried are reported as batch item failures
//! (`ReportBatchItemFailures`). A panic fails its own record only.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bottlesync_core::queue::QueueMessage;
use tokio_util::sync::CancellationToken;

use crate::consumer::Consumer;

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

/// The handler: called by `lambda_runtime` in the worker binary and
/// directly by tests.
pub async fn handle_sqs_event(consumer: Arc<Consumer>, event: SqsEvent) -> SqsBatchResponse {
    let mut tasks = Vec::new();
    for record in &event.records {
        let message = to_queue_message(record);
        let consumer = consumer.clone();
        let id = message.message_id.clone();
        tasks.push((
            id,
            tokio::spawn(async move { consumer.handle(&message, &CancellationToken::new()).await }),
        ));
    }
    let mut response = SqsBatchResponse::default();
    for (id, task) in tasks {
        let retry = match task.await {
            Ok(disposition) => !disposition.acknowledges(),
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "record handler panicked");
                true
            }
        };
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
