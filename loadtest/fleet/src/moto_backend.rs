//! The moto backend: moto_server behind counting proxies, `bottlesync plan`
//! and `bottlesync work --drain` processes with the settings Terraform gives
//! the functions, SIGKILL as chaos. The DynamoDB and SQS proxies are lossy
//! ones (`bottlesync_aws_harness::aws_faults`) when the options ask for AWS
//! faults or a planner kill.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bottlesync_adapters::aws::dynamo_ledger::DynamoLedger;
use bottlesync_adapters::aws::s3_store::S3Store;
use bottlesync_adapters::aws::sqs_queue::SqsQueue;
use bottlesync_adapters::http::registry::{HttpSettings, RegistryClient};
use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_adapters::wiring::LocationReader;
use bottlesync_aws_harness::aws_counter::AwsRequestCounter;
use bottlesync_aws_harness::aws_faults::FaultPlan;
use bottlesync_aws_harness::moto::{FleetQueues, Moto, create_ledger_table};
use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_core::model::message::salvage_ids;
use bottlesync_core::ports::notifier::LogNotifier;
use bottlesync_core::ports::queue::Queue;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::run::dispatch::WorkQueues;
use bottlesync_loadtest::webhook::WebhookReceiver;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::drive::{WorkerPool, drive, peak_rss_of};
use crate::end_state::{finish_end_state, hash_file_keys};
use crate::report::Report;
use crate::verify::{EndState, Layout, RunCounts, verify};
use crate::world::{CLIENT_TAGS, DATE, World};
use crate::{LoadOptions, report};

const BUCKET: &str = "load-mirror";
const PREFIX: &str = "brew";
const TABLE: &str = "bottlesync-ledger";
/// The planner call after which `planner_kill` kills it.
const PLANNER_KILLED_AFTER: &str = "SQS.SendMessageBatch";

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
    let queues = FleetQueues::create(
        &moto.sqs(),
        options.visibility_timeout_secs,
        options.max_receive_count,
    )
    .await;
    let webhook = WebhookReceiver::start().await?;
    // The fleet's requests go through the counters; the harness's own
    // (sampling, checking) go straight to moto and are not counted. SQS and
    // DynamoDB go through lossy ones (no faults at a share of 0).
    let faults = FaultPlan::dynamodb_and_sqs_writes(
        options.seed,
        options.aws_fault_share,
        Duration::from_secs_f64(options.hold_answer_secs),
    );
    let counter = AwsRequestCounter::start(&moto.endpoint).await?;
    let sqs_counter = AwsRequestCounter::start_lossy(&moto.endpoint, faults.clone()).await?;
    let dynamodb_counter = AwsRequestCounter::start_lossy(&moto.dynamodb_endpoint, faults).await?;
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
    env.push(("AWS_ENDPOINT_URL_SQS".into(), sqs_counter.url()));
    if let Some((connect, attempt, operation)) = options.aws_timeouts {
        env.extend([
            (
                "BOTTLESYNC_AWS_CONNECT_TIMEOUT_SECONDS".into(),
                connect.to_string(),
            ),
            (
                "BOTTLESYNC_AWS_ATTEMPT_TIMEOUT_SECONDS".into(),
                attempt.to_string(),
            ),
            (
                "BOTTLESYNC_AWS_OPERATION_TIMEOUT_SECONDS".into(),
                operation.to_string(),
            ),
        ]);
    }
    env.push((
        "BOTTLESYNC_CLAIM_LEASE_SECONDS".into(),
        options.claim_lease_secs.to_string(),
    ));
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
    let services = moto_fleet_adapters(
        &moto,
        BUCKET,
        PREFIX,
        TABLE,
        &queues,
        world.standin.api_url(),
    )?;
    let run_id = if options.planner_kill {
        let rerun = plan_killed_then_rerun(&options.bottlesync, &env, &sqs_counter).await?;
        // A rerun that resumed the run, or planned a new one, names it; one
        // that found every bottle in flight names none: the killed one's is
        // then the latest.
        match rerun["run_id"].as_str() {
            Some(run_id) => run_id.to_string(),
            None => {
                services
                    .ledger
                    .latest_run()
                    .await?
                    .context("no run after the planner's kill and rerun")?
                    .run_id
            }
        }
    } else {
        let planned = plan(&options.bottlesync, &env).await?;
        anyhow::ensure!(
            planned["enqueued"].as_u64() == Some(world.bottles.len() as u64),
            "planned {}, the world has {} bottles",
            planned["enqueued"],
            world.bottles.len()
        );
        planned["run_id"]
            .as_str()
            .context("the plan printed no run_id")?
            .to_string()
    };
    let plan_seconds = started.elapsed().as_secs_f64();
    let queue = services
        .queues
        .ecs
        .clone()
        .expect("set by moto_fleet_adapters");
    let mut pool = ProcessPool {
        reconcile: Reconcile::if_supported(&options.bottlesync),
        bottlesync: options.bottlesync.clone(),
        env,
        concurrency: options.concurrency,
        visibility_timeout_secs: options.visibility_timeout_secs,
        claim_lease_secs: options.claim_lease_secs,
        retry_delay_secs: options.retry_delay_secs,
        children: Vec::new(),
        spawned: 0,
        peak_rss: BTreeMap::new(),
        logs: ProcessLogs::new(&options.out_dir)?,
    };
    let driven = drive(options, &services, queue, &run_id, &webhook, &mut pool).await?;
    let peak_rss = pool.peak_rss();
    pool.kill_all();

    let layout = Layout {
        key_prefix: format!("{PREFIX}/"),
        date: DATE.into(),
    };
    let moto_transactions = moto_transaction_rate(&moto).await?;
    let mut end = end_state(&moto, &services, &run_id, &world, &webhook, &driven).await?;
    // A second dead letter or an extra download of one bottle is
    // at-least-once at work, not a bug, when that bottle's own SQS answer
    // was lost (the proxy says which messages its faults named), or a
    // worker was killed between moving a message to the DLQ and deleting
    // it from its queue (the ECS loop batches deletes for up to 0.5 s).
    end.dlq_copies_allowed_by_kills = driven.kills > 0;
    for body in sqs_counter.faulted_sqs_messages() {
        match salvage_ids(&body) {
            Some((_, sha)) => {
                *end.lost_answers_by_bottle
                    .entry(sha.to_string())
                    .or_default() += 1
            }
            None => tracing::warn!("a lost SQS answer named a message that is not a bottle's"),
        }
    }
    let verdict = verify(&world.bottles, &layout, &end);
    let mut aws_requests = counter.counts();
    for (api, n) in sqs_counter
        .counts()
        .into_iter()
        .chain(dynamodb_counter.counts())
    {
        *aws_requests.entry(api).or_default() += n;
    }
    let mut aws_faults = sqs_counter.faults();
    aws_faults.extend(dynamodb_counter.faults());
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
    .with_moto_transaction_rate(moto_transactions)
    .with_aws_faults(aws_faults))
}

