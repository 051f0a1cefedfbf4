//! Runs the ECS agent stand-in (task scale-in protection) as a process, for
//! scripts/terraform-check.sh: it answers for the task role whose IAM policy
//! document it is given (the role `terraform apply` created, read back with
//! GetRolePolicy). Prints `ECS_AGENT_URI=...` as the first line of stdout
//! once listening; `GET /__standin/requests` lists what it answered. Runs
//! until SIGINT/SIGTERM.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bottlesync_loadtest::ecs_agent::{EcsAgent, TaskRolePolicy};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bottlesync-ecs-agent", version)]
struct Args {
    /// The task role's IAM policy document (JSON); without it, the ECS task
    /// role as terraform/modules/iam/main.tf writes it.
    #[arg(long)]
    policy_file: Option<PathBuf>,
    /// Length of a protection minute, in seconds (tests scale time down).
    #[arg(long, default_value_t = 60.0)]
    minute_seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let policy = match &args.policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let document: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JSON policy document", path.display()))?;
            TaskRolePolicy::from_policy_document(&document)
                .with_context(|| format!("{}", path.display()))?
        }
        None => TaskRolePolicy::from_terraform_source()?,
    };
    anyhow::ensure!(
        args.minute_seconds > 0.0,
        "--minute-seconds must be positive"
    );
    let agent = EcsAgent::start(policy, Duration::from_secs_f64(args.minute_seconds)).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ECS_AGENT_URI={}", agent.uri())?;
    stdout.flush()?;

    bottlesync_loadtest::wait_for_stop_signal().await?;
    Ok(())
}
