//! The operator commands: `compact`, `reconcile`, `dlq`, `status`,
//! `import-hashes`. Each prints what it did as JSON (status: text unless
//! `--json`); exit 0 done, 2 a bad setting or an unusable service.

use std::process::ExitCode;

use bottlesync_core::model::hash_file::read_external_hashes;
use bottlesync_core::model::location::Location;
use bottlesync_core::run::{dlq, finish as run_finish, import, status};
use bottlesync_worker::consumer::Consumer;

use super::{adapters, finish};
use crate::cli::{CompactArgs, DlqAction, DlqArgs, ImportArgs, StatusArgs};

pub async fn compact(args: CompactArgs) -> ExitCode {
    finish(
        async {
            let finisher = adapters(&args.fleet).await?.finisher();
            let worker_id = Consumer::default_worker_id();
            let finished = finisher.finish_latest_if_due(&worker_id).await?;
            let bottles =
                run_finish::compact(finisher.ledger.as_ref(), finisher.store.as_ref()).await?;
            Ok(serde_json::json!({"bottles": bottles, "finished_run": format!("{finished:?}")}))
        }
        .await,
    )
}

pub async fn reconcile(args: CompactArgs) -> ExitCode {
    finish(
        async {
            let reconciler = adapters(&args.fleet).await?.reconciler();
            let worker_id = format!("reconcile-{}", Consumer::default_worker_id());
            let report = reconciler.reconcile(&worker_id).await?.into_result()?;
            Ok(serde_json::to_value(report).expect("serialises"))
        }
        .await,
    )
}

pub async fn dlq(args: DlqArgs) -> ExitCode {
    finish(
        async {
            match args.action {
                DlqAction::List { fleet, max } => {
                    let fleet = adapters(&fleet).await?;
                    let queue = dlq::dlq(&fleet.dlq)?;
                    let letters =
                        dlq::list(queue, fleet.ledger.as_ref(), &fleet.config.hosts, max).await?;
                    Ok(serde_json::json!({"count": letters.len(), "messages": letters}))
                }
                DlqAction::Replay {
                    fleet,
                    max,
                    dry_run,
                } => {
                    let replayer = adapters(&fleet).await?.replayer();
                    let run_id = bottlesync_core::run::record::new_run_id();
                    let report = replayer.replay(max, dry_run, run_id).await?;
                    Ok(serde_json::to_value(report).expect("serialises"))
                }
            }
        }
        .await,
    )
}

pub async fn status(args: StatusArgs) -> ExitCode {
    let status = async { status::status(&adapters(&args.fleet).await?.reconciler()).await }.await;
    match status {
        Ok(status) if args.json => finish(Ok(serde_json::to_value(status).expect("serialises"))),
        Ok(status) => {
            crate::report::print_status(&status);
            ExitCode::SUCCESS
        }
        Err(e) => finish(Err(e)),
    }
}

pub async fn import_hashes(args: ImportArgs) -> ExitCode {
    finish(
        async {
            let fleet = adapters(&args.fleet).await?;
            let location = Location::parse("import-hashes", &args.source, true)?;
            let hashes = read_external_hashes(&location, fleet.documents.as_ref()).await?;
            let report = import::import_hashes(fleet.ledger.as_ref(), hashes, &args.source).await?;
            Ok(serde_json::to_value(report).expect("serialises"))
        }
        .await,
    )
}
