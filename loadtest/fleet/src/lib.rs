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
//!   queues ([`FleetServices::in_process`]), workers as tasks of this
//!   process, chaos by aborting a worker's task at whatever await point it
//!   is at. This reaches 20,000+ bottles.
//!
//! [`FleetServices::in_process`]: bottlesync_core::services::FleetServices::in_process

pub mod drive;
pub mod end_state;
pub mod in_process;
pub mod moto_backend;
pub mod report;
pub mod verify;
pub mod world;

use std::path::PathBuf;
use std::time::Duration;

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
}

impl LoadOptions {
    /// A named preset: `ci` (a few hundred bottles on moto, one kill),
    /// `full` (about 2,000 on moto, a kill every 20 s) or `huge` (20,000 in
    /// process, a kill every 5 s).
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
        };
        Ok(match name {
            "ci" => base,
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
            other => anyhow::bail!("unknown preset {other:?}: ci, full or huge"),
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