/// The planner killed between two sends, then run again: holds its second
/// SendMessageBatch at the proxy, SIGKILLs it there (the first batch is
/// sent, the rest never will be), and runs `bottlesync plan` again. Returns
/// the rerun's outcome.
async fn plan_killed_then_rerun(
    bottlesync: &Path,
    env: &[(String, String)],
    sqs: &AwsRequestCounter,
) -> anyhow::Result<serde_json::Value> {
    sqs.pause_after(PLANNER_KILLED_AFTER, 1);
    let mut planner = Command::new(bottlesync)
        .args(["plan", "--date", DATE])
        .env_clear()
        .envs(env.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bottlesync.display()))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if sqs.counts().get(PLANNER_KILLED_AFTER).copied().unwrap_or(0) >= 2 {
            break;
        }
        if let Some(status) = planner.try_wait()? {
            sqs.resume();
            anyhow::bail!(
                "the planner ended ({status}) before its second {PLANNER_KILLED_AFTER}: \
                 plan more than ten bottles"
            );
        }
        if Instant::now() > deadline {
            let _ = planner.kill();
            sqs.resume();
            anyhow::bail!("the planner sent no second {PLANNER_KILLED_AFTER} in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    planner.kill()?;
    let _ = planner.wait();
    sqs.resume();
    tracing::info!("planner SIGKILLed between two SendMessageBatch calls; planning again");
    plan(&bottlesync.to_path_buf(), env).await
}

/// `bottlesync reconcile`, as the EventBridge schedule runs it, when the
/// binary has that command.
struct Reconcile {
    running: Option<Child>,
    last: Option<Instant>,
}

/// How often the scheduled reconcile runs (scaled down, like the run).
const RECONCILE_EVERY: Duration = Duration::from_secs(10);

impl Reconcile {
    fn if_supported(bottlesync: &Path) -> Option<Reconcile> {
        let help = Command::new(bottlesync).arg("--help").output().ok()?;
        let supported = String::from_utf8_lossy(&help.stdout)
            .lines()
            .any(|line| line.trim_start().starts_with("reconcile"));
        if !supported {
            tracing::info!("bottlesync has no reconcile command: no scheduled reconcile");
        }
        supported.then_some(Reconcile {
            running: None,
            last: None,
        })
    }
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
pub fn moto_fleet_adapters(
    moto: &Moto,
    bucket: &str,
    prefix: &str,
    table: &str,
    queues: &FleetQueues,
    api_url: String,
) -> anyhow::Result<FleetAdapters> {
    let config = FleetConfig {
        prefix: prefix.trim_matches('/').into(),
        queue_url: Some(queues.queue_url.clone()),
        large_queue_url: Some(queues.large_queue_url.clone()),
        dlq_url: Some(queues.dlq_url.clone()),
        ..FleetConfig::new(bucket, table).with_api_url(url::Url::parse(&api_url)?, &[])
    };
    let registry: Arc<dyn Registry> = Arc::new(RegistryClient::new(&HttpSettings::default())?);
    let sqs = moto.sqs();
    let queue =
        |url: &str| -> Option<Arc<dyn Queue>> { Some(Arc::new(SqsQueue::new(sqs.clone(), url))) };
    Ok(FleetAdapters {
        store: Arc::new(S3Store::new(moto.s3(), bucket, prefix)),
        ledger: Arc::new(DynamoLedger::new(moto.dynamodb(), table)),
        registry: registry.clone(),
        documents: Arc::new(LocationReader { registry }),
        notifier: Arc::new(LogNotifier),
        retry: RetryPolicy::default(),
        queues: WorkQueues {
            lambda: queue(&queues.queue_url),
            ecs: queue(&queues.large_queue_url),
        },
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
    visibility_timeout_secs: u32,
    claim_lease_secs: u32,
    retry_delay_secs: u32,
    /// `None`: the binary has no reconcile command.
    reconcile: Option<Reconcile>,
    /// (HOSTNAME given, child).
    children: Vec<(String, Child)>,
    spawned: usize,
    /// Per worker (by HOSTNAME).
    peak_rss: BTreeMap<String, u64>,
    /// Where each process's log goes (`<out_dir>/logs/<name>.log`).
    logs: ProcessLogs,
}

impl ProcessPool {
    fn kill_all(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        if let Some(mut child) = self.reconcile.as_mut().and_then(|r| r.running.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
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
                &self.visibility_timeout_secs.to_string(),
                "--lease-seconds",
                &self.claim_lease_secs.to_string(),
                "--retry-delay",
                &self.retry_delay_secs.to_string(),
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
            .stderr(self.logs.file(&host)?)
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

    fn reconcile(&mut self) -> Option<String> {
        let reconcile = self.reconcile.as_mut()?;
        if let Some(child) = &mut reconcile.running {
            match child.try_wait() {
                Ok(None) => return None,
                Ok(Some(status)) if !status.success() => {
                    reconcile.running = None;
                    return Some(format!("bottlesync reconcile exited with {status}"));
                }
                _ => reconcile.running = None,
            }
        }
        if reconcile
            .last
            .is_some_and(|at| at.elapsed() < RECONCILE_EVERY)
        {
            return None;
        }
        reconcile.last = Some(Instant::now());
        match Command::new(&self.bottlesync)
            .arg("reconcile")
            .env_clear()
            .envs(self.env.iter().cloned())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(match self.logs.file("reconcile") {
                Ok(file) => file,
                Err(e) => return Some(format!("cannot open the reconcile log: {e}")),
            })
            .spawn()
        {
            Ok(child) => {
                reconcile.running = Some(child);
                None
            }
            Err(e) => Some(format!("cannot start bottlesync reconcile: {e}")),
        }
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.kill_all();
    }
}

async fn end_state(
    moto: &Moto,
    services: &FleetAdapters,
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
    let mut end = finish_end_state(
        services,
        run_id,
        world,
        webhook,
        driven,
        objects,
        incomplete_uploads,
        hash_file,
    )
    .await?;
    end.other_runs = other_runs(moto, services, run_id).await?;
    Ok(end)
}

/// Every run in the ledger but `run_id` (a killed planner leaves one).
async fn other_runs(
    moto: &Moto,
    services: &FleetAdapters,
    run_id: &str,
) -> anyhow::Result<Vec<(String, RunCounts)>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut ids = Vec::new();
    let mut pages = moto
        .dynamodb()
        .scan()
        .table_name(TABLE)
        .filter_expression("begins_with(pk, :run)")
        .expression_attribute_values(":run", AttributeValue::S("run#".into()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page?.items() {
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                let id = pk.trim_start_matches("run#");
                // `run#latest` points at a run; it is not one.
                if id != run_id && id != "latest" {
                    ids.push(id.to_string());
                }
            }
        }
    }
    let mut runs = Vec::new();
    for id in ids {
        if let Some(run) = services.ledger.run(&id).await? {
            runs.push((id, RunCounts::of(&run)));
        }
    }
    Ok(runs)
}

/// Log files of the processes a run starts, so a test's output stays
/// readable and a failed run can show the end of each (see
/// [`crate::report::Report::log_tails`]).
pub(crate) struct ProcessLogs {
    dir: PathBuf,
}

impl ProcessLogs {
    pub(crate) fn new(out_dir: &Path) -> anyhow::Result<Self> {
        let dir = out_dir.join("logs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(ProcessLogs { dir })
    }

    /// An append handle on `<name>.log`, for a child's stderr.
    pub(crate) fn file(&self, name: &str) -> anyhow::Result<Stdio> {
        let path = self.dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Stdio::from(file))
    }
}
