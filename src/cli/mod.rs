//! The command line. Every flag can also be set with `BOTTLESYNC_<FLAG>`.

use bottlesync::telemetry::LogFormat;
use clap::{Parser, Subcommand};

mod fleet;
mod mirror;
mod ops;

pub use fleet::{PlanArgs, WorkArgs};
pub use mirror::{ServeArgs, VerifyArgs};
pub use ops::{CompactArgs, DlqAction, DlqArgs, ImportArgs, StatusArgs};

#[derive(Parser, Debug)]
#[command(
    name = "bottlesync",
    version,
    about = "Mirror Homebrew bottles into a directory or S3, verified by SHA-256"
)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "BOTTLESYNC_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mirror bottles on this machine: plan, fetch, verify, store, record.
    Sync(bottlesync::config::SyncArgs),
    /// Plan a fleet run: one SQS message per missing bottle (as the planner Lambda does).
    Plan(PlanArgs),
    /// Consume a queue as an ECS worker (as the worker Lambda does, but long-running).
    Work(WorkArgs),
    /// Compact the ledger into bottles_hash.json now (and finish a drained run).
    Compact(CompactArgs),
    /// The dead-letter queue: list it, or replay it as a new run.
    Dlq(DlqArgs),
    /// Queue depths and the current (or last) run.
    Status(StatusArgs),
    /// Settle every open run: resume runs an interrupted planner left, re-send
    /// what a stalled run lost, count what cannot progress as failed, finish
    /// and report drained runs (what the scheduled reconcile does).
    Reconcile(CompactArgs),
    /// Seed the ledger from an external hash file (PATH, s3://, https://).
    ImportHashes(ImportArgs),
    /// Check a mirror as brew clients use it: every bottle the published API
    /// files name (formulae in scope) is in bottles/ with the right sha256,
    /// with its manifest. Exit 0 when complete, 1 when not, 2 on error.
    Verify(VerifyArgs),
    /// Serve a mirror to brew clients over HTTP: /api/..., /bottles/...,
    /// the registry view (/v2/homebrew/core/...) and /healthz.
    Serve(ServeArgs),
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
