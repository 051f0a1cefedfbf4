//! `bottlesync sync`: the whole pipeline on one machine. Validate settings,
//! fetch the index and any external hash file, open the destination, read
//! the ledger, plan, size, fetch-verify-store with bounded concurrency,
//! compact the ledger into bottles_hash.json, and report. One run at a time
//! per destination: a directory's flock (taken by `open_store`), an S3
//! prefix's lease (`StoreLease`, held from here to the end).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottlesync_adapters::http::registry::{HttpSettings, RegistryClient};
use bottlesync_adapters::wiring::{LocationReader, open_store};
use bottlesync_core::Error;
use bottlesync_core::model::index::{FormulaIndex, HostPolicy};
use bottlesync_core::model::location::Location;
use bottlesync_core::plan::select::{Plan, PlanRequest, TagSelection};
use bottlesync_core::ports::ledger::{JournalLedger, Ledger};
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::store_lease::{LEASE_LENGTH, StoreLease};
use bottlesync_planner::prepare::{
    ExternalHashFile, IndexSource, Inputs, MirrorView, Sources, fetch_inputs, prepare,
};
use bottlesync_worker::pool::{PoolContext, PoolOutcome, Progress, run_pool};
use indicatif::{HumanBytes, HumanDuration};
use serde_json::json;
use tokio::sync::watch;
use url::Url;

use crate::cli::SyncArgs;

pub async fn run(args: SyncArgs) -> ExitCode {
    match sync(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Everything up to the transfers: any error here exits 2 with nothing written.
async fn sync(args: SyncArgs) -> Result<ExitCode, Error> {
    let started = Instant::now();
    let dest = Location::parse("--dest", &args.dest, false)?;
    let api_url = Url::parse(args.api_url.trim_end_matches('/'))
        .map_err(|e| Error::config("--api-url", format!("{:?}: {e}", args.api_url)))?;
    let tags = TagSelection::parse("--tags", &args.tags)?;
    let hash_file = args
        .hash_file
        .as_deref()
        .map(|h| Location::parse("--hash-file", h, true))
        .transpose()?;
    let date = args.date.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let hosts = HostPolicy::new(&api_url, &args.allow_hosts);
    let registry: Arc<dyn Registry> = Arc::new(RegistryClient::new(&HttpSettings {
        read_timeout: Duration::from_secs(args.read_timeout.max(1)),
        ..HttpSettings::default()
    })?);
    let retry = RetryPolicy {
        retries: args.retries,
        ..RetryPolicy::default()
    };

    let documents = LocationReader {
        registry: registry.clone(),
    };
    let Inputs {
        index, external, ..
    } = fetch_inputs(
        Sources {
            registry: registry.as_ref(),
            documents: &documents,
            retry: &retry,
        },
        IndexSource {
            api_url: &api_url,
            hosts: &hosts,
        },
        hash_file.map(|location| ExternalHashFile {
            location: Ok(location),
            required: true,
        }),
    )
    .await?;

    let store = open_store(&dest, args.dry_run).await?;
    let lease = match &dest {
        Location::S3 { .. } if !args.dry_run => {
            Some(StoreLease::acquire(store.clone(), lease_length()?).await?)
        }
        _ => None,
    };
    let lease_lost = lease.as_ref().map(StoreLease::lost);
    let result: Result<ExitCode, Error> = async {
        let ledger = Arc::new(JournalLedger::new(store.clone()));
        let mirror = MirrorView::from_stored(ledger.stored_bottles().await?);

        let request = PlanRequest {
            tags,
            formulae: args.formulae.clone(),
            with_deps: args.with_deps,
            include_disabled: args.include_disabled,
            date,
        };
        let sources = Sources {
            registry: registry.as_ref(),
            documents: &documents,
            retry: &retry,
        };
        let mut plan = prepare(sources, &index, &external, &request, &mirror)
            .await?
            .plan;
        // Largest first: the long downloads start early and finish together.
        plan.jobs
            .sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.key.cmp(&b.key)));

        if args.dry_run {
            print_plan(&plan, &index);
            write_report(&args, plan_json(&plan, &index, &store.location()))?;
            return Ok(ExitCode::SUCCESS);
        }

        tracing::info!(
            bottles = plan.jobs.len(),
            bytes = plan.bytes(),
            tags = %plan.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
            dest = %store.location(),
            "plan ready"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let stop_on_signal = stop_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: stopping; stored bottles are kept, a rerun resumes");
                let _ = stop_on_signal.send(true);
            }
        });
        if let Some(mut lost) = lease_lost.clone() {
            // Another run took the S3 lease over: stop starting bottles; what
            // is stored stays recorded.
            tokio::spawn(async move {
                if lost.wait_for(|lost| *lost).await.is_ok() {
                    let _ = stop_tx.send(true);
                }
            });
        }
        let progress = Arc::new(Progress::default());
        let reporter = crate::progress::spawn(
            args.progress,
            progress.clone(),
            plan.jobs.len(),
            plan.bytes(),
        );
        let context = Arc::new(PoolContext {
            registry: registry.clone(),
            store: store.clone(),
            ledger: ledger.clone(),
            retry,
        });
        let outcome = run_pool(
            context,
            plan.jobs.clone(),
            args.concurrency as usize,
            progress,
            stop_rx,
        )
        .await;
        reporter.abort();

        // Fold what this run recorded into bottles_hash.json, even after an
        // interrupt: the journal already holds it durably either way.
        let record = ledger.compact().await?;
        let elapsed = started.elapsed();
        print_summary(
            &plan,
            &index,
            &outcome,
            elapsed,
            &store.location(),
            record.bottles.len(),
        );
        write_report(
            &args,
            summary_json(&plan, &index, &outcome, elapsed, &store.location()),
        )?;
        Ok(if outcome.interrupted {
            ExitCode::from(130)
        } else if outcome.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result
}

