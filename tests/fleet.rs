//! The SQS fan-out end to end, against moto_server (S3, SQS, DynamoDB) and
//! the Homebrew stand-in: `bottlesync plan` then `bottlesync work --drain`
//! processes, and the Lambda handler called directly.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bottlesync_core::dynamo_ledger::DynamoLedger;
use bottlesync_core::fleet_config::{FleetArgs, FleetConfig};
use bottlesync_core::notifier::{LogNotifier, TITLE_COMPLETE, TITLE_FAILED, TITLE_STARTED};
use bottlesync_core::queue::Queue;
use bottlesync_core::registry::{HttpSettings, RegistryClient};
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::s3_store::S3Store;
use bottlesync_core::services::FleetServices;
use bottlesync_core::sqs_queue::SqsQueue;
use bottlesync_loadtest::webhook::WebhookReceiver;
use bottlesync_loadtest::{Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use bottlesync_worker::consumer::Consumer;
use bottlesync_worker::lambda::handle_sqs_event;
use common::*;

const BUCKET: &str = "fleet-mirror";
const TABLE: &str = "bottlesync-ledger";
const PREFIX: &str = "brew";
const MAX_RECEIVES: u32 = 3;

/// A whole stack on moto: bucket, ledger table, two queues with a DLQ.
struct Stack {
    moto: Moto,
    standin: StandIn,
    webhook: WebhookReceiver,
    queue_url: String,
    large_queue_url: String,
    dlq_url: String,
}

impl Stack {
    async fn start(catalog: Catalog) -> Stack {
        let moto = Moto::start().await;
        moto.s3()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let ddb = moto.dynamodb();
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        ddb.create_table()
            .table_name(TABLE)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let sqs = moto.sqs();
        let dlq_url = sqs
            .create_queue()
            .queue_name("dlq")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        let redrive =
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{MAX_RECEIVES}"}}"#);
        let mut urls = Vec::new();
        for name in ["work", "work-large"] {
            let url = sqs
                .create_queue()
                .queue_name(name)
                .attributes(
                    aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                    "4",
                )
                .attributes(
                    aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                    redrive.clone(),
                )
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            urls.push(url);
        }
        let standin = StandIn::start(StandInConfig::new(catalog)).await.unwrap();
        let webhook = WebhookReceiver::start().await.unwrap();
        Stack {
            moto,
            standin,
            webhook,
            large_queue_url: urls.pop().unwrap(),
            queue_url: urls.pop().unwrap(),
            dlq_url,
        }
    }

    /// The settings the Terraform stack gives the functions.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.moto.env();
        env.extend([
            ("BOTTLESYNC_BUCKET", BUCKET.to_string()),
            ("BOTTLESYNC_PREFIX", PREFIX.to_string()),
            ("BOTTLESYNC_LEDGER_TABLE", TABLE.to_string()),
            ("BOTTLESYNC_QUEUE_URL", self.queue_url.clone()),
            ("BOTTLESYNC_LARGE_QUEUE_URL", self.large_queue_url.clone()),
            ("BOTTLESYNC_DLQ_URL", self.dlq_url.clone()),
            ("BOTTLESYNC_API_URL", self.standin.api_url()),
            ("BOTTLESYNC_SLACK_WEBHOOK_URL", self.webhook.url()),
            ("BOTTLESYNC_ENVIRONMENT", "test".to_string()),
            // Tiny threshold: every run goes to the ECS queue that `work` consumes.
            ("BOTTLESYNC_SIZE_THRESHOLD_GB", "0.000000001".to_string()),
        ]);
        env
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = bottlesync();
        cmd.env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    }

    async fn plan(&self) -> serde_json::Value {
        let run = run(self.command(&["plan", "--date", DATE])).await;
        run.assert_code(0);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("plan output {e}: {}", run.stdout))
    }

    fn spawn_worker(&self, extra: &[&str]) -> Child {
        let mut args = vec![
            "work",
            "--drain",
            "--drain-grace",
            "3",
            "--visibility-timeout",
            "4",
            "--retry-delay",
            "1",
        ];
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }

    async fn wait_all(children: Vec<Child>) -> Vec<Run> {
        tokio::task::spawn_blocking(move || {
            children
                .into_iter()
                .map(|c| Run::from(c.wait_with_output().unwrap()))
                .collect()
        })
        .await
        .unwrap()
    }

    fn services(&self) -> FleetServices {
        let config = FleetConfig::from_args(&FleetArgs {
            bucket: Some(BUCKET.into()),
            prefix: Some(PREFIX.into()),
            ledger_table: Some(TABLE.into()),
            queue_url: Some(self.queue_url.clone()),
            dlq_url: Some(self.dlq_url.clone()),
            api_url: Some(self.standin.api_url()),
            ..FleetArgs::default()
        })
        .unwrap();
        let sqs = self.moto.sqs();
        FleetServices {
            store: Arc::new(S3Store::new(self.moto.s3(), BUCKET, PREFIX)),
            ledger: Arc::new(DynamoLedger::new(self.moto.dynamodb(), TABLE)),
            registry: Arc::new(RegistryClient::new(&HttpSettings::default()).unwrap()),
            notifier: Arc::new(LogNotifier),
            retry: RetryPolicy::default(),
            queue: Some(Arc::new(SqsQueue::new(sqs.clone(), &self.queue_url))),
            large_queue: Some(Arc::new(SqsQueue::new(sqs.clone(), &self.large_queue_url))),
            dlq: Some(Arc::new(SqsQueue::new(sqs, &self.dlq_url))),
            config,
        }
    }

    async fn objects(&self) -> BTreeSet<String> {
        let listed = self
            .moto
            .s3()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect()
    }

    async fn object_sha256(&self, key: &str) -> String {
        let body = self
            .moto
            .s3()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        sha256_hex(&body.into_bytes())
    }

    async fn hash_file_keys(&self) -> BTreeSet<String> {
        let key = format!("{PREFIX}/bottles_hash.json");
        let body = self
            .moto
            .s3()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        let record: serde_json::Value = serde_json::from_slice(&body.into_bytes()).unwrap();
        record["bottles"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    async fn dlq_depth(&self) -> u64 {
        let depth = SqsQueue::new(self.moto.sqs(), &self.dlq_url)
            .depth()
            .await
            .unwrap();
        depth.visible + depth.in_flight
    }

    async fn assert_no_partial_uploads(&self) {
        let uploads = self
            .moto
            .s3()
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert!(
            uploads.uploads().is_empty(),
            "incomplete multipart uploads: {:?}",
            uploads.uploads()
        );
    }
}

fn small_catalog() -> Catalog {
    let mut formulae = Catalog::tricky().formulae().to_vec();
    formulae.retain(|f| {
        [
            "wget",
            "openssl@3",
            "curl",
            "libidn2",
            "ca-certificates",
            "old-tool",
        ]
        .contains(&f.name.as_str())
    });
    Catalog::from_formulae(formulae)
}

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
    let run = stack.services().ledger.run(&run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.stored, run.skipped, run.failed),
        (bodies.len() as u64, 0, 0)
    );
    assert_eq!(stack.webhook.titles(), [TITLE_STARTED, TITLE_COMPLETE]);
}

