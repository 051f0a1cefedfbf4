//! The moto backend: moto_server behind counting proxies, `bottlesync plan`
//! and `bottlesync work --drain` processes with the settings Terraform gives
//! the functions, SIGKILL as chaos.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bottlesync_core::dynamo_ledger::DynamoLedger;
use bottlesync_core::fleet_config::{FleetArgs, FleetConfig};
use bottlesync_core::notifier::LogNotifier;
use bottlesync_core::queue::Queue;
use bottlesync_core::registry::{HttpSettings, RegistryClient};
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::s3_store::S3Store;
use bottlesync_core::services::FleetServices;
use bottlesync_core::sqs_queue::SqsQueue;
use bottlesync_loadtest::aws_counter::AwsRequestCounter;
use bottlesync_loadtest::moto::{FleetQueues, Moto, create_ledger_table};
use bottlesync_loadtest::webhook::WebhookReceiver;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::drive::{WorkerPool, drive, peak_rss_of};
use crate::end_state::{finish_end_state, hash_file_keys};
use crate::report::Report;
use crate::verify::{EndState, Layout, verify};
use crate::world::{CLIENT_TAGS, DATE, World};
use crate::{LoadOptions, report};

const BUCKET: &str = "load-mirror";
const PREFIX: &str = "brew";
const TABLE: &str = "bottlesync-ledger";
/// Short, so a killed worker's bottles come back soon.
const VISIBILITY_SECS: u32 = 10;
const LEASE_SECS: u32 = 20;

