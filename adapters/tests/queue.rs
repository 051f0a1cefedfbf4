//! One behaviour suite for the `Queue` port, run against the in-process
//! `MemoryQueue` and against `SqsQueue` on moto_server: whatever a worker
//! sees from one it must see from the other.
//!
//! Every scenario makes its own main queue and dead-letter queue and the
//! scenarios run at once, so the suite takes about as long as its slowest
//! scenario (visibility timeouts are real time on moto).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use bottlesync_adapters::aws::sqs_queue::SqsQueue;
use bottlesync_adapters::local::memory_queue::MemoryQueue;
use bottlesync_aws_harness::moto::Moto;
use bottlesync_core::ports::queue::{Queue, QueueDepth, QueueMessage};

/// A main queue and its dead-letter queue (`max_receive_count` receives).
struct Pair {
    main: Arc<dyn Queue>,
    dlq: Arc<dyn Queue>,
    visibility: Duration,
}

enum Backend {
    Memory,
    Sqs(aws_sdk_sqs::Client),
}

impl Backend {
    async fn pair(&self, label: &str, visibility_secs: u64, max_receive_count: u32) -> Pair {
        let visibility = Duration::from_secs(visibility_secs);
        match self {
            Backend::Memory => {
                let dlq = Arc::new(MemoryQueue::new(format!("{label}-dlq"), visibility));
                let main = MemoryQueue::new(label, visibility)
                    .with_dead_letter(dlq.clone(), max_receive_count);
                Pair {
                    main: Arc::new(main),
                    dlq,
                    visibility,
                }
            }
            Backend::Sqs(client) => {
                let dlq_url = client
                    .create_queue()
                    .queue_name(format!("{label}-dlq"))
                    .send()
                    .await
                    .expect("create DLQ")
                    .queue_url
                    .expect("DLQ url");
                let dlq_arn = client
                    .get_queue_attributes()
                    .queue_url(&dlq_url)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await
                    .expect("DLQ attributes")
                    .attributes
                    .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
                    .expect("DLQ arn");
                let policy = serde_json::json!({
                    "deadLetterTargetArn": dlq_arn,
                    "maxReceiveCount": max_receive_count,
                });
                let main_url = client
                    .create_queue()
                    .queue_name(label)
                    .attributes(
                        QueueAttributeName::VisibilityTimeout,
                        visibility_secs.to_string(),
                    )
                    .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
                    .send()
                    .await
                    .expect("create queue")
                    .queue_url
                    .expect("queue url");
                Pair {
                    main: Arc::new(SqsQueue::new(client.clone(), main_url)),
                    dlq: Arc::new(SqsQueue::new(client.clone(), dlq_url)),
                    visibility,
                }
            }
        }
    }
}

fn depth(visible: u64, in_flight: u64) -> QueueDepth {
    QueueDepth {
        visible,
        in_flight,
        delayed: 0,
    }
}

/// Receives until `count` messages arrived (or 10 s passed).
async fn receive_n(queue: &dyn Queue, count: usize) -> Vec<QueueMessage> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut all = Vec::new();
    while all.len() < count && Instant::now() < deadline {
        let batch = queue.receive(10, Duration::from_secs(1)).await.unwrap();
        assert!(batch.len() <= 10);
        all.extend(batch);
    }
    assert_eq!(all.len(), count, "{}: received {all:?}", queue.name());
    all
}

async fn nothing_visible(queue: &dyn Queue) {
    let got = queue.receive(10, Duration::ZERO).await.unwrap();
    assert!(got.is_empty(), "{}: unexpected {got:?}", queue.name());
}

async fn suite(backend: &Backend, run: &str) {
    let started = Instant::now();
    tokio::join!(
        send_receive_delete(backend.pair(&format!("{run}-all"), 30, 2).await),
        redelivery_then_dead_letter(backend.pair(&format!("{run}-redrive"), 1, 2).await),
        visibility_zero(backend.pair(&format!("{run}-vis"), 30, 2).await),
        redrive_policy(backend.pair(&format!("{run}-policy"), 30, 3).await),
        body_limits(backend.pair(&format!("{run}-size"), 30, 2).await),
    );
    eprintln!("{run}: suite took {:?}", started.elapsed());
}

