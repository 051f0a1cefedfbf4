//! Progress messages and metrics of an ECS run, end to end against
//! moto_server and the Homebrew stand-in: `bottlesync plan`, then two
//! `bottlesync work --drain` processes with a one-second progress interval.
//! The Slack stand-in must see progress at most once per interval for the
//! whole fleet (not once per worker), and exactly one summary; the workers'
//! stdout carries one EMF metrics line per bottle.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bottlesync_core::notifier::{TITLE_COMPLETE, TITLE_PROGRESS, TITLE_STARTED};
use bottlesync_loadtest::webhook::WebhookReceiver;
use bottlesync_loadtest::{Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use common::*;

const BUCKET: &str = "progress-mirror";
const TABLE: &str = "bottlesync-ledger";
const PREFIX: &str = "brew";
const BOTTLES: usize = 60;
const BOTTLE_SIZE: u64 = 60_000;
const INTERVAL_SECONDS: u64 = 1;

/// Bucket, ledger table, the two work queues and a DLQ, on moto.
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
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        use aws_sdk_sqs::types::QueueAttributeName;
        let moto = Moto::start().await;
        moto.s3()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        moto.dynamodb()
            .create_table()
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
        let mut urls = Vec::new();
        for name in ["dlq", "work", "work-large"] {
            let url = sqs
                .create_queue()
                .queue_name(name)
                .attributes(QueueAttributeName::VisibilityTimeout, "10")
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
            dlq_url: urls.pop().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = bottlesync();
        cmd.env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required");
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        for (k, v) in [
            ("BOTTLESYNC_BUCKET", BUCKET.to_string()),
            ("BOTTLESYNC_PREFIX", PREFIX.to_string()),
            ("BOTTLESYNC_LEDGER_TABLE", TABLE.to_string()),
            ("BOTTLESYNC_QUEUE_URL", self.queue_url.clone()),
            ("BOTTLESYNC_LARGE_QUEUE_URL", self.large_queue_url.clone()),
            ("BOTTLESYNC_DLQ_URL", self.dlq_url.clone()),
            ("BOTTLESYNC_API_URL", self.standin.api_url()),
            ("BOTTLESYNC_SLACK_WEBHOOK_URL", self.webhook.url()),
            ("BOTTLESYNC_ENVIRONMENT", "test".to_string()),
            // Tiny threshold: the run goes to the ECS queue that `work` consumes.
            ("BOTTLESYNC_SIZE_THRESHOLD_GB", "0.000000001".to_string()),
            (
                "BOTTLESYNC_PROGRESS_INTERVAL_SECONDS",
                INTERVAL_SECONDS.to_string(),
            ),
            ("BOTTLESYNC_METRICS", "emf".to_string()),
        ] {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    }

    fn spawn_worker(&self) -> Child {
        let mut cmd = self.command(&[
            "work",
            "--drain",
            "--drain-grace",
            "2",
            "--retry-delay",
            "1",
            "--concurrency",
            "3",
        ]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }
}

/// Small bottles, all served slowly at staggered rates (0.3 to 1.5 s
/// each): two workers with three downloads each take several seconds and
/// count a bottle every fraction of a second, so workers that each kept
/// their own interval would post about twice as often as the fleet may.
fn slow_catalog() -> Catalog {
    Catalog::from_formulae(
        (0..BOTTLES)
            .map(|i| {
                FormulaSpec::new(format!("tool{i:02}"), "1.0").bottle("arm64_tahoe", BOTTLE_SIZE)
            })
            .collect(),
    )
}

fn rate(i: usize) -> u64 {
    40_000 * (1 + (i * 7) as u64 % 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_rate_limited_for_the_whole_fleet() {
    let stack = Stack::start(slow_catalog()).await;
    for i in 0..BOTTLES {
        let bottle = stack
            .standin
            .bottle(&format!("tool{i:02}"), "arm64_tahoe")
            .unwrap();
        stack.standin.set_fault(
            &bottle.sha256,
            Fault::Slow {
                bytes_per_sec: rate(i),
            },
        );
    }

    let plan = run(stack.command(&["plan", "--date", DATE])).await;
    plan.assert_code(0);
    let planned: serde_json::Value = serde_json::from_str(&plan.stdout)
        .unwrap_or_else(|e| panic!("plan output {e}: {}", plan.stdout));
    assert_eq!(planned["route"], "ecs", "{planned:#}");
    assert_eq!(planned["enqueued"], BOTTLES, "{planned:#}");
    let run_id = planned["run_id"].as_str().unwrap().to_string();

    // Progress can only follow a bottle counted by a worker: the messages
    // fall between the workers' start and the summary, at least one
    // interval apart.
    let began = Instant::now();
    let workers: Vec<Child> = (0..2).map(|_| stack.spawn_worker()).collect();
    // The run is over when the summary has arrived; the workers then wait
    // out their drain grace, which is not part of the run.
    let deadline = began + Duration::from_secs(120);
    let duration = loop {
        if stack.webhook.titles().iter().any(|t| t == TITLE_COMPLETE) {
            break began.elapsed();
        }
        assert!(Instant::now() < deadline, "no summary after 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let runs = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(|c| Run::from(c.wait_with_output().unwrap()))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for run in &runs {
        run.assert_code(0);
    }

    let titles = stack.webhook.titles();
    let count = |title: &str| titles.iter().filter(|t| *t == title).count();
    let progress = count(TITLE_PROGRESS);
    let limit = (duration.as_secs_f64() / INTERVAL_SECONDS as f64).floor() as usize + 1;
    eprintln!(
        "run took {:.1} s: {progress} progress messages (limit {limit}); titles: {titles:?}",
        duration.as_secs_f64()
    );
    assert!(
        duration > Duration::from_secs(3 * INTERVAL_SECONDS),
        "the run was too quick ({duration:?}) to show rate limiting"
    );
    assert_eq!(titles[0], TITLE_STARTED, "{titles:?}");
    assert_eq!(count(TITLE_STARTED), 1, "{titles:?}");
    assert_eq!(count(TITLE_COMPLETE), 1, "{titles:?}");
    assert_eq!(
        progress + 2,
        titles.len(),
        "only start, progress and complete messages: {titles:?}"
    );
    assert!(progress >= 1, "no progress message in {duration:?}");
    assert!(
        progress <= limit,
        "{progress} progress messages in {duration:?} at one per {INTERVAL_SECONDS} s \
         for the whole fleet (at most {limit})"
    );

    for message in stack.webhook.messages() {
        let text = message["text"].as_str().unwrap();
        if !text.starts_with(TITLE_PROGRESS) {
            continue;
        }
        let done: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Progress: "))
            .and_then(|p| p.split_once('/'))
            .and_then(|(done, _)| done.parse().ok())
            .unwrap_or_else(|| panic!("no Progress line in {text}"));
        assert!(
            done >= 1 && done < BOTTLES as u64,
            "a progress message of a drained run: {text}"
        );
        for needle in [
            format!("/{BOTTLES} ("),
            "Bytes stored: ".to_string(),
            "ETA: ".to_string(),
            "Environment: test".to_string(),
            format!("Run: {run_id}"),
        ] {
            assert!(text.contains(&needle), "no {needle:?} in {text}");
        }
    }

    // Metrics: one EMF line per bottle across both workers' stdout.
    let lines: Vec<serde_json::Value> = runs
        .iter()
        .flat_map(|r| r.stdout.lines())
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\":"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        lines.len(),
        BOTTLES,
        "EMF lines: {lines:#?}\n--- stdout\n{}",
        runs.iter()
            .map(|r| r.stdout.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let mut stored = 0;
    let mut bytes = 0;
    for line in &lines {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "bottlesync");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Environment"]])
        );
        assert_eq!(line["Environment"], "test");
        assert_eq!(line["run_id"], run_id.as_str());
        assert_eq!(line["sha256"].as_str().unwrap().len(), 64);
        assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 0);
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(line[*name].is_number(), "{name} has no value: {line}");
        }
        assert!(names.contains(&"DownloadSeconds"), "{line}");
        assert!(names.contains(&"TimeInQueueSeconds"), "{line}");
        stored += line["BottlesStored"].as_u64().unwrap_or(0);
        bytes += line["BytesStored"].as_u64().unwrap_or(0);
    }
    assert_eq!(stored, BOTTLES as u64);
    assert_eq!(bytes, BOTTLES as u64 * BOTTLE_SIZE);
}
