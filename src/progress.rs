//! Showing a run's progress: an indicatif bar on a terminal, a log line
//! every few seconds otherwise. Both read the pool's shared counters.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bottlesync_worker::Progress;
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use bottlesync::config::ProgressMode;

const LOG_EVERY: Duration = Duration::from_secs(10);

pub fn uses_bar(mode: ProgressMode) -> bool {
    match mode {
        ProgressMode::Bar => true,
        ProgressMode::Log => false,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
    }
}

/// Runs until aborted; returns the task so the caller can stop it.
pub fn spawn(
    mode: ProgressMode,
    progress: Arc<Progress>,
    bottles: usize,
    bytes: u64,
) -> JoinHandle<()> {
    if uses_bar(mode) {
        tokio::spawn(bar(progress, bottles, bytes))
    } else {
        tokio::spawn(log_lines(progress, bottles, bytes))
    }
}

async fn bar(progress: Arc<Progress>, bottles: usize, bytes: u64) {
    let bar = ProgressBar::new(bytes.max(1));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .expect("valid template"),
    );
    loop {
        let done = progress.bytes.load(Ordering::Relaxed);
        if done > bar.length().unwrap_or(0) {
            bar.set_length(done);
        }
        bar.set_position(done);
        bar.set_message(format!(
            "{}/{bottles} bottles, {} failed, {} in flight",
            progress.stored.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed),
            progress.in_flight.load(Ordering::Relaxed),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn log_lines(progress: Arc<Progress>, bottles: usize, bytes: u64) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(LOG_EVERY).await;
        let done = progress.bytes.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / elapsed;
        let eta = if rate > 0.0 && bytes > done {
            HumanDuration(Duration::from_secs_f64((bytes - done) as f64 / rate)).to_string()
        } else {
            "unknown".into()
        };
        tracing::info!(
            "progress: {}/{bottles} bottles stored, {} failed, {} in flight, {} of ~{}, {}/s, ETA {eta}",
            progress.stored.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed),
            progress.in_flight.load(Ordering::Relaxed),
            HumanBytes(done),
            HumanBytes(bytes),
            HumanBytes(rate as u64),
        );
    }
}
