//! `bottlesync sync` once planned: the dry run's plan, or the transfers
//! (`worker::sync_run`) under SIGINT/SIGTERM and a lost S3 lease, with the
//! progress display, and the summary. Exit 0 all stored, 1 some failed,
//! 130 interrupted.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottlesync::config::SyncArgs;
use bottlesync_core::Error;
use bottlesync_core::lease::CancellationToken;
use bottlesync_core::plan::portable_ruby::PortableRubyPlan;
use bottlesync_core::shutdown::ShutdownSignal;
use bottlesync_planner::prepare::Inputs;
use bottlesync_worker::pool::Progress;
use bottlesync_worker::sync_run::{SyncLimits, SyncRun};

use super::stop_on_signals;
use crate::report::{SyncReport, add_portable_ruby, portable_ruby_lines, write_report};

/// `--dry-run`: the plan, and nothing written.
pub fn dry_run(
    args: &SyncArgs,
    report: &SyncReport<'_>,
    portable_ruby: &PortableRubyPlan,
) -> Result<ExitCode, Error> {
    report.print_plan();
    print!("{}", portable_ruby_lines(portable_ruby));
    let mut json = report.plan_json();
    add_portable_ruby(&mut json, portable_ruby);
    write_report(args.report.as_deref(), json)?;
    Ok(ExitCode::SUCCESS)
}

/// The transfers until done or stopped: SIGINT or SIGTERM (in-flight
/// bottles get `--shutdown-grace`), or a lost S3 lease (at once); then
/// the summary, timed from `started` (the command's start).
pub async fn mirror(
    args: &SyncArgs,
    run: SyncRun,
    report: &SyncReport<'_>,
    inputs: &Inputs,
    (started, lease_lost): (Instant, Option<CancellationToken>),
) -> Result<ExitCode, Error> {
    let plan = report.plan;
    tracing::info!(
        bottles = plan.jobs.len(),
        bytes = plan.bytes(),
        tags = %plan.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
        dest = %report.dest,
        "plan ready"
    );
    let shutdown = ShutdownSignal::new();
    stop_on_signals(&shutdown, "; stored bottles are kept, a rerun resumes");
    if let Some(lost) = lease_lost {
        // Another run took the S3 lease over: what is stored stays recorded.
        shutdown.cancel_when(lost);
    }
    let transfer = &args.transfer;
    let progress = Arc::new(Progress::default());
    let bar = crate::progress::spawn(
        transfer.progress,
        progress.clone(),
        plan.jobs.len(),
        plan.bytes(),
    );
    let limits = SyncLimits {
        concurrency: transfer.concurrency as usize,
        shutdown: shutdown.subscribe(),
        grace: Duration::from_secs(transfer.shutdown_grace),
    };
    let synced = run
        .run(plan.jobs.clone(), &inputs.api, progress, limits)
        .await;
    bar.abort();
    let synced = synced?;
    let (outcome, published) = (&synced.transfers, synced.published.as_ref());
    let elapsed = started.elapsed();
    report.print_summary(outcome, elapsed, synced.record.bottles.len(), published);
    print!("{}", portable_ruby_lines(&inputs.portable_ruby));
    let mut json = report.summary_json(outcome, elapsed, published);
    add_portable_ruby(&mut json, &inputs.portable_ruby);
    write_report(args.report.as_deref(), json)?;
    Ok(match (outcome.interrupted, outcome.failed.is_empty()) {
        (true, _) => ExitCode::from(130),
        (false, true) => ExitCode::SUCCESS,
        (false, false) => ExitCode::from(1),
    })
}
