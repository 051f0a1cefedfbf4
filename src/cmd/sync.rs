//! `bottlesync sync`: the whole pipeline on one machine. Validate settings,
//! fetch the index and any external hash file, open the destination, read
//! the ledger, plan, size, fetch-verify-store with bounded concurrency,
//! compact the ledger into bottles_hash.json, and report. One run at a time
//! per destination: a directory's flock (taken by `open_store`), an S3
//! prefix's lease (`StoreLease`, held from here to the end).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottlesync::config::{SyncArgs, SyncSettings, store_lease_length};
use bottlesync_adapters::wiring::{LocationReader, open_store};
use bottlesync_core::brew::publish::publish;
use bottlesync_core::journal::JournalLedger;
use bottlesync_core::model::location::Location;
use bottlesync_core::plan::select::PlanRequest;
use bottlesync_core::ports::ledger::Ledger;
use bottlesync_core::shutdown::ShutdownSignal;
use bottlesync_core::store_lease::StoreLease;
use bottlesync_core::{BottleJob, Error};
use bottlesync_planner::prepare::{
    ExternalHashFile, IndexSource, MirrorView, Sources, fetch_inputs, prepare,
};
use bottlesync_worker::pool::{PoolContext, PoolOutcome, Progress, run_pool};

use super::stop_on_signals;
use crate::report::{SyncReport, add_portable_ruby, portable_ruby_lines, write_report};

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
    let SyncSettings {
        dest,
        api_url,
        tags,
        hash_file,
        date,
        hosts,
        registry,
        retry,
        segments,
        portable_ruby,
    } = SyncSettings::from_args(&args)?;

    let documents = LocationReader {
        registry: registry.clone(),
    };
    let sources = Sources {
        registry: registry.as_ref(),
        documents: &documents,
        retry: &retry,
        mirror: None,
    };
    let mut inputs = fetch_inputs(
        sources,
        IndexSource {
            api_url: &api_url,
            hosts: &hosts,
            tags: &tags,
            portable_ruby: ("--portable-ruby", &portable_ruby),
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
            Some(StoreLease::acquire(store.clone(), store_lease_length()?).await?)
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
            linux_host_formulae: args.linux_host_formulae,
            include_disabled: args.include_disabled,
            date,
        };
        inputs.api.scope = request.scope();
        let sources = Sources {
            mirror: (!args.dry_run).then_some(store.as_ref()),
            ..sources
        };
        let mut plan = prepare(sources, &inputs, &request, &mirror).await?.plan;
        // Largest first: the long downloads start early and finish together.
        plan.jobs
            .sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.key.cmp(&b.key)));

        let location = store.location();
        let report = SyncReport {
            plan: &plan,
            index: &inputs.index,
            dest: &location,
        };
        if args.dry_run {
            report.print_plan();
            print!("{}", portable_ruby_lines(&inputs.portable_ruby));
            let mut json = report.plan_json();
            add_portable_ruby(&mut json, &inputs.portable_ruby);
            write_report(args.report.as_deref(), json)?;
            return Ok(ExitCode::SUCCESS);
        }
        tracing::info!(
            bottles = plan.jobs.len(),
            bytes = plan.bytes(),
            tags = %plan.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
            dest = %location,
            "plan ready"
        );
        let context = PoolContext {
            registry: registry.clone(),
            store: store.clone(),
            ledger: ledger.clone(),
            retry: retry.clone(),
            segments,
        };
        let outcome = transfer(&args, plan.jobs.clone(), plan.bytes(), context, lease_lost).await;
        // Fold what this run recorded into bottles_hash.json, even after an
        // interrupt: the journal already holds it durably either way.
        let record = ledger.compact().await?;
        // Last, and only after a whole run: the API files name only what
        // the mirror now holds (or the summary names what it lacks).
        let published = match outcome.interrupted {
            false => Some(publish(store.as_ref(), &record.bottles, &inputs.api).await?),
            true => None,
        };
        let elapsed = started.elapsed();
        report.print_summary(&outcome, elapsed, record.bottles.len(), published.as_ref());
        print!("{}", portable_ruby_lines(&inputs.portable_ruby));
        let mut json = report.summary_json(&outcome, elapsed, published.as_ref());
        add_portable_ruby(&mut json, &inputs.portable_ruby);
        write_report(args.report.as_deref(), json)?;
        Ok(match (outcome.interrupted, outcome.failed.is_empty()) {
            (true, _) => ExitCode::from(130),
            (false, true) => ExitCode::SUCCESS,
            (false, false) => ExitCode::from(1),
        })
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result
}

/// The transfers, until done or stopped: SIGINT or SIGTERM (in-flight
/// bottles get `--shutdown-grace`), or a lost S3 lease (at once).
async fn transfer(
    args: &SyncArgs,
    jobs: Vec<BottleJob>,
    bytes: u64,
    context: PoolContext,
    lease_lost: Option<bottlesync_core::lease::CancellationToken>,
) -> PoolOutcome {
    let shutdown = ShutdownSignal::new();
    stop_on_signals(&shutdown, "; stored bottles are kept, a rerun resumes");
    if let Some(lost) = lease_lost {
        // Another run took the S3 lease over: what is stored stays recorded.
        shutdown.cancel_when(lost);
    }
    let progress = Arc::new(Progress::default());
    let reporter = crate::progress::spawn(args.progress, progress.clone(), jobs.len(), bytes);
    let grace = Duration::from_secs(args.shutdown_grace);
    let (context, concurrency) = (Arc::new(context), args.concurrency as usize);
    let outcome = run_pool(
        context,
        jobs,
        concurrency,
        progress,
        shutdown.subscribe(),
        grace,
    )
    .await;
    reporter.abort();
    outcome
}
