//! `bottlesync`: sets up logging, parses the command line and hands over to
//! the command. Exit status: 0 all done, 1 some bottles failed, 2 bad usage
//! or an unusable input or destination (nothing written), 130 interrupted.

mod cli;
mod fleet;
mod progress;
mod sync;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};

fn init_tracing(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_env("BOTTLESYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sync(args) => {
            let quiet = progress::uses_bar(args.progress);
            init_tracing(cli.log_format, if quiet { "warn" } else { "info" });
            sync::run(args).await
        }
        Command::Plan(args) => {
            init_tracing(cli.log_format, "info");
            fleet::plan(args).await
        }
        Command::Work(args) => {
            init_tracing(cli.log_format, "info");
            fleet::work(args).await
        }
        Command::Compact(args) => {
            init_tracing(cli.log_format, "info");
            fleet::compact(args).await
        }
        Command::Reconcile(args) => {
            init_tracing(cli.log_format, "info");
            fleet::reconcile(args).await
        }
        Command::Dlq(args) => {
            init_tracing(cli.log_format, "info");
            fleet::dlq(args).await
        }
        Command::Status(args) => {
            init_tracing(cli.log_format, "warn");
            fleet::status(args).await
        }
        Command::ImportHashes(args) => {
            init_tracing(cli.log_format, "info");
            fleet::import_hashes(args).await
        }
    }
}
