//! Operator reports and one-off jobs over the fleet: `status` (queues and
//! the current run) and `import-hashes` (seeding the ledger from a mirror
//! built by another tool).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::model::hash_file::{ExternalHashes, MirroredBottle};
use crate::model::key::ObjectKey;
use crate::model::tag::Tag;
use crate::ports::fleet_ledger::{FleetLedger, RunRecord};
use crate::ports::queue::QueueDepth;
use crate::services::FleetServices;

/// Keys of bottles imported from a hash file that gave only their digests:
/// they count as mirrored when planning, and compaction leaves them out of
/// `bottles_hash.json` (there is no object behind them in this mirror).
pub const IMPORTED_KEY_PREFIX: &str = "imported/";

#[derive(Clone, Debug, Serialize)]
pub struct QueueStatus {
    pub name: String,
    pub url: String,
    #[serde(flatten)]
    pub depth: QueueDepth,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunStatus {
    #[serde(flatten)]
    pub run: RunRecord,
    pub done: u64,
    /// Bytes stored per second since the run started.
    pub bytes_per_second: f64,
    /// Estimated completion, while running.
    pub eta: Option<DateTime<Utc>>,
    /// Why the run is not advancing, when it has stalled
    /// (`BOTTLESYNC_RUN_STALL_MINUTES` without a bottle counted, or a
    /// planner that stopped before sealing it).
    pub stalled: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub environment: String,
    pub mirror: String,
    pub queues: Vec<QueueStatus>,
    pub run: Option<RunStatus>,
}

pub async fn status(services: &FleetServices) -> Result<Status> {
    let mut queues = Vec::new();
    for (name, queue) in [
        ("lambda", &services.queue),
        ("ecs", &services.large_queue),
        ("dlq", &services.dlq),
    ] {
        if let Some(queue) = queue {
            queues.push(QueueStatus {
                name: name.into(),
                url: queue.name(),
                depth: queue.depth().await?,
            });
        }
    }
    let now = Utc::now();
    let run = services.ledger.latest_run().await?.map(|run| {
        let end = run.finished_at.unwrap_or(now);
        let seconds = (end - run.started_at).num_milliseconds().max(1) as f64 / 1000.0;
        let done = run.done();
        let eta = (run.finished_at.is_none() && done > 0 && done < run.expected).then(|| {
            let per_bottle = seconds / done as f64;
            now + chrono::Duration::milliseconds(
                (per_bottle * (run.expected - done) as f64 * 1000.0) as i64,
            )
        });
        RunStatus {
            done,
            bytes_per_second: run.bytes_stored as f64 / seconds,
            eta,
            stalled: crate::run::reconcile::stall_of(&run, services.config.run_stall, now),
            run,
        }
    });
    Ok(Status {
        environment: services.config.environment.clone(),
        mirror: services.config.mirror_location(),
        queues,
        run,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    pub source: String,
    pub format: &'static str,
    pub in_file: usize,
    pub imported: usize,
    /// Already recorded as stored.
    pub skipped: usize,
}

/// Validates the whole file first (a bad file changes nothing), then records
/// its bottles as stored. Safe to run twice.
/// `hashes` is the parsed file, `source` where it came from.
pub async fn import_hashes(
    ledger: &dyn FleetLedger,
    hashes: ExternalHashes,
    source: &str,
) -> Result<ImportReport> {
    let now = Utc::now();
    let bottles: Vec<_> = hashes
        .digests
        .iter()
        .map(|sha| {
            let bottle = hashes
                .bottles
                .get(sha)
                .cloned()
                .unwrap_or_else(|| MirroredBottle {
                    name: "imported".into(),
                    version: "0".into(),
                    rebuild: 0,
                    tag: Tag::parse("all").expect("constant tag"),
                    key: ObjectKey::parse(&format!("{IMPORTED_KEY_PREFIX}{sha}"))
                        .expect("valid key"),
                    size: 0,
                    downloaded_at: now,
                });
            (sha.clone(), bottle)
        })
        .collect();
    let imported = ledger.import_stored(&bottles).await?;
    Ok(ImportReport {
        source: source.to_string(),
        format: hashes.format,
        in_file: bottles.len(),
        imported,
        skipped: bottles.len() - imported,
    })
}

/// Kept here so `drain::compact` and this module agree on what an import is.
pub fn is_imported_placeholder(bottle: &MirroredBottle) -> bool {
    bottle.key.as_str().starts_with(IMPORTED_KEY_PREFIX)
}
