//! `bottlesync sync` once its plan is made: the plan's bottles fetched,
//! verified and stored with bounded concurrency (`pool`), each recorded in
//! the journal as it is committed; the journal folded into
//! `bottles_hash.json` (even after an interrupt: what was stored stays
//! recorded); and then, only after a whole run, the publication step
//! (`core::brew::publish::publish`: flat copies, then the API files, last),
//! the same step a fleet run's finisher ends with.

use std::sync::Arc;
use std::time::Duration;

use bottlesync_core::brew::publish::{ApiFiles, PublishReport, publish};
use bottlesync_core::journal::JournalLedger;
use bottlesync_core::model::hash_file::MirrorRecord;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::BlobStore;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::segments::SegmentPolicy;
use bottlesync_core::shutdown::Shutdown;
use bottlesync_core::{BottleJob, Result};

use crate::pool::{PoolContext, PoolOutcome, Progress, run_pool};

/// What a sync's transfers touch: the bottle hosts, the mirror store and
/// its journal, and how a bottle comes down.
pub struct SyncRun {
    pub registry: Arc<dyn Registry>,
    pub store: Arc<dyn BlobStore>,
    pub journal: Arc<JournalLedger>,
    pub retry: RetryPolicy,
    pub segments: SegmentPolicy,
}

/// How the transfers go: at most `concurrency` at once; when `shutdown`
/// fires, no new ones, and those in flight get `grace` to finish.
pub struct SyncLimits {
    pub concurrency: usize,
    pub shutdown: Shutdown,
    pub grace: Duration,
}

/// What a sync did.
pub struct Synced {
    pub transfers: PoolOutcome,
    /// `bottles_hash.json` as compacted at the end.
    pub record: MirrorRecord,
    /// `None`: interrupted, so nothing was published (a rerun publishes).
    pub published: Option<PublishReport>,
}

impl SyncRun {
    /// Mirrors `jobs` in their order (`Plan::sort_largest_first`), then
    /// compacts, then publishes `api` after a whole run.
    pub async fn run(
        self,
        jobs: Vec<BottleJob>,
        api: &ApiFiles,
        progress: Arc<Progress>,
        limits: SyncLimits,
    ) -> Result<Synced> {
        let (store, journal) = (self.store.clone(), self.journal.clone());
        let context = Arc::new(PoolContext {
            registry: self.registry,
            store: self.store,
            ledger: self.journal,
            retry: self.retry,
            segments: self.segments,
        });
        let SyncLimits {
            concurrency,
            shutdown,
            grace,
        } = limits;
        let transfers = run_pool(context, jobs, concurrency, progress, shutdown, grace).await;
        let record = journal.compact().await?;
        // Last: the API files name only what the mirror now holds.
        let published = match transfers.interrupted {
            false => Some(publish(store.as_ref(), &record.bottles, api).await?),
            true => None,
        };
        Ok(Synced {
            transfers,
            record,
            published,
        })
    }
}