/// 25 bodies go out in three batches and each comes back exactly once
/// while invisible; depth follows; delete removes.
async fn send_receive_delete(q: Pair) {
    let main = q.main.as_ref();
    let bodies: Vec<String> = (0..25).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    main.send_all(bodies.clone()).await.unwrap();
    main.send_all(Vec::new()).await.unwrap();
    assert_eq!(main.depth().await.unwrap(), depth(25, 0));

    let first = main.receive(10, Duration::from_secs(1)).await.unwrap();
    assert!(!first.is_empty() && first.len() <= 10);
    assert_eq!(
        main.depth().await.unwrap(),
        depth(25 - first.len() as u64, first.len() as u64)
    );
    let mut all = first;
    all.extend(receive_n(main, 25 - all.len()).await);
    nothing_visible(main).await;
    assert_eq!(main.depth().await.unwrap(), depth(0, 25));

    let got: HashSet<&str> = all.iter().map(|m| m.body.as_str()).collect();
    let sent: HashSet<&str> = bodies.iter().map(String::as_str).collect();
    assert_eq!(got, sent);
    let ids: HashSet<&str> = all.iter().map(|m| m.message_id.as_str()).collect();
    let receipts: HashSet<&str> = all.iter().map(|m| m.receipt.as_str()).collect();
    assert_eq!((ids.len(), receipts.len()), (25, 25));
    let now = chrono::Utc::now();
    for message in &all {
        assert_eq!(message.receive_count, 1, "{message:?}");
        let sent_at = message.sent_at.expect("sent_at");
        assert!((now - sent_at).num_seconds().abs() < 60, "{message:?}");
    }

    for message in &all[..5] {
        main.delete(&message.receipt).await.unwrap();
    }
    assert_eq!(main.depth().await.unwrap(), depth(0, 20));
    for message in &all[5..] {
        main.delete(&message.receipt).await.unwrap();
    }
    assert!(main.depth().await.unwrap().is_empty());
    assert!(q.dlq.depth().await.unwrap().is_empty());
}

/// A message not deleted comes back after the visibility timeout with
/// receive count 2; after maxReceiveCount (2) receives it is dead-lettered.
async fn redelivery_then_dead_letter(q: Pair) {
    let main = q.main.as_ref();
    let pause = q.visibility + Duration::from_millis(300);
    main.send_all(vec!["poison".into()]).await.unwrap();

    let first = main.receive(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    nothing_visible(main).await;
    assert_eq!(main.depth().await.unwrap(), depth(0, 1));

    tokio::time::sleep(pause).await;
    assert_eq!(main.depth().await.unwrap(), depth(1, 0));
    let second = main.receive(1, Duration::ZERO).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].message_id, first[0].message_id);
    assert_eq!(second[0].body, "poison");
    assert_ne!(second[0].receipt, first[0].receipt);

    tokio::time::sleep(pause).await;
    nothing_visible(main).await;
    assert!(main.depth().await.unwrap().is_empty());
    assert_eq!(q.dlq.depth().await.unwrap(), depth(1, 0));
    let dead = q.dlq.receive(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].message_id, first[0].message_id);
    q.dlq.delete(&dead[0].receipt).await.unwrap();
    assert!(q.dlq.depth().await.unwrap().is_empty());
}

