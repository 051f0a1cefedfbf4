//! `bottlesync sync`: the whole pipeline on one machine. Settings, the
//! index and any external hash file, the destination (one run at a time:
//! a directory's flock, an S3 prefix's `StoreLease` held to the end), the
//! plan, then `sync_mirror`: the transfers (`worker::sync_run`: then
//! compaction and publication) and the report. Any error before the transfers exits 2 with nothing written.

use std::process::ExitCode;
use std::sync::Arc;

use bottlesync::config::{SyncArgs, SyncSettings, store_lease_length};
use bottlesync_adapters::wiring::{documents, open_store, registry_client};
use bottlesync_core::Error;
use bottlesync_core::journal::JournalLedger;
use bottlesync_core::model::location::Location;
use bottlesync_core::ports::ledger::Ledger;
use bottlesync_core::store_lease::StoreLease;
use bottlesync_planner::prepare::{ExternalHashFile, IndexSource, MirrorView, Sources};
use bottlesync_planner::prepare::{fetch_inputs, prepare};
use bottlesync_worker::sync_run::SyncRun;

use crate::report::SyncReport;

pub async fn run(args: SyncArgs) -> ExitCode {
    match sync(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn sync(args: SyncArgs) -> Result<ExitCode, Error> {
    let started = std::time::Instant::now();
    let settings = SyncSettings::from_args(&args)?;
    let registry = registry_client(&settings.http)?;
    let documents = documents(registry.clone());
    let sources = Sources {
        registry: registry.as_ref(),
        documents: documents.as_ref(),
        retry: &settings.retry,
        mirror: None,
    };
    let index = IndexSource {
        api_url: &settings.api_url,
        hosts: &settings.hosts,
        tags: &settings.tags,
        portable_ruby: ("--portable-ruby", &settings.portable_ruby),
    };
    let hash_file = settings.hash_file.clone().map(|location| ExternalHashFile {
        location: Ok(location),
        required: true,
    });
    let mut inputs = fetch_inputs(sources, index, hash_file).await?;

    let store = open_store(&settings.dest, args.dry_run).await?;
    let lease = match &settings.dest {
        Location::S3 { .. } if !args.dry_run => {
            Some(StoreLease::acquire(store.clone(), store_lease_length()?).await?)
        }
        _ => None,
    };
    let lease_lost = lease.as_ref().map(StoreLease::lost);
    let result = async {
        let journal = Arc::new(JournalLedger::new(store.clone()));
        let mirror = MirrorView::from_stored(journal.stored_bottles().await?);
        let request = args.plan_request(settings.tags.clone(), settings.date);
        inputs.api.scope = request.scope();
        let sources = Sources {
            mirror: (!args.dry_run).then_some(store.as_ref()),
            ..sources
        };
        let mut plan = prepare(sources, &inputs, &request, &mirror).await?.plan;
        plan.sort_largest_first();
        let location = store.location();
        let report = SyncReport {
            plan: &plan,
            index: &inputs.index,
            dest: &location,
        };
        if args.dry_run {
            return super::sync_mirror::dry_run(&args, &report, &inputs.portable_ruby);
        }
        let run = SyncRun {
            registry: registry.clone(),
            store: store.clone(),
            journal,
            retry: settings.retry.clone(),
            segments: settings.segments,
        };
        super::sync_mirror::mirror(&args, run, &report, &inputs, (started, lease_lost)).await
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result
}
