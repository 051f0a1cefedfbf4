//! The in-process backend: the same planner and consumer code on
//! `adapters::wiring::in_process_adapters` (local-directory store, in-memory ledger and
//! queues), workers as tasks, chaos by aborting a worker's task wherever it
//! is (its claims and invisible messages stay behind, as with SIGKILL).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_core::fleet_config::{FleetConfig, SlackSource, gb_to_bytes};
use bottlesync_core::plan::select::TagSelection;
use bottlesync_core::ports::queue::Queue;
use bottlesync_core::shutdown::ShutdownSignal;
use bottlesync_loadtest::webhook::WebhookReceiver;
use bottlesync_planner::fleet::FleetPlanRequest;
use bottlesync_worker::consumer::Consumer;
use bottlesync_worker::work_loop::{WorkOptions, run_work_loop};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::drive::{WorkerPool, drive, peak_rss_of};
use crate::end_state::{finish_end_state, hash_file_keys};
use crate::report::Report;
use crate::verify::{Layout, verify};
use crate::world::{CLIENT_TAGS, DATE, World};
use crate::{LoadOptions, report};

/// Short, so an aborted worker's bottles come back soon.
const VISIBILITY: Duration = Duration::from_secs(5);
const LEASE: Duration = Duration::from_secs(10);

pub async fn run(options: &LoadOptions) -> anyhow::Result<Report> {
    let world = World::for_options(options).await?;
    let webhook = WebhookReceiver::start().await?;
    let mirror = fresh_mirror_dir(&options.out_dir)?;
    let config = FleetConfig {
        tags: TagSelection::parse("tags", &CLIENT_TAGS.join(","))?,
        slack: SlackSource::Url(webhook.url()),
        environment: "load".into(),
        size_threshold_bytes: gb_to_bytes(0.000000001),
        ..FleetConfig::new("in-process", "in-process")
            .with_api_url(url::Url::parse(&world.standin.api_url())?, &[])
    };
    let services = Arc::new(bottlesync_adapters::wiring::in_process_adapters(
        config,
        &mirror,
        VISIBILITY,
        options.max_receive_count,
    )?);

    let started = Instant::now();
    let request = FleetPlanRequest {
        date: Some(DATE.parse()?),
        ..FleetPlanRequest::default()
    };
    let planned = services
        .planner()
        .plan_run(&request, "load-planner")
        .await?;
    let plan_seconds = started.elapsed().as_secs_f64();
    let run_id = planned
        .run_id
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the plan started no run"))?;
    anyhow::ensure!(
        planned.enqueued == world.bottles.len() as u64,
        "planned {}, the world has {} bottles",
        planned.enqueued,
        world.bottles.len()
    );

    let queue = services.queues.ecs.clone().expect("in_process sets it");
    let mut pool = TaskPool {
        services: services.clone(),
        queue: queue.clone(),
        concurrency: options.concurrency,
        max_receive_count: options.max_receive_count,
        workers: Vec::new(),
        spawned: 0,
    };
    let driven = drive(options, &services, queue, &run_id, &webhook, &mut pool).await?;
    let peak_rss = pool.peak_rss();
    pool.stop_all().await;

    let layout = Layout {
        key_prefix: String::new(),
        date: DATE.into(),
    };
    let (objects, incomplete) = hash_files_below(&mirror)?;
    let hash_file = std::fs::read(mirror.join("bottles_hash.json"))
        .ok()
        .and_then(|bytes| hash_file_keys(&bytes));
    let end = finish_end_state(
        &services, &run_id, &world, &webhook, &driven, objects, incomplete, hash_file,
    )
    .await?;
    let verdict = verify(&world.bottles, &layout, &end);
    std::fs::remove_dir_all(&mirror)?;
    Ok(report::Report::new(
        options,
        &world,
        plan_seconds,
        driven,
        peak_rss,
        None,
        None,
        verdict,
    ))
}

/// A fresh mirror directory under the output directory.
fn fresh_mirror_dir(out_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = out_dir.join("mirror");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Every file below `root` with the sha256 of its content, and apart from
/// them the store's staging files left behind (its "incomplete uploads").
type Files = (BTreeMap<String, String>, Vec<String>);

fn hash_files_below(root: &Path) -> anyhow::Result<Files> {
    let mut out = BTreeMap::new();
    let mut staging = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            if relative == ".bottlesync/lock" {
                continue;
            }
            if relative.starts_with(".bottlesync/tmp/") {
                staging.push(relative);
                continue;
            }
            let mut file = std::fs::File::open(&path)?;
            let mut hasher = Sha256::new();
            std::io::copy(&mut file, &mut hasher)?;
            out.insert(relative, hex::encode(hasher.finalize()));
        }
    }
    Ok((out, staging))
}

struct TaskWorker {
    name: String,
    stop: ShutdownSignal,
    task: JoinHandle<bottlesync_core::Result<bottlesync_worker::work_loop::WorkStats>>,
}

struct TaskPool {
    services: Arc<FleetAdapters>,
    queue: Arc<dyn Queue>,
    concurrency: usize,
    max_receive_count: u32,
    workers: Vec<TaskWorker>,
    spawned: usize,
}

impl TaskPool {
    async fn stop_all(&mut self) {
        for worker in &self.workers {
            worker.stop.stop();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.task.await;
        }
    }
}

impl WorkerPool for TaskPool {
    fn spawn(&mut self) -> anyhow::Result<()> {
        self.spawned += 1;
        let name = format!("task-w{}", self.spawned);
        let consumer = Arc::new(
            Consumer::new(
                self.services.worker(),
                name.clone(),
                Some(self.max_receive_count),
            )
            .with_source(self.queue.clone())
            .with_lease(LEASE)
            .with_retry_base(Duration::from_secs(1)),
        );
        let options = WorkOptions {
            concurrency: self.concurrency,
            drain: Some(Duration::from_secs(2)),
            visibility_timeout: VISIBILITY,
            shutdown_grace: Duration::from_secs(5),
            poll_wait: Duration::from_secs(1),
            ..WorkOptions::default()
        };
        let stop = ShutdownSignal::new();
        let task = tokio::spawn(run_work_loop(
            consumer,
            self.queue.clone(),
            options,
            stop.subscribe(),
        ));
        self.workers.push(TaskWorker { name, stop, task });
        Ok(())
    }

    fn alive(&mut self) -> (usize, Vec<String>) {
        let mut problems = Vec::new();
        self.workers.retain_mut(|worker| {
            if !worker.task.is_finished() {
                return true;
            }
            // Finished: a drained worker returns Ok; look no further than
            // whether it panicked or failed.
            if let Some(result) = futures::FutureExt::now_or_never(&mut worker.task) {
                match result {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => problems.push(format!("worker {}: {e}", worker.name)),
                    Err(e) => problems.push(format!("worker {}: {e}", worker.name)),
                }
            }
            false
        });
        (self.workers.len(), problems)
    }

    fn owner_prefixes(&self) -> Vec<String> {
        self.workers
            .iter()
            .map(|w| format!("{}/", w.name))
            .collect()
    }

    async fn kill(&mut self, index: usize) -> Option<String> {
        if index >= self.workers.len() {
            return None;
        }
        let worker = self.workers.remove(index);
        worker.task.abort();
        let _ = worker.task.await;
        // Its message tasks are aborted with it; let any poll in progress end.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some(format!("{}/", worker.name))
    }

    fn peak_rss(&mut self) -> Vec<u64> {
        peak_rss_of(std::process::id()).into_iter().collect()
    }
}
