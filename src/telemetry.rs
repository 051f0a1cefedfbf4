//! The one tracing setup of every binary: the CLI logs to stderr (text or
//! JSON, level from `BOTTLESYNC_LOG`); the Lambdas use `lambda_runtime`'s
//! own setup, so the function's logging config (`AWS_LAMBDA_LOG_LEVEL`,
//! `AWS_LAMBDA_LOG_FORMAT`, JSON in our Terraform) decides.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The CLI: `BOTTLESYNC_LOG` (an `EnvFilter`) or else `default_level`.
/// With `off_the_request_path` (`serve`, one access-log line per request)
/// lines are written by a thread of their own, so a slow stderr never holds
/// up a response; they are flushed when the returned guard drops (the end of
/// `main`). Other commands write each line before going on.
pub fn init_cli(
    format: LogFormat,
    default_level: &str,
    off_the_request_path: bool,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let filter =
        EnvFilter::try_from_env("BOTTLESYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only on a terminal (and never with NO_COLOR): a log file or
    // pipe gets plain lines, cheaper to write (`serve`'s access log).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (writer, guard) = if off_the_request_path {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            // Never drop a line: a full queue makes the logger wait instead.
            .lossy(false)
            // The thread writes what queued up, then flushes: one write
            // call per batch of lines, not per line.
            .finish(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stderr(),
            ));
        (BoxMakeWriter::new(writer), Some(guard))
    } else {
        (BoxMakeWriter::new(std::io::stderr), None)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}

/// A Lambda function: stdout, level and format from its logging config.
pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}