pub async fn run(options: &LoadOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.bottlesync.exists() || options.bottlesync.as_os_str() == "bottlesync",
        "bottlesync binary {} not found (build it: cargo build --release --bin bottlesync)",
        options.bottlesync.display()
    );
    let world = World::for_options(options).await?;
    let moto = Moto::start().await;
    moto.s3().create_bucket().bucket(BUCKET).send().await?;
    create_ledger_table(&moto.dynamodb(), TABLE).await;
    let queues = FleetQueues::create(&moto.sqs(), VISIBILITY_SECS, options.max_receive_count).await;
    let webhook = WebhookReceiver::start().await?;
    // The fleet's requests go through the counters; the harness's own
    // (sampling, checking) go straight to moto and are not counted.
    let counter = AwsRequestCounter::start(&moto.endpoint).await?;
    let dynamodb_counter = AwsRequestCounter::start(&moto.dynamodb_endpoint).await?;
    let moto_rate = moto_bare_rate(&moto, &queues, options.workers * options.concurrency).await?;

    let mut env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (key, value) in &mut env {
        match key.as_str() {
            "AWS_ENDPOINT_URL" => *value = counter.url(),
            "AWS_ENDPOINT_URL_DYNAMODB" => *value = dynamodb_counter.url(),
            _ => {}
        }
    }
    env.extend(
        [
            ("BOTTLESYNC_BUCKET", BUCKET.to_string()),
            ("BOTTLESYNC_PREFIX", PREFIX.to_string()),
            ("BOTTLESYNC_LEDGER_TABLE", TABLE.to_string()),
            ("BOTTLESYNC_QUEUE_URL", queues.queue_url.clone()),
            ("BOTTLESYNC_LARGE_QUEUE_URL", queues.large_queue_url.clone()),
            ("BOTTLESYNC_DLQ_URL", queues.dlq_url.clone()),
            ("BOTTLESYNC_API_URL", world.standin.api_url()),
            ("BOTTLESYNC_TAGS", CLIENT_TAGS.join(",")),
            ("BOTTLESYNC_SLACK_WEBHOOK_URL", webhook.url()),
            ("BOTTLESYNC_ENVIRONMENT", "load".to_string()),
            // Every run goes to the ECS queue, which `work` consumes.
            ("BOTTLESYNC_SIZE_THRESHOLD_GB", "0.000000001".to_string()),
            ("BOTTLESYNC_LOG", "warn".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );

    let started = Instant::now();
    let planned = plan(&options.bottlesync, &env).await?;
    let plan_seconds = started.elapsed().as_secs_f64();
    let run_id = planned["run_id"]
        .as_str()
        .context("the plan printed no run_id")?
        .to_string();
    anyhow::ensure!(
        planned["enqueued"].as_u64() == Some(world.bottles.len() as u64),
        "planned {}, the world has {} bottles",
        planned["enqueued"],
        world.bottles.len()
    );

    let services = moto_fleet_services(
        &moto,
        BUCKET,
        PREFIX,
        TABLE,
        &queues,
        world.standin.api_url(),
    )?;
    let queue = services.large_queue.clone().expect("set by services()");
    let mut pool = ProcessPool {
        bottlesync: options.bottlesync.clone(),
        env,
        concurrency: options.concurrency,
        children: Vec::new(),
        spawned: 0,
        peak_rss: BTreeMap::new(),
    };
    let driven = drive(options, &services, queue, &run_id, &webhook, &mut pool).await?;
    let peak_rss = pool.peak_rss();
    pool.kill_all();

    let layout = Layout {
        key_prefix: format!("{PREFIX}/"),
        date: DATE.into(),
    };
    let moto_transactions = moto_transaction_rate(&moto).await?;
    let end = end_state(&moto, &services, &run_id, &world, &webhook, &driven).await?;
    let verdict = verify(&world.bottles, &layout, &end);
    let mut aws_requests = counter.counts();
    for (api, n) in dynamodb_counter.counts() {
        *aws_requests.entry(api).or_default() += n;
    }
    Ok(report::Report::new(
        options,
        &world,
        plan_seconds,
        driven,
        peak_rss,
        Some(aws_requests),
        Some(moto_rate),
        verdict,
    )
    .with_moto_transaction_rate(moto_transactions))
}

/// `bottlesync plan --date DATE`: its JSON outcome.
async fn plan(bottlesync: &PathBuf, env: &[(String, String)]) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new(bottlesync);
    cmd.args(["plan", "--date", DATE])
        .env_clear()
        .envs(env.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let output = tokio::task::spawn_blocking(move || cmd.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "bottlesync plan failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A fleet stack on moto as the harness and the tests see it (straight to
/// moto, not through the counters): the bucket, the ledger table and the
/// three queues, with the notifier logging instead of posting.
pub fn moto_fleet_services(
    moto: &Moto,
    bucket: &str,
    prefix: &str,
    table: &str,
    queues: &FleetQueues,
    api_url: String,
) -> anyhow::Result<FleetServices> {
    let config = FleetConfig::from_args(&FleetArgs {
        bucket: Some(bucket.into()),
        prefix: Some(prefix.into()),
        ledger_table: Some(table.into()),
        queue_url: Some(queues.queue_url.clone()),
        large_queue_url: Some(queues.large_queue_url.clone()),
        dlq_url: Some(queues.dlq_url.clone()),
        api_url: Some(api_url),
        ..FleetArgs::default()
    })?;
    let sqs = moto.sqs();
    let queue =
        |url: &str| -> Option<Arc<dyn Queue>> { Some(Arc::new(SqsQueue::new(sqs.clone(), url))) };
    Ok(FleetServices {
        store: Arc::new(S3Store::new(moto.s3(), bucket, prefix)),
        ledger: Arc::new(DynamoLedger::new(moto.dynamodb(), table)),
        registry: Arc::new(RegistryClient::new(&HttpSettings::default())?),
        notifier: Arc::new(LogNotifier),
        retry: RetryPolicy::default(),
        queue: queue(&queues.queue_url),
        large_queue: queue(&queues.large_queue_url),
        dlq: queue(&queues.dlq_url),
        capacity: None,
        config,
    })
}

/// moto's own request rate in this run: GetQueueAttributes calls at the
/// fleet's concurrency, straight to moto (its cheapest SQS call).
async fn moto_bare_rate(
    moto: &Moto,
    queues: &FleetQueues,
    concurrency: usize,
) -> anyhow::Result<f64> {
    const CALLS: usize = 400;
    let sqs = moto.sqs();
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..CALLS)
        .map(|_| {
            sqs.get_queue_attributes()
                .queue_url(&queues.dlq_url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for result in results {
        result?;
    }
    Ok(CALLS as f64 / started.elapsed().as_secs_f64())
}

/// moto's TransactWriteItems rate on the ledger table as the run left it:
/// moto copies every table for each transaction, so this falls as the table
/// grows and, not our code, sets the pace of a long moto run.
async fn moto_transaction_rate(moto: &Moto) -> anyhow::Result<f64> {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
    const CALLS: usize = 20;
    let dynamodb = moto.dynamodb();
    let started = Instant::now();
    for i in 0..CALLS {
        let put = Put::builder()
            .table_name(TABLE)
            .item("pk", AttributeValue::S(format!("loadtest-probe#{i}")))
            .build()?;
        dynamodb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await?;
    }
    Ok(CALLS as f64 / started.elapsed().as_secs_f64())
}

struct ProcessPool {
    bottlesync: PathBuf,
    env: Vec<(String, String)>,
    concurrency: usize,
    /// (HOSTNAME given, child).
    children: Vec<(String, Child)>,
    spawned: usize,
    /// Per worker (by HOSTNAME).
    peak_rss: BTreeMap<String, u64>,
}

impl ProcessPool {
    fn kill_all(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }

    fn note_rss(&mut self) {
        for (host, child) in &self.children {
            if let Some(rss) = peak_rss_of(child.id()) {
                let peak = self.peak_rss.entry(host.clone()).or_default();
                *peak = (*peak).max(rss);
            }
        }
    }
}

impl WorkerPool for ProcessPool {
    fn spawn(&mut self) -> anyhow::Result<()> {
        self.spawned += 1;
        let host = format!("load-w{}", self.spawned);
        let child = Command::new(&self.bottlesync)
            .args([
                "work",
                "--drain",
                "--drain-grace",
                "3",
                "--concurrency",
                &self.concurrency.to_string(),
                "--visibility-timeout",
                &VISIBILITY_SECS.to_string(),
                "--lease-seconds",
                &LEASE_SECS.to_string(),
                "--retry-delay",
                "1",
                "--shutdown-grace",
                "5",
            ])
            .env_clear()
            .envs(self.env.iter().cloned())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // The worker id is `<HOSTNAME>-<pid>-<random>`.
            .env("HOSTNAME", &host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", self.bottlesync.display()))?;
        self.children.push((host, child));
        Ok(())
    }

    fn alive(&mut self) -> (usize, Vec<String>) {
        self.note_rss();
        let mut problems = Vec::new();
        self.children
            .retain_mut(|(host, child)| match child.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    if !status.success() {
                        problems.push(format!("worker {host} exited with {status}"));
                    }
                    false
                }
                Err(e) => {
                    problems.push(format!("worker {host}: {e}"));
                    false
                }
            });
        (self.children.len(), problems)
    }

    fn owner_prefixes(&self) -> Vec<String> {
        self.children
            .iter()
            .map(|(host, child)| format!("{host}-{}-", child.id()))
            .collect()
    }

    async fn kill(&mut self, index: usize) -> Option<String> {
        self.note_rss();
        if index >= self.children.len() {
            return None;
        }
        let (host, mut child) = self.children.remove(index);
        let pid = child.id();
        child.kill().ok()?;
        let _ = child.wait();
        Some(format!("{host}-{pid}-"))
    }

    fn peak_rss(&mut self) -> Vec<u64> {
        self.peak_rss.values().copied().collect()
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.kill_all();
    }
}

async fn end_state(
    moto: &Moto,
    services: &FleetServices,
    run_id: &str,
    world: &World,
    webhook: &WebhookReceiver,
    driven: &crate::drive::Driven,
) -> anyhow::Result<EndState> {
    let s3 = moto.s3();
    let mut objects = BTreeMap::new();
    let mut pages = s3.list_objects_v2().bucket(BUCKET).into_paginator().send();
    while let Some(page) = pages.next().await {
        for object in page?.contents() {
            let key = object.key().unwrap_or_default().to_string();
            let mut body = s3.get_object().bucket(BUCKET).key(&key).send().await?.body;
            let mut hasher = Sha256::new();
            while let Some(chunk) = body.try_next().await? {
                hasher.update(&chunk);
            }
            objects.insert(key, hex::encode(hasher.finalize()));
        }
    }
    let uploads = s3.list_multipart_uploads().bucket(BUCKET).send().await?;
    let incomplete_uploads = uploads
        .uploads()
        .iter()
        .map(|u| u.key().unwrap_or_default().to_string())
        .collect();
    let hash_file = s3
        .get_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}/bottles_hash.json"))
        .send()
        .await
        .ok();
    let hash_file = match hash_file {
        Some(object) => hash_file_keys(&object.body.collect().await?.into_bytes()),
        None => None,
    };
    finish_end_state(
        services,
        run_id,
        world,
        webhook,
        driven,
        objects,
        incomplete_uploads,
        hash_file,
    )
    .await
}
