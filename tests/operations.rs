//! Operating the fleet, against moto_server and the Homebrew stand-in:
//! size routing and waking ECS, DLQ list/replay, status, import-hashes.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use bottlesync_adapters::aws::sqs_queue::SqsQueue;
use bottlesync_core::ports::queue::Queue;
use bottlesync_core::run::messages::{TITLE_COMPLETE, TITLE_FAILED, TITLE_STARTED};
use bottlesync_loadtest::Fault;
use common::stack::*;
use common::*;
use serde_json::json;

async fn depth(stack: &Stack, url: &str) -> u64 {
    let d = SqsQueue::new(stack.moto.sqs(), url).depth().await.unwrap();
    d.visible + d.in_flight
}

fn json_of(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// An ECS cluster and a service at desired count 0 (EC2 launch type: moto's
/// Fargate services want a real VPC, which this test does not need).
async fn ecs_service(stack: &Stack) -> aws_sdk_ecs::Client {
    let ecs = aws_sdk_ecs::Client::new(&stack.moto.sdk_config());
    ecs.create_cluster()
        .cluster_name("mirror")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("worker")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("worker")
                .image("bottlesync:test")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster("mirror")
        .service_name("workers")
        .task_definition("worker")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    ecs
}

async fn desired_count(ecs: &aws_sdk_ecs::Client) -> i32 {
    let described = ecs
        .describe_services()
        .cluster("mirror")
        .services("workers")
        .send()
        .await
        .unwrap();
    described.services()[0].desired_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_routed_by_size_and_ecs_is_woken_from_zero() {
    let stack = Stack::start(small_catalog()).await;
    let ecs = ecs_service(&stack).await;
    let with_ecs = [
        ("BOTTLESYNC_ECS_CLUSTER", "mirror"),
        ("BOTTLESYNC_ECS_SERVICE", "workers"),
    ];

    // Above the threshold (the stack's default is tiny): all to ECS, service woken.
    let run = run(stack.command_with(&["plan", "--date", DATE], &with_ecs)).await;
    run.assert_code(0);
    let planned = json_of(&run);
    let total = planned["enqueued"].as_u64().unwrap();
    assert!(total > 5);
    assert_eq!(planned["to_ecs"], total);
    assert_eq!(planned["ecs_desired_count"], json!([0, 1]));
    assert_eq!(desired_count(&ecs).await, 1);
    assert_eq!(depth(&stack, &stack.large_queue_url).await, total);
    assert_eq!(depth(&stack, &stack.queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_runs_go_to_lambda_except_oversized_bottles() {
    let stack = Stack::start(small_catalog()).await;
    let ecs = ecs_service(&stack).await;
    // Lambda takes bottles up to the median size of this fixture.
    let mut sizes: Vec<u64> = expected_bottles(&stack.standin, &AUTO_TAGS, false)
        .values()
        .map(|b| b.size)
        .collect();
    sizes.sort();
    let limit = sizes[sizes.len() / 2];
    let limit_gb = format!("{}", limit as f64 / 1e9);
    let settings = [
        ("BOTTLESYNC_SIZE_THRESHOLD_GB", "20"),
        ("BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB", limit_gb.as_str()),
        ("BOTTLESYNC_ECS_CLUSTER", "mirror"),
        ("BOTTLESYNC_ECS_SERVICE", "workers"),
    ];
    let run = run(stack.command_with(&["plan", "--date", DATE], &settings)).await;
    run.assert_code(0);
    let planned = json_of(&run);
    assert_eq!(planned["route"], "lambda");
    let expected = expected_bottles(&stack.standin, &AUTO_TAGS, false);
    let oversized = expected.values().filter(|b| b.size > limit).count() as u64;
    assert!(
        oversized > 0 && oversized < expected.len() as u64,
        "fixture must straddle the limit"
    );
    assert_eq!(planned["to_ecs"], oversized);
    assert_eq!(depth(&stack, &stack.large_queue_url).await, oversized);
    assert_eq!(
        depth(&stack, &stack.queue_url).await,
        expected.len() as u64 - oversized
    );
    assert_eq!(
        desired_count(&ecs).await,
        1,
        "oversized bottles wake ECS too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_queues_and_the_run() {
    let stack = Stack::start(small_catalog()).await;
    let planned = stack.plan().await;
    let total = planned["enqueued"].as_u64().unwrap();
    let status = run(stack.command(&["status", "--json"])).await;
    status.assert_code(0);
    let status = json_of(&status);
    let queue = |name: &str| {
        status["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(queue("ecs")["visible"], total);
    assert_eq!(queue("lambda")["visible"], 0);
    assert_eq!(queue("dlq")["visible"], 0);
    assert_eq!(status["run"]["run_id"], planned["run_id"]);
    assert_eq!(
        (
            status["run"]["expected"].as_u64(),
            status["run"]["done"].as_u64()
        ),
        (Some(total), Some(0))
    );
    assert_eq!(status["run"]["state"], "running");

    // As an ECS task: scale-in protection is on while bottles are in flight,
    // granted by an agent that answers for the task role Terraform writes.
    let agent = bottlesync_loadtest::ecs_agent::EcsAgent::start(
        bottlesync_loadtest::ecs_agent::TaskRolePolicy::from_terraform_source().unwrap(),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let mut worker = stack.command(&[
        "work",
        "--drain",
        "--drain-grace",
        "3",
        "--visibility-timeout",
        "4",
    ]);
    worker.env("ECS_AGENT_URI", agent.uri());
    run(worker).await.assert_code(0);
    let protection = agent.requests();
    assert!(
        protection.len() >= 2
            && protection
                .iter()
                .all(|r| r.method == "PUT" && r.outcome.is_ok()),
        "{protection:?}"
    );
    assert_eq!(protection.first().unwrap().enabled, Some(true));
    assert_eq!(
        protection.last().unwrap().enabled,
        Some(false),
        "released before exit"
    );
    assert!(!agent.is_protected());
    let status = json_of(&run(stack.command(&["status", "--json"])).await);
    assert_eq!(status["run"]["stored"], total);
    assert_eq!(status["run"]["state"], "finished");
    assert!(status["run"]["bytes_stored"].as_u64().unwrap() > 0);
    let text = run(stack.command(&["status"])).await;
    assert!(
        text.stdout.contains(&format!("{total}/{total} done")),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_as_a_new_run_with_one_summary() {
    let stack = Stack::start(small_catalog()).await;
    let corrupt = stack.standin.bottle("wget", "arm64_tahoe").unwrap();
    stack.standin.set_fault(&corrupt.sha256, Fault::Corrupt);
    stack.plan().await;
    Stack::wait_all(vec![stack.spawn_worker(&["--concurrency", "4"])]).await[0].assert_code(0);
    assert_eq!(stack.dlq_depth().await, 1);

    let listed = json_of(&run(stack.command(&["dlq", "list"])).await);
    assert_eq!(listed["count"], 1);
    let letter = &listed["messages"][0];
    assert_eq!(letter["sha256"], corrupt.sha256.as_str());
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap()
            .contains("sha256 mismatch"),
        "{letter}"
    );
    assert_eq!(
        stack.dlq_depth().await,
        1,
        "listing leaves messages in place"
    );

    // An interrupted replay (here: the target queues are gone) loses nothing.
    let mut broken = stack.adapters();
    for (queue, url) in [
        (&mut broken.queues.ecs, &stack.large_queue_url),
        (&mut broken.queues.lambda, &stack.queue_url),
    ] {
        *queue = Some(Arc::new(SqsQueue::new(
            stack.moto.sqs(),
            format!("{url}-gone"),
        )));
    }
    broken.notifier = Arc::new(
        bottlesync_adapters::http::slack::SlackWebhook::new(
            &stack.webhook.url(),
            bottlesync_core::retry::RetryPolicy::notifications(),
        )
        .unwrap(),
    );
    let err = broken
        .replayer()
        .replay(10, false, "20261129T000000Z-00000001".into())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("could not confirm any"), "{err}");
    assert_eq!(stack.dlq_depth().await, 1, "the dead letter is still there");
    // Its run holds the bottle (an unconfirmed send may have landed) and
    // has not drained: no summary yet (its stalled reconcile settles it).
    assert_eq!(stack.webhook.titles(), [TITLE_STARTED, TITLE_FAILED]);

    // A second dead copy of the same bottle (a re-plan of it, a lost ack).
    let dead = SqsQueue::new(stack.moto.sqs(), &stack.dlq_url);
    let letter = dead
        .receive(1, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    dead.set_visibility(&letter[0].receipt, std::time::Duration::ZERO)
        .await
        .unwrap();
    dead.send_all(vec![letter[0].body.clone()]).await.unwrap();
    assert_eq!(stack.dlq_depth().await, 2);

    // The upstream is fixed; replay for real: one bottle, one message.
    stack.standin.clear_faults();
    let dry = json_of(&run(stack.command(&["dlq", "replay", "--dry-run"])).await);
    assert_eq!(
        (
            dry["replayed"].as_u64(),
            dry["duplicates"].as_u64(),
            dry["run_id"].is_null()
        ),
        (Some(1), Some(1), true)
    );
    let replayed = json_of(&run(stack.command(&["dlq", "replay"])).await);
    assert_eq!(
        (
            replayed["replayed"].as_u64(),
            replayed["duplicates"].as_u64()
        ),
        (Some(1), Some(1)),
        "{replayed:#}"
    );
    assert_eq!(stack.dlq_depth().await, 0);
    // A small bottle goes back to the Lambda queue (its size routes it).
    assert_eq!(replayed["to_ecs"], 0);
    Stack::wait_all(vec![stack.spawn_worker(&["--queue-url", &stack.queue_url])]).await[0]
        .assert_code(0);
    assert!(
        stack
            .objects()
            .await
            .contains(&format!("{PREFIX}/{DATE}/{}", corrupt.mirror_file_name))
    );
    assert!(stack.hash_file_keys().await.contains(&corrupt.sha256));
    assert_eq!(
        stack.webhook.titles(),
        [TITLE_STARTED, TITLE_FAILED, TITLE_COMPLETE]
    );
    let run_id = replayed["run_id"].as_str().unwrap();
    let run = stack.adapters().ledger.run(run_id).await.unwrap().unwrap();
    assert_eq!((run.expected, run.stored), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_hashes_makes_the_next_plan_skip_and_refuses_a_bad_file() {
    let stack = Stack::start(small_catalog()).await;
    let expected = expected_bottles(&stack.standin, &AUTO_TAGS, false);
    let imported: Vec<&String> = expected.keys().take(3).collect();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("hashes.json");
    std::fs::write(&good, json!(imported).to_string()).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, br#"{"schema": 1, "bottles": 7}"#).unwrap();

    let refused = run(stack.command(&["import-hashes", bad.to_str().unwrap()])).await;
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("bad.json") && refused.stderr.contains("schema-1"),
        "{}",
        refused.stderr
    );
    let states = stack.adapters().ledger.bottle_states().await.unwrap();
    assert!(states.is_empty(), "a refused file changes nothing");

    let first = json_of(&run(stack.command(&["import-hashes", good.to_str().unwrap()])).await);
    assert_eq!(
        (first["imported"].as_u64(), first["skipped"].as_u64()),
        (Some(3), Some(0))
    );
    let second = json_of(&run(stack.command(&["import-hashes", good.to_str().unwrap()])).await);
    assert_eq!(
        (second["imported"].as_u64(), second["skipped"].as_u64()),
        (Some(0), Some(3))
    );

    let planned = stack.plan().await;
    assert_eq!(planned["already_mirrored"], 3);
    assert_eq!(planned["enqueued"], expected.len() - 3);
    Stack::wait_all(vec![stack.spawn_worker(&["--concurrency", "4"])]).await[0].assert_code(0);
    let listed: BTreeSet<String> = stack.hash_file_keys().await;
    assert_eq!(
        listed.len(),
        expected.len() - 3,
        "imported digests are not written into bottles_hash.json"
    );
}
