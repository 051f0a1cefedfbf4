//! `bottlesync`: sets up logging, parses the command line and hands over to
//! the command. Exit status: 0 all done, 1 some bottles failed, 2 bad usage
//! or an unusable input or destination (nothing written), 130 interrupted.

mod cli;
mod cmd;
mod progress;
mod report;

use std::process::ExitCode;

use bottlesync::telemetry;
use clap::Parser;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match &cli.command {
        // The bar is the output: log lines would tear it.
        Command::Sync(args) if progress::uses_bar(args.transfer.progress) => "warn",
        Command::Status(_) | Command::Verify(_) => "warn",
        _ => "info",
    };
    let serving = matches!(cli.command, Command::Serve(_));
    let _log_writer = telemetry::init_cli(cli.log_format, default_level, serving);
    match cli.command {
        Command::Sync(args) => cmd::sync::run(args).await,
        Command::Plan(args) => cmd::plan::run(args).await,
        Command::Work(args) => cmd::work::run(args).await,
        Command::Compact(args) => cmd::ops::compact(args).await,
        Command::Reconcile(args) => cmd::ops::reconcile(args).await,
        Command::Dlq(args) => cmd::ops::dlq(args).await,
        Command::Status(args) => cmd::ops::status(args).await,
        Command::ImportHashes(args) => cmd::ops::import_hashes(args).await,
        Command::Verify(args) => cmd::verify::run(args).await,
        Command::Serve(args) => cmd::serve::run(args).await,
    }
}