fn sqs_record(id: &str, body: String, receive_count: u32) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(id.into());
    record.receipt_handle = Some(format!("receipt-{id}"));
    record.body = Some(body);
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    record
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

    let mut event = SqsEvent::default();
    event.records = vec![
        sqs_record("good-1", good[0].body.clone(), 1),
        sqs_record("bad", corrupt_message.body.clone(), 1),
        sqs_record("good-2", good[1].body.clone(), 1),
        sqs_record("malformed", "{\"not\": \"a bottle\"}".into(), 1),
    ];
    let consumer = Arc::new(Consumer::new(
        Arc::new(stack.services()),
        "lambda-test".into(),
        Some(MAX_RECEIVES),
    ));
    let response = handle_sqs_event(consumer, event).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
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
        MAX_RECEIVES as u64,
        "one download per receive"
    );
    assert_eq!(stack.dlq_depth().await, 1);
    let run = stack.services().ledger.run(&run_id).await.unwrap().unwrap();
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

    let mut doomed = stack.spawn_worker(&["--lease-seconds", "3"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.standin.stats().bottle(&big.sha256).bytes_served < 10 * 1024 * 1024 {
        assert!(
            Instant::now() < deadline,
            "the big download never got going"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    doomed.kill().unwrap(); // SIGKILL: no cleanup at all
    let _ = doomed.wait();
    stack.standin.clear_faults();

    let rescuer = stack.spawn_worker(&["--concurrency", "2"]);
    for run in Stack::wait_all(vec![rescuer]).await {
        run.assert_code(0);
    }
    assert_eq!(
        stack
            .object_sha256(&format!("{PREFIX}/{DATE}/{}", big.mirror_file_name))
            .await,
        big.sha256
    );
    stack.assert_no_partial_uploads().await;
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