/// `set_visibility(0)` hands a message back at once; a longer one hides it.
async fn visibility_zero(q: Pair) {
    let main = q.main.as_ref();
    main.send_all(vec!["again".into()]).await.unwrap();
    let first = main.receive(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(first.len(), 1);
    nothing_visible(main).await;

    main.set_visibility(&first[0].receipt, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(main.depth().await.unwrap(), depth(1, 0));
    let started = Instant::now();
    let second = main.receive(1, Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].body, "again");

    main.set_visibility(&second[0].receipt, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(main.depth().await.unwrap(), depth(0, 1));
    main.delete(&second[0].receipt).await.unwrap();
    assert!(main.depth().await.unwrap().is_empty());
}

/// `max_receive_count` is the main queue's redrive policy; the DLQ has none.
async fn redrive_policy(q: Pair) {
    assert_eq!(q.main.max_receive_count().await.unwrap(), Some(3));
    assert_eq!(q.dlq.max_receive_count().await.unwrap(), None);
}

/// A body over 256 KiB is refused before anything is sent; bodies that
/// together exceed one batch's 256 KiB go out in several batches.
async fn body_limits(q: Pair) {
    let main = q.main.as_ref();
    let too_big = "x".repeat(256 * 1024 + 1);
    let err = main
        .send_all(vec!["fine".into(), too_big])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&main.name()), "{err}");
    assert!(err.contains("message 2 of 2"), "{err}");
    assert!(err.contains("262145 bytes"), "{err}");
    assert!(err.contains("256 KiB"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    let err = main.send_all(vec![String::new()]).await.unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(main.depth().await.unwrap().is_empty());

    // Four bodies of 100 KiB and one of exactly 256 KiB: several batches.
    let mut bodies: Vec<String> = (0..4)
        .map(|i| format!("{i}{}", "y".repeat(100 * 1024)))
        .collect();
    bodies.push("z".repeat(256 * 1024));
    main.send_all(bodies.clone()).await.unwrap();
    let got = receive_n(main, 5).await;
    let got: HashSet<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(got, bodies.iter().map(String::as_str).collect());
}

#[tokio::test]
async fn memory_queue_behaves_like_sqs() {
    suite(&Backend::Memory, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_queue_on_moto() {
    let moto = Moto::start().await;
    let client = moto.sqs();
    suite(&Backend::Sqs(client.clone()), "sqs").await;

    // A queue that does not exist: every operation names the URL and itself.
    let missing = SqsQueue::new(client, format!("{}/123456789012/missing", moto.endpoint));
    assert!(missing.url().ends_with("/missing"));
    let bodies: Vec<String> = (0..25).map(|i| i.to_string()).collect();
    let sent = missing.send_each(bodies.clone()).await;
    assert_eq!(
        sent.unconfirmed,
        (0..25).collect::<Vec<_>>(),
        "none confirmed"
    );
    let err = missing.send_all(bodies).await.unwrap_err().to_string();
    assert!(err.contains("/missing"), "{err}");
    assert!(
        err.contains("SendMessageBatch: 25 of 25 messages not confirmed"),
        "{err}"
    );
    let err = missing.receive(1, Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("ReceiveMessage"), "{err}");
    let err = missing.depth().await.unwrap_err();
    assert!(err.to_string().contains("GetQueueAttributes"), "{err}");
}

// ---- MemoryQueue only -------------------------------------------------

/// Real SQS and moto may accept a stale receipt; MemoryQueue documents
/// that it refuses one once the message was received again.
#[tokio::test]
async fn memory_queue_refuses_stale_receipts() {
    let visibility = Duration::from_millis(200);
    let dlq = Arc::new(MemoryQueue::new("stale-dlq", visibility));
    let q = MemoryQueue::new("stale", visibility).with_dead_letter(dlq.clone(), 5);
    assert!(Arc::ptr_eq(&q.dead_letter().unwrap(), &dlq));
    q.send_all(vec!["m".into()]).await.unwrap();
    let first = q.receive(1, Duration::ZERO).await.unwrap().remove(0);
    tokio::time::sleep(visibility + Duration::from_millis(100)).await;
    let second = q.receive(1, Duration::ZERO).await.unwrap().remove(0);
    assert_eq!(second.receive_count, 2);

    let err = q.delete(&first.receipt).await.unwrap_err().to_string();
    assert!(err.contains("ReceiptHandleIsInvalid"), "{err}");
    assert!(err.contains("stale"), "{err}");
    let err = q
        .set_visibility(&first.receipt, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stale"), "{err}");
    assert_eq!(q.len(), 1);
    q.delete(&second.receipt).await.unwrap();
    assert!(q.is_empty());
}

#[tokio::test]
async fn memory_queue_long_poll_wakes_on_send() {
    let q = Arc::new(MemoryQueue::new("wake", Duration::from_secs(30)));
    let receiver = {
        let q = q.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = q.receive(10, Duration::from_secs(10)).await.unwrap();
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.send_all(vec!["hello".into()]).await.unwrap();
    let (got, elapsed) = receiver.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    // Nothing to receive: returns after the wait, empty.
    let started = Instant::now();
    assert!(
        q.receive(1, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

/// 20,000 messages through 16 concurrent consumers, each delivered once
/// (nobody is slow enough to lose a lease), quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_queue_drains_20k_messages_with_many_consumers() {
    const N: usize = 20_000;
    let dlq = Arc::new(MemoryQueue::new("load-dlq", Duration::from_secs(60)));
    let q = Arc::new(
        MemoryQueue::new("load", Duration::from_secs(60)).with_dead_letter(dlq.clone(), 3),
    );
    let started = Instant::now();
    q.send_all((0..N).map(|i| format!("job-{i}")).collect())
        .await
        .unwrap();
    assert_eq!(q.len(), N);
    let consumers: Vec<_> = (0..16)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let batch = q.receive(10, Duration::from_millis(50)).await.unwrap();
                    if batch.is_empty() {
                        return seen;
                    }
                    for m in batch {
                        q.delete(&m.receipt).await.unwrap();
                        seen.push(m.body);
                    }
                }
            })
        })
        .collect();
    let mut all = HashSet::new();
    for consumer in consumers {
        for body in consumer.await.unwrap() {
            assert!(all.insert(body), "delivered twice");
        }
    }
    assert_eq!(all.len(), N);
    assert!(q.is_empty() && dlq.is_empty());
    assert!(q.depth().await.unwrap().is_empty());
    let elapsed = started.elapsed();
    eprintln!("20k messages sent, received and deleted in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}
