//! The SQS fan-out end to end, against moto_server (S3, SQS, DynamoDB) and
//! the Homebrew stand-in: `bottlesync plan` then `bottlesync work --drain`
//! processes, and the Lambda handler called directly.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottlesync_adapters::aws::sqs_queue::SqsQueue;
use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_core::ports::queue::{Queue, QueueMessage};
use bottlesync_core::run::messages::{TITLE_COMPLETE, TITLE_FAILED, TITLE_STARTED};
use bottlesync_loadtest::{Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use bottlesync_planner::fleet::FleetPlanRequest;
use bottlesync_worker::consumer::{Consumer, Disposition, attempts_allowed};
use bottlesync_worker::lambda::{Invocation, handle_batch};
use common::stack::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_then_three_workers_mirror_everything_with_one_summary() {
    let stack = Stack::start(small_catalog()).await;
    let planned = stack.plan().await;
    let expected = expected_bottles(&stack.standin, &AUTO_TAGS, false);
    assert_eq!(planned["enqueued"], expected.len(), "{planned:#}");
    assert_eq!(planned["route"], "ecs");

    // Slack is down for the first two posts of the summary: retried, sent once.
    stack.webhook.fail_next(2);
    let workers = (0..3)
        .map(|_| stack.spawn_worker(&["--concurrency", "3"]))
        .collect();
    for run in Stack::wait_all(workers).await {
        run.assert_code(0);
    }

    let mut wanted: BTreeSet<String> = expected
        .values()
        .map(|b| format!("{PREFIX}/{DATE}/{}", b.mirror_file_name))
        .collect();
    wanted.insert(format!("{PREFIX}/bottles_hash.json"));
    assert_eq!(stack.objects().await, wanted);
    for bottle in expected.values() {
        assert_eq!(
            stack
                .object_sha256(&format!("{PREFIX}/{DATE}/{}", bottle.mirror_file_name))
                .await,
            bottle.sha256
        );
    }
    assert_eq!(
        stack.hash_file_keys().await,
        expected.keys().cloned().collect()
    );
    assert_eq!(stack.webhook.titles(), [TITLE_STARTED, TITLE_COMPLETE]);
    let summary = stack.webhook.messages()[1]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains(&format!("New bottles: {}", expected.len())),
        "{summary}"
    );
    assert!(summary.contains("Environment: test"), "{summary}");
    for bottle in expected.values() {
        assert_eq!(
            stack.standin.stats().bottle(&bottle.sha256).storage_gets,
            1,
            "{} fetched more than once",
            bottle.mirror_file_name
        );
    }

    let again = stack.plan().await;
    assert_eq!(again["enqueued"], 0, "{again:#}");
    assert_eq!(again["already_mirrored"], expected.len());
    assert_eq!(
        stack.webhook.messages().len(),
        2,
        "a run with nothing to do sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_messages_download_once_and_count_once() {
    let stack = Stack::start(small_catalog()).await;
    let planned = stack.plan().await;
    let run_id = planned["run_id"].as_str().unwrap().to_string();
    // A second planner while the first run is queued enqueues nothing.
    let second = stack.plan().await;
    assert_eq!(
        (second["enqueued"].as_u64(), second["in_flight"].as_u64()),
        (Some(0), planned["enqueued"].as_u64()),
        "{second:#}"
    );
    // Send every message a second time.
    let queue = SqsQueue::new(stack.moto.sqs(), &stack.large_queue_url);
    let mut bodies = BTreeSet::new();
    while bodies.len() < planned["enqueued"].as_u64().unwrap() as usize {
        for message in queue.receive(10, Duration::from_secs(1)).await.unwrap() {
            bodies.insert(message.body.clone());
            queue
                .set_visibility(&message.receipt, Duration::ZERO)
                .await
                .unwrap();
        }
    }
    queue
        .send_all(bodies.iter().cloned().collect())
        .await
        .unwrap();

    let workers = (0..2)
        .map(|_| stack.spawn_worker(&["--concurrency", "4"]))
        .collect();
    for run in Stack::wait_all(workers).await {
        run.assert_code(0);
    }
    let stats = stack.standin.stats();
    for bottle in expected_bottles(&stack.standin, &AUTO_TAGS, false).values() {
        assert_eq!(
            stats.bottle(&bottle.sha256).storage_gets,
            1,
            "{} downloaded twice",
            bottle.mirror_file_name
        );
    }
    let run = stack.adapters().ledger.run(&run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.stored, run.skipped, run.failed),
        (bodies.len() as u64, 0, 0)
    );
    assert_eq!(stack.webhook.titles(), [TITLE_STARTED, TITLE_COMPLETE]);
}

