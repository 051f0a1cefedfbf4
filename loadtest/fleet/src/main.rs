//! `bottlesync-load`: one fleet load/chaos run, verified and reported.
//! Exit status 0 when the end state is right, 1 when it is not, 2 when the
//! run could not be carried out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bottlesync_load::{Backend, LoadOptions};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Runs a whole bottlesync fleet run with faults and kills, and checks its end state"
)]
struct Args {
    /// Start from a preset: ci, full, prod-like, prod-like-ci (moto) or huge
    /// (in process); flags override it.
    #[arg(long, default_value = "ci")]
    preset: String,
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// About this many bottles.
    #[arg(long)]
    bottles: Option<usize>,
    #[arg(long)]
    median_bytes: Option<u64>,
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Worker processes (tasks, in process).
    #[arg(long)]
    workers: Option<usize>,
    /// Concurrent bottles per worker.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Share of bottles whose registry answers 503 twice.
    #[arg(long)]
    fault_5xx: Option<f64>,
    /// Share of bottles whose registry answers 429 once.
    #[arg(long)]
    fault_429: Option<f64>,
    /// Share of bottles whose body is cut off once.
    #[arg(long)]
    fault_truncate: Option<f64>,
    /// Share of bottles served at 512 KiB/s.
    #[arg(long)]
    fault_slow: Option<f64>,
    /// Number of bottles always served corrupt.
    #[arg(long)]
    corrupt: Option<usize>,
    /// Kill a random worker every this many seconds (0: never).
    #[arg(long)]
    kill_every: Option<u64>,
    #[arg(long)]
    max_kills: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Share of the fleet's DynamoDB and SQS write answers lost or held by
    /// the proxy in front of moto (0: none).
    #[arg(long)]
    aws_faults: Option<f64>,
    /// The workers' claim lease, in seconds.
    #[arg(long)]
    claim_lease_seconds: Option<u32>,
    /// The work queues' visibility timeout, in seconds.
    #[arg(long)]
    visibility_timeout_seconds: Option<u32>,
    /// Seconds Slack stays down after the last bottle (0: no outage).
    #[arg(long)]
    slack_outage_seconds: Option<u64>,
    /// Kill the planner between sends and rerun it.
    #[arg(long)]
    planner_kill: Option<bool>,
    #[arg(long)]
    timeout_seconds: Option<u64>,
    /// Where report.json, report.md, timeline.csv and timeline.png go.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The bottlesync binary the workers run (default: next to this one).
    #[arg(long)]
    bottlesync: Option<PathBuf>,
}

impl Args {
    fn options(self) -> anyhow::Result<LoadOptions> {
        let mut o = LoadOptions::preset(&self.preset)?;
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => {
                $(if let Some(value) = self.$flag { $field = value; })*
            };
        }
        set!(
            backend => o.backend,
            bottles => o.bottles,
            median_bytes => o.median_bytes,
            max_bytes => o.max_bytes,
            workers => o.workers,
            concurrency => o.concurrency,
            fault_5xx => o.faults.status_5xx,
            fault_429 => o.faults.too_many_requests,
            fault_truncate => o.faults.truncate,
            fault_slow => o.faults.slow,
            corrupt => o.faults.corrupt,
            max_kills => o.max_kills,
            seed => o.seed,
            aws_faults => o.aws_fault_share,
            claim_lease_seconds => o.claim_lease_secs,
            visibility_timeout_seconds => o.visibility_timeout_secs,
            planner_kill => o.planner_kill,
            out => o.out_dir,
            bottlesync => o.bottlesync,
        );
        if let Some(secs) = self.kill_every {
            o.kill_every = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(secs) = self.slack_outage_seconds {
            o.slack_outage = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(secs) = self.timeout_seconds {
            o.timeout = Duration::from_secs(secs);
        }
        anyhow::ensure!(
            (0.0..=1.0).contains(&o.aws_fault_share),
            "--aws-faults {} is not a share between 0 and 1",
            o.aws_fault_share
        );
        anyhow::ensure!(
            o.claim_lease_secs > 0 && o.visibility_timeout_secs > 0,
            "--claim-lease-seconds and --visibility-timeout-seconds must be at least 1"
        );
        anyhow::ensure!(
            o.workers > 0 && o.concurrency > 0,
            "--workers and --concurrency must be at least 1"
        );
        let shares =
            o.faults.status_5xx + o.faults.too_many_requests + o.faults.truncate + o.faults.slow;
        anyhow::ensure!(
            (0.0..=1.0).contains(&shares),
            "fault shares add up to {shares}, over 1"
        );
        Ok(o)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "bottlesync_load=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = match Args::parse().options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("bottlesync-load: {e}");
            return ExitCode::from(2);
        }
    };
    // Interrupted: dropping the run kills its workers and moto servers.
    let outcome = tokio::select! {
        outcome = bottlesync_load::run(&options) => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("bottlesync-load: interrupted");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(report) => {
            println!("{}", report.markdown());
            println!("written to {}", options.out_dir.display());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("bottlesync-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