/// The S3 lease's length: `LEASE_LENGTH`, or (for tests of expiry) the
/// hidden `BOTTLESYNC_STORE_LEASE_SECONDS`.
fn lease_length() -> Result<Duration, Error> {
    const VARIABLE: &str = "BOTTLESYNC_STORE_LEASE_SECONDS";
    match std::env::var(VARIABLE) {
        Err(_) => Ok(LEASE_LENGTH),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if seconds >= 3 => Ok(Duration::from_secs(seconds)),
            _ => Err(Error::config(
                VARIABLE,
                format!("{text:?}: must be a whole number of seconds, at least 3"),
            )),
        },
    }
}

fn print_plan(plan: &Plan, index: &FormulaIndex) {
    println!(
        "tags: {}",
        plan.tags
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for job in &plan.jobs {
        println!("{:>12}  {}  {}", job.size, job.sha256, job.key);
    }
    println!(
        "plan: {} bottles to fetch ({}), {} already mirrored, {} in the hash file, {} disabled formulae skipped, {} index entries rejected",
        plan.jobs.len(),
        HumanBytes(plan.bytes()),
        plan.already_mirrored.len(),
        plan.in_hash_file.len(),
        plan.skipped_disabled.len(),
        index.rejections.len(),
    );
}

fn plan_json(plan: &Plan, index: &FormulaIndex, dest: &str) -> serde_json::Value {
    json!({
        "dest": dest,
        "tags": plan.tags,
        "bottles": plan.jobs,
        "bytes": plan.bytes(),
        "already_mirrored": plan.already_mirrored.len(),
        "in_hash_file": plan.in_hash_file.len(),
        "skipped_disabled": plan.skipped_disabled,
        "rejected_entries": index.rejections.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
    })
}

fn print_summary(
    plan: &Plan,
    index: &FormulaIndex,
    outcome: &PoolOutcome,
    elapsed: Duration,
    dest: &str,
    mirror_size: usize,
) {
    let bytes: u64 = outcome.stored.iter().map(|(_, b)| b).sum();
    let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
    println!(
        "{}: {} new ({}), {} skipped ({} already mirrored, {} in the hash file), {} failed, {} index entries rejected, in {} ({}/s)",
        if outcome.interrupted {
            "interrupted"
        } else {
            "done"
        },
        outcome.stored.len(),
        HumanBytes(bytes),
        plan.already_mirrored.len() + plan.in_hash_file.len(),
        plan.already_mirrored.len(),
        plan.in_hash_file.len(),
        outcome.failed.len(),
        index.rejections.len(),
        HumanDuration(elapsed),
        HumanBytes(rate as u64),
    );
    for failure in &outcome.failed {
        println!(
            "failed: {} ({}): {}",
            failure.job.label(),
            failure.job.sha256,
            failure.reason
        );
    }
    if outcome.not_started > 0 {
        println!(
            "not started: {} bottles (a rerun fetches them)",
            outcome.not_started
        );
    }
    println!("mirror: {dest} holds {mirror_size} bottles (bottles_hash.json)");
}

fn summary_json(
    plan: &Plan,
    index: &FormulaIndex,
    outcome: &PoolOutcome,
    elapsed: Duration,
    dest: &str,
) -> serde_json::Value {
    json!({
        "dest": dest,
        "new": outcome.stored.len(),
        "bytes": outcome.stored.iter().map(|(_, b)| b).sum::<u64>(),
        "already_mirrored": plan.already_mirrored.len(),
        "in_hash_file": plan.in_hash_file.len(),
        "failed": outcome.failed.iter().map(|f| json!({
            "name": f.job.name, "tag": f.job.tag, "sha256": f.job.sha256,
            "key": f.job.key, "reason": f.reason,
        })).collect::<Vec<_>>(),
        "not_started": outcome.not_started,
        "interrupted": outcome.interrupted,
        "rejected_entries": index.rejections.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "duration_seconds": elapsed.as_secs_f64(),
    })
}

fn write_report(args: &SyncArgs, value: serde_json::Value) -> Result<(), Error> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    let text = serde_json::to_vec_pretty(&value).expect("reports serialise");
    std::fs::write(path, text)
        .map_err(|e| Error::config("--report", format!("cannot write {}: {e}", path.display())))
}