/// A message as the Lambda event delivers it (the receipt is never used:
/// Lambda deletes what the handler does not report).
fn lambda_message(id: &str, body: String) -> QueueMessage {
    QueueMessage {
        message_id: id.into(),
        receipt: format!("receipt-{id}"),
        body,
        receive_count: 1,
        sent_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_handler_reports_exactly_the_failed_record() {
    let stack = Stack::start(small_catalog()).await;
    let corrupt = stack.standin.bottle("curl", "arm64_tahoe").unwrap();
    stack.standin.set_fault(&corrupt.sha256, Fault::Corrupt);
    stack.plan().await;
    let queue = SqsQueue::new(stack.moto.sqs(), &stack.large_queue_url);
    let mut messages = Vec::new();
    for _ in 0..20 {
        messages.extend(queue.receive(10, Duration::from_secs(1)).await.unwrap());
        if messages.iter().any(|m| m.body.contains(&corrupt.sha256)) && messages.len() >= 3 {
            break;
        }
    }
    let corrupt_message = messages
        .iter()
        .find(|m| m.body.contains(&corrupt.sha256))
        .unwrap()
        .clone();
    let good: Vec<_> = messages
        .iter()
        .filter(|m| !m.body.contains(&corrupt.sha256))
        .take(2)
        .cloned()
        .collect();

    let batch = vec![
        lambda_message("good-1", good[0].body.clone()),
        lambda_message("bad", corrupt_message.body.clone()),
        lambda_message("good-2", good[1].body.clone()),
        lambda_message("malformed", "{\"not\": \"a bottle\"}".into()),
    ];
    let consumer = Arc::new(Consumer::new(
        stack.adapters().worker(),
        "lambda-test".into(),
        Some(MAX_RECEIVES),
    ));
    let failed = handle_batch(consumer, batch, Invocation::unlimited()).await;
    assert_eq!(
        failed,
        ["bad"],
        "only the corrupt bottle is retried; the malformed one went to the DLQ"
    );
    assert_eq!(stack.dlq_depth().await, 1);
    let keys = stack.objects().await;
    assert!(!keys.iter().any(|k| k.contains(&corrupt.mirror_file_name)));
    assert_eq!(
        keys.iter()
            .filter(|k| k.contains(&format!("{DATE}/")))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_bottle_is_retried_then_dead_lettered_and_named_in_the_summary() {
    let stack = Stack::start(small_catalog()).await;
    let corrupt = stack.standin.bottle("openssl@3", "arm64_tahoe").unwrap();
    stack.standin.set_fault(&corrupt.sha256, Fault::Corrupt);
    let planned = stack.plan().await;
    let run_id = planned["run_id"].as_str().unwrap().to_string();
    let worker = stack.spawn_worker(&["--concurrency", "4"]);
    for run in Stack::wait_all(vec![worker]).await {
        run.assert_code(0);
    }
    assert_eq!(
        stack.standin.stats().bottle(&corrupt.sha256).storage_gets,
        attempts_allowed(MAX_RECEIVES) as u64,
        "one download per attempt"
    );
    assert_eq!(stack.dlq_depth().await, 1);
    let run = stack.adapters().ledger.run(&run_id).await.unwrap().unwrap();
    assert_eq!(run.failed, 1);
    assert_eq!(run.stored + 1, planned["enqueued"].as_u64().unwrap());
    assert_eq!(stack.webhook.titles(), [TITLE_STARTED, TITLE_FAILED]);
    let summary = stack.webhook.messages()[1]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains("openssl@3 arm64_tahoe") && summary.contains("sha256 mismatch"),
        "{summary}"
    );
    assert!(summary.contains("DLQ depth: 1"), "{summary}");
    assert!(
        !stack
            .objects()
            .await
            .iter()
            .any(|k| k.contains(&corrupt.mirror_file_name))
    );
    assert!(!stack.hash_file_keys().await.contains(&corrupt.sha256));
    stack.assert_no_partial_uploads().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_download_is_taken_over_and_the_run_finishes_once() {
    a_killed_worker_is_taken_over("3").await;
}

/// Production's ratio: a 900 s claim against a 10 s visibility timeout and
/// five receives. The killed worker's claim must not make the bottle wait
/// out its lease (nor use up its receives, which dead-lettered it
/// uncounted before: the run never drained).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_bottle_under_a_900_s_claim_is_taken_over_at_once() {
    a_killed_worker_is_taken_over("900").await;
}

/// A worker SIGKILLed mid-download, with claims of `lease_seconds`: a
/// rescuer stores the bottle and the run ends with one summary, well
/// before a 900 s claim could expire.
async fn a_killed_worker_is_taken_over(lease_seconds: &str) {
    let big_size = 24 * 1024 * 1024;
    let catalog = Catalog::from_formulae(vec![
        FormulaSpec::new("big", "1.0").bottle("arm64_tahoe", big_size),
        FormulaSpec::new("small", "1.0").bottle("arm64_tahoe", 5_000),
    ]);
    let stack = Stack::start(catalog).await;
    let big = stack.standin.bottle("big", "arm64_tahoe").unwrap();
    stack.standin.set_fault(
        &big.sha256,
        Fault::Slow {
            bytes_per_sec: 2 * 1024 * 1024,
        },
    );
    stack.plan().await;
    // The stack's queues have a 4 s visibility timeout (workers extend by at
    // least 10 s) and five receives.
    let claim = ["--lease-seconds", lease_seconds];
    let mut doomed = stack.spawn_worker(&claim);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.standin.stats().bottle(&big.sha256).bytes_served < 10 * 1024 * 1024 {
        assert!(
            Instant::now() < deadline,
            "the big download never got going"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    doomed.kill().unwrap(); // SIGKILL: no cleanup at all, the claim stays
    let _ = doomed.wait();
    stack.standin.clear_faults();

    let rescuer = stack.spawn_worker(&["--concurrency", "2", "--lease-seconds", lease_seconds]);
    let runs = tokio::time::timeout(Duration::from_secs(120), Stack::wait_all(vec![rescuer]))
        .await
        .expect("the run ends well before a 900 s claim would expire");
    for run in runs {
        run.assert_code(0);
    }
    assert_eq!(
        stack
            .object_sha256(&format!("{PREFIX}/{DATE}/{}", big.mirror_file_name))
            .await,
        big.sha256
    );
    stack.assert_no_partial_uploads().await;
    assert_eq!(stack.dlq_depth().await, 0);
    assert_eq!(stack.webhook.titles(), [TITLE_STARTED, TITLE_COMPLETE]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_refused_into_the_dlq_and_nothing_is_written() {
    let stack = Stack::start(small_catalog()).await;
    let planned = stack.plan().await;
    let run_id = planned["run_id"].as_str().unwrap().to_string();
    // Drain the real work so only the bad messages remain.
    let queue = SqsQueue::new(stack.moto.sqs(), &stack.large_queue_url);
    let mut template = None;
    loop {
        let messages = queue.receive(10, Duration::from_secs(1)).await.unwrap();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            template.get_or_insert(m.body.clone());
            queue.delete(&m.receipt).await.unwrap();
        }
    }
    let template: serde_json::Value = serde_json::from_str(&template.unwrap()).unwrap();
    let mut unknown_run = template.clone();
    unknown_run["run_id"] = "20990101T000000Z-deadbeef".into();
    let mut escaping = template.clone();
    escaping["key"] = format!(
        "../../outside/{}",
        template["key"]
            .as_str()
            .unwrap()
            .split('/')
            .next_back()
            .unwrap()
    )
    .into();
    let mut foreign = template.clone();
    foreign["url"] = template["url"]
        .as_str()
        .unwrap()
        .replace("127.0.0.1", "evil.example")
        .into();
    assert_eq!(foreign["run_id"], run_id.as_str());
    queue
        .send_all(vec![
            "this is not json".into(),
            unknown_run.to_string(),
            escaping.to_string(),
            foreign.to_string(),
        ])
        .await
        .unwrap();
    let worker = stack.spawn_worker(&[]);
    let runs = Stack::wait_all(vec![worker]).await;
    runs[0].assert_code(0);
    let log = runs[0].stderr.clone();
    for needle in [
        "not a bottle message",
        "unknown run id",
        "key",
        "is not on an allowed host",
    ] {
        assert!(log.contains(needle), "no {needle:?} in the log:\n{log}");
    }
    assert_eq!(stack.dlq_depth().await, 4);
    assert!(
        stack
            .objects()
            .await
            .iter()
            .all(|k| !k.contains(&format!("{DATE}/"))),
        "nothing stored"
    );
    assert_eq!(stack.standin.stats().storage_gets, 0);
}

/// Two copies of a bottle's message handled at the same moment by one
/// worker: one attempt holds the claim and downloads, the other waits.
/// In process (memory queue and ledger, local store): no timing luck needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_given_two_copies_at_once_downloads_once() {
    let standin = StandIn::start(StandInConfig::new(small_catalog()))
        .await
        .unwrap();
    let mirror = tempfile::tempdir().unwrap();
    let config = FleetConfig::new("in-process", "in-process")
        .with_api_url(standin.api_url().parse().unwrap(), &[]);
    let services = Arc::new(
        bottlesync_adapters::wiring::in_process_adapters(
            config,
            mirror.path(),
            Duration::from_secs(30),
            3,
        )
        .unwrap(),
    );
    let request = FleetPlanRequest {
        date: Some(DATE.parse().unwrap()),
        ..FleetPlanRequest::default()
    };
    let planned = services
        .planner()
        .plan_run(&request, "planner")
        .await
        .unwrap();
    assert!(planned.enqueued > 0);
    let queue = services.queues.lambda.clone().unwrap();
    let mut messages = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            break;
        }
        messages.extend(batch);
    }
    assert_eq!(messages.len() as u64, planned.enqueued);

    let consumer = Consumer::new(services.worker(), "worker".into(), Some(3));
    let cancel = tokio_util::sync::CancellationToken::new();
    for message in &messages {
        let (first, second) = tokio::join!(
            consumer.handle(message, &cancel),
            consumer.handle(message, &cancel)
        );
        let stored = [&first, &second]
            .iter()
            .filter(|d| matches!(d, Disposition::Stored { .. }))
            .count();
        let waiting = [&first, &second]
            .iter()
            .filter(|d| matches!(d, Disposition::Retry { .. } | Disposition::Requeued { .. }))
            .count();
        assert_eq!((stored, waiting), (1, 1), "{first:?} / {second:?}");
    }
    for bottle in expected_bottles(&standin, &AUTO_TAGS, false).values() {
        assert_eq!(
            standin.stats().bottle(&bottle.sha256).storage_gets,
            1,
            "{} downloaded twice",
            bottle.mirror_file_name
        );
    }
}

/// ECS stops a task with SIGTERM, then SIGKILL after its stop timeout. A
/// 24 MiB bottle at 1 MiB/s cannot finish in the 2 s grace: within it the
/// download stops, the multipart upload is aborted, the claim released and
/// the message visible again. Before, the transfer ran on to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_download_gives_everything_back_within_the_grace() {
    let catalog = Catalog::from_formulae(vec![
        FormulaSpec::new("big", "1.0").bottle("arm64_tahoe", 24 * 1024 * 1024),
    ]);
    let stack = Stack::start(catalog).await;
    let big = stack.standin.bottle("big", "arm64_tahoe").unwrap();
    stack.standin.set_fault(
        &big.sha256,
        Fault::Slow {
            bytes_per_sec: 1024 * 1024,
        },
    );
    stack.plan().await;
    let worker = stack.spawn_worker(&["--lease-seconds", "900", "--shutdown-grace", "2"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.standin.stats().bottle(&big.sha256).bytes_served < 10 * 1024 * 1024 {
        assert!(Instant::now() < deadline, "the download never got going");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let runs = tokio::time::timeout(Duration::from_secs(15), Stack::wait_all(vec![worker]))
        .await
        .expect("the worker exits within its grace");
    runs[0].assert_code(0);
    assert!(
        stack.standin.stats().bottle(&big.sha256).bytes_served < 20 * 1024 * 1024,
        "the download stopped"
    );
    let key = format!("{PREFIX}/{DATE}/{}", big.mirror_file_name);
    assert!(!stack.objects().await.contains(&key), "nothing stored");
    stack.assert_no_partial_uploads().await;
    let services = stack.adapters();
    let sha = bottlesync_core::Sha256Digest::parse(&big.sha256).unwrap();
    match services.ledger.bottle_state(&sha).await.unwrap() {
        Some(bottlesync_core::ports::fleet_ledger::BottleState::Claimed {
            lease_expires, ..
        }) => {
            assert!(lease_expires < chrono::Utc::now(), "the claim is released")
        }
        other => panic!("expected a released claim, got {other:?}"),
    }
    let depth = services.queues.ecs.as_ref().unwrap().depth().await.unwrap();
    assert_eq!(
        (depth.visible, depth.in_flight),
        (1, 0),
        "the message is back"
    );
}
