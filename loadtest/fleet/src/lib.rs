//! Fleet load and chaos runs: one whole fleet run (plan, then workers that
//! drain the queue) against the Homebrew stand-in, with faults injected and
//! workers killed, then a check of the end state that fails loudly, and a
//! report of what it cost.
//!
//! Two backends run the same fleet code:
//! - `moto`: moto_server (S3, SQS, DynamoDB) behind counting proxies, the
//!   planner and workers as `bottlesync plan` / `bottlesync work --drain`
//!   processes, chaos by SIGKILL. moto serves about ten SQS messages a
//!   second here, so this stays at a few thousand bottles.
//! - `in-process`: the local-directory store, the in-memory ledger and
//!   queues ([`adapters::wiring::in_process_adapters`]), workers as tasks of this
//!   process, chaos by aborting a worker's task at whatever await point it
//!   is at. This reaches 20,000+ bottles.
//!
//! [`adapters::wiring::in_process_adapters`]: bottlesync_adapters::wiring::in_process_adapters

pub mod drive;
pub mod end_state;
pub mod in_process;
pub mod moto_backend;
pub mod report;
pub mod verify;
pub mod world;

use std::path::PathBuf;
use std::time::Duration;

use bottlesync_aws_harness::moto::ProdLikeTimes;
use serde::Serialize;

pub use report::Report;
pub use world::{FaultKind, FaultMix, World};

/// Where the fleet runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Moto,
    InProcess,
}

/// Everything a load run can be told.
#[derive(Clone, Debug, Serialize)]
pub struct LoadOptions {
    pub backend: Backend,
    /// About this many bottles are planned (whole formulae are generated).
    pub bottles: usize,
    /// Median and maximum bottle size (log-normal, like real bottles).
    pub median_bytes: u64,
    pub max_bytes: u64,
    pub workers: usize,
    pub concurrency: usize,
    pub faults: FaultMix,
    /// Kill a random worker this often (and start a new one).
    pub kill_every: Option<Duration>,
    /// At most this many kills.
    pub max_kills: usize,
    pub seed: u64,
    /// Give up (and fail) after this long.
    pub timeout: Duration,
    /// Where the report, the timeline and the chart go.
    pub out_dir: PathBuf,
    /// The `bottlesync` binary (moto backend).
    pub bottlesync: PathBuf,
    /// The redrive limit of the work queues (Terraform's default).
    pub max_receive_count: u32,
    /// The work queues' visibility timeout (also the workers'
    /// `--visibility-timeout`), in seconds.
    pub visibility_timeout_secs: u32,
    /// The workers' claim lease (`BOTTLESYNC_CLAIM_LEASE_SECONDS`).
    pub claim_lease_secs: u32,
    /// The workers' first retry delay (`--retry-delay`).
    pub retry_delay_secs: u32,
    /// AWS SDK timeouts of the planner and workers, in seconds: (connect,
    /// attempt, operation); `None`: production's defaults.
    pub aws_timeouts: Option<(f64, f64, f64)>,
    /// Share of the fleet's DynamoDB and SQS write answers the lossy proxy
    /// loses (3 in 4: 500 after the write) or holds past the SDK's attempt
    /// timeout (1 in 4), moto backend.
    pub aws_fault_share: f64,
    /// How long a held answer is held.
    pub hold_answer_secs: f64,
    /// Slack answers 500 from the run's start until this long after its
    /// last bottle is counted and at least one post was refused (progress
    /// posts fail, and so does the summary's first post, however late it
    /// comes; the summary must survive it).
    pub slack_outage: Option<Duration>,
    /// SIGKILL the planner once its first SendMessageBatch went out, then
    /// run it again (moto backend).
    pub planner_kill: bool,
}

impl LoadOptions {
    /// A named preset: `ci` (a few hundred bottles on moto, one kill),
    /// `full` (about 2,000 on moto, a kill every 20 s), `huge` (20,000 in
    /// process, a kill every 5 s), `prod-like` (production's lease,
    /// visibility and receive ratios scaled down in time, 15% of DynamoDB
    /// and SQS write answers lost or held, workers SIGKILLed mid-bottle, a
    /// Slack outage, the planner killed between sends and rerun) or
    /// `prod-like-ci` (the same, smaller, for CI).
    pub fn preset(name: &str) -> anyhow::Result<LoadOptions> {
        let base = LoadOptions {
            backend: Backend::Moto,
            bottles: 300,
            median_bytes: 48 << 10,
            max_bytes: 8 << 20,
            workers: 3,
            concurrency: 4,
            faults: FaultMix::default(),
            kill_every: Some(Duration::from_secs(8)),
            max_kills: 1,
            seed: 7,
            timeout: Duration::from_secs(600),
            out_dir: PathBuf::from("loadtest/results").join(name),
            bottlesync: default_bottlesync_binary(),
            max_receive_count: 5,
            visibility_timeout_secs: 10,
            claim_lease_secs: 20,
            retry_delay_secs: 1,
            aws_timeouts: None,
            aws_fault_share: 0.0,
            hold_answer_secs: 0.0,
            slack_outage: None,
            planner_kill: false,
        };
        let times = ProdLikeTimes::SCALED;
        let prod_like = LoadOptions {
            bottles: 200,
            kill_every: Some(Duration::from_secs(10)),
            max_kills: 2,
            max_receive_count: times.max_receive_count,
            visibility_timeout_secs: times.visibility_timeout_secs,
            claim_lease_secs: times.claim_lease_secs,
            retry_delay_secs: times.retry_delay_secs,
            aws_timeouts: Some((
                times.aws_connect_timeout_secs,
                times.aws_attempt_timeout_secs,
                times.aws_operation_timeout_secs,
            )),
            aws_fault_share: 0.15,
            hold_answer_secs: times.hold_answer_secs,
            slack_outage: Some(Duration::from_secs_f64(times.slack_outage_secs)),
            planner_kill: true,
            timeout: Duration::from_secs(900),
            ..base.clone()
        };
        Ok(match name {
            "ci" => base,
            "prod-like" => prod_like,
            "prod-like-ci" => LoadOptions {
                bottles: 60,
                max_kills: 1,
                kill_every: Some(Duration::from_secs(6)),
                timeout: Duration::from_secs(420),
                ..prod_like
            },
            "full" => LoadOptions {
                bottles: 2_000,
                workers: 4,
                concurrency: 8,
                kill_every: Some(Duration::from_secs(20)),
                max_kills: 10,
                timeout: Duration::from_secs(1_800),
                ..base
            },
            "huge" => LoadOptions {
                backend: Backend::InProcess,
                bottles: 20_000,
                median_bytes: 32 << 10,
                max_bytes: 4 << 20,
                workers: 8,
                concurrency: 16,
                kill_every: Some(Duration::from_secs(5)),
                max_kills: 12,
                timeout: Duration::from_secs(1_800),
                ..base
            },
            other => {
                anyhow::bail!("unknown preset {other:?}: ci, full, huge, prod-like or prod-like-ci")
            }
        })
    }
}

/// `bottlesync` next to this executable (both are built into the same
/// target directory), else on PATH.
pub fn default_bottlesync_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("bottlesync")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("bottlesync"))
}

/// Runs one load run and verifies its end state. The report is written to
/// `out_dir` whatever the verdict; `Err` only when the run could not be
/// carried out at all.
pub async fn run(options: &LoadOptions) -> anyhow::Result<Report> {
    let report = match options.backend {
        Backend::Moto => moto_backend::run(options).await?,
        Backend::InProcess => in_process::run(options).await?,
    };
    report.write(&options.out_dir)?;
    Ok(report)
}
