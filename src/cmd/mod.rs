//! The commands, one module each, and what they share: the fleet's AWS
//! adapters from the fleet flags, the JSON report on stdout, the signal handling.

pub mod ops;
pub mod plan;
pub mod serve;
pub mod sync;
pub mod sync_mirror;
pub mod verify;
pub mod work;

use std::process::ExitCode;

use bottlesync::config::FleetArgs;
use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_core::Result;
use bottlesync_core::shutdown::ShutdownSignal;
use tokio::signal::unix::{SignalKind, signal};

/// A fleet command's end: its report as JSON on stdout (exit 0), or the
/// error on stderr (exit 2).
pub fn finish(result: Result<serde_json::Value>) -> ExitCode {
    match result {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("reports serialise")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The fleet's AWS adapters from the fleet flags; each command takes the
/// use case it runs from them.
pub async fn adapters(args: &FleetArgs) -> Result<FleetAdapters> {
    bottlesync_adapters::wiring::aws_adapters(args.clone().config()?).await
}

/// SIGTERM (ECS stopping a task, `kill`, `docker stop`) or SIGINT (Ctrl-C)
/// stops the work: no new bottles, the in-flight ones get their grace. A
/// second one abandons them at once. `consequence` ends the log line.
pub fn stop_on_signals(shutdown: &ShutdownSignal, consequence: &'static str) {
    // Installed before returning: a signal from now on is ours, not fatal.
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM: stopping{consequence}"),
            _ = interrupt.recv() => tracing::warn!("interrupted: stopping{consequence}"),
        }
        shutdown.stop();
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("signalled again: abandoning in-flight bottles now");
        shutdown.cancel();
    });
}
