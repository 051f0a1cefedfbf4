//! Publication, the last step of a fleet run: the API files a planner
//! fetched are published only once no run is in flight, by the last run to
//! finish, and never over newer ones.
//!
//! - The planner stages the API files its plan used under
//!   `.bottlesync/runs/<run id>.api/` ([`stage`]) before it seals the run,
//!   with their generation (when they were fetched).
//! - The finisher of a run ([`publish_at_finish`]) publishes only when no
//!   other run is `Running`: a run still in flight has bottles the files may
//!   name, which clients would get 404s for. It leaves publication to that
//!   run, which finishes later (and, being last, publishes).
//! - The last finisher publishes the newest staging of a run that is no
//!   longer running (its own or one that deferred to it), and
//!   [`crate::brew::publish::publish`] refuses files older than those
//!   published: a run planned first that finishes last never brings back
//!   its older files.
//! - What it published is kept under the finishing run's staging
//!   (`published.json`), so a finisher that takes over (the summary was
//!   not posted) names the same missing bottles without publishing again.
//!   Stagings older than the one published are deleted (their
//!   `formula.jws.json` alone is ~30 MB).
//!
//! The finisher has taken the run with a consistent `begin_finish` before
//! it looks at the other runs, so of two runs finishing at once at least
//! one sees the other `Finishing`, not `Running`, and publishes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::brew::publish::{
    ApiFiles, MAX_FORMULA_JWS_BYTES, MAX_PUBLISHED_RECORD_BYTES, MirrorScope, WantedBottle, publish,
};
use crate::error::{Error, Result};
use crate::model::key::ObjectKey;
use crate::model::packages::PackagesFile;
use crate::model::tag::Tag;
use crate::ports::fleet_ledger::RunBook;
use crate::ports::store::{BlobStore, DocumentStore, INTERNAL_PREFIX};
use crate::run::record::RunState;

const RUNS_PREFIX: &str = "runs";
const STAGING_SUFFIX: &str = ".api";
const STAGED_SCOPE: &str = "scope.json";
const STAGED_RESULT: &str = "published.json";
const STAGED_FORMULA_JWS: &str = "formula.jws.json";
const STAGED_PORTABLE_RUBY: &str = "portable-ruby.json";

/// What the finisher of a run published, kept so a takeover that posts
/// the summary later still names what the mirror lacks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedResult {
    pub api_files: usize,
    pub missing: Vec<WantedBottle>,
    /// The run whose staged files were published (this run's own, or
    /// a newer one's that had left publication to the last finisher).
    /// `None` in results kept before runs published each other's files.
    #[serde(default)]
    pub source_run: Option<String>,
}

/// What [`publish_at_finish`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publication {
    /// The newest staged API files were published (or had been, by an
    /// earlier finisher of this run).
    Published(StagedResult),
    /// Other runs are still in flight: the last of them publishes.
    Deferred { in_flight: Vec<String> },
    /// No finished run staged API files (runs planned before staging
    /// existed, or only `dlq replay` runs).
    NothingStaged,
}

impl Publication {
    /// The bottles the published files name that the mirror lacks, for
    /// the summary.
    pub fn missing(&self) -> &[WantedBottle] {
        match self {
            Publication::Published(result) => &result.missing,
            _ => &[],
        }
    }
}

/// `scope.json` of a staging: the scope, and (since generations exist)
/// when the files were fetched.
#[derive(Serialize, Deserialize)]
struct StagedScope {
    #[serde(flatten)]
    scope: MirrorScope,
    #[serde(default)]
    fetched_at: Option<DateTime<Utc>>,
}

/// `.bottlesync/runs/<run id>.api/`: where a fleet planner leaves the API
/// files its plan used, for the last finisher to publish.
fn staging_prefix(run_id: &str) -> Result<String> {
    crate::model::message::validate_run_id(run_id)
        .map_err(|problem| Error::config("run id", problem))?;
    Ok(format!(
        "{INTERNAL_PREFIX}/{RUNS_PREFIX}/{run_id}{STAGING_SUFFIX}"
    ))
}

fn staged_key(run_id: &str, file: &str) -> Result<ObjectKey> {
    ObjectKey::parse(&format!("{}/{file}", staging_prefix(run_id)?))
}

/// Leaves `api` for the finisher (the planner, before it seals the run:
/// nothing can finish an unsealed run).
pub async fn stage(store: &dyn DocumentStore, run_id: &str, api: &ApiFiles) -> Result<()> {
    for (tag, file) in &api.packages {
        let name = crate::model::layout::packages_file_name(tag);
        store
            .put_atomic(&staged_key(run_id, &name)?, file.bytes.clone())
            .await?;
    }
    if let Some(bytes) = &api.formula_jws {
        store
            .put_atomic(&staged_key(run_id, STAGED_FORMULA_JWS)?, bytes.clone())
            .await?;
    }
    crate::brew::portable_ruby::stage(store, &staged_key(run_id, STAGED_PORTABLE_RUBY)?, api)
        .await?;
    // Last: a staging without its scope is not used.
    let scope = StagedScope {
        scope: api.scope.clone(),
        fetched_at: Some(api.fetched_at),
    };
    store
        .put_atomic(
            &staged_key(run_id, STAGED_SCOPE)?,
            serde_json::to_vec(&scope).expect("a scope serialises"),
        )
        .await
}

/// The scope and generation `run_id` staged; `None` when it staged none.
/// Files staged before generations existed take the run's start as theirs.
async fn read_staged_scope(
    store: &dyn DocumentStore,
    run_id: &str,
    started_at: DateTime<Utc>,
) -> Result<Option<(MirrorScope, DateTime<Utc>)>> {
    let Some(bytes) = store
        .get(
            &staged_key(run_id, STAGED_SCOPE)?,
            MAX_PUBLISHED_RECORD_BYTES,
        )
        .await?
    else {
        return Ok(None);
    };
    let staged: StagedScope = serde_json::from_slice(&bytes).map_err(|e| {
        Error::config(
            "staged API files",
            format!("run {run_id}: scope.json: {}", crate::serde_problem(&e)),
        )
    })?;
    Ok(Some((
        staged.scope,
        staged.fetched_at.unwrap_or(started_at),
    )))
}

/// The API files `run_id` staged, of scope `scope` fetched at `fetched_at`.
async fn read_staged(
    store: &dyn DocumentStore,
    run_id: &str,
    scope: MirrorScope,
    fetched_at: DateTime<Utc>,
) -> Result<ApiFiles> {
    let mut api = ApiFiles {
        scope,
        fetched_at,
        ..ApiFiles::default()
    };
    for key in store.list(&staging_prefix(run_id)?).await? {
        let name = key.file_name();
        let Some(tag) = name
            .strip_prefix("packages.")
            .and_then(|rest| rest.strip_suffix(".jws.json"))
        else {
            if name == STAGED_FORMULA_JWS {
                api.formula_jws = store.get(&key, MAX_FORMULA_JWS_BYTES).await?;
            } else if name == STAGED_PORTABLE_RUBY {
                api.portable_ruby = crate::brew::portable_ruby::read_staged(store, &key).await?;
            }
            continue;
        };
        let tag = Tag::parse(tag).map_err(|p| Error::config("staged API files", p))?;
        let Some(bytes) = store
            .get(&key, crate::model::packages::MAX_PACKAGES_FILE_BYTES)
            .await?
        else {
            continue;
        };
        let file = PackagesFile::parse(&tag, bytes)
            .map_err(|p| Error::config("staged API files", format!("{key}: {p}")))?;
        api.packages.insert(tag, file);
    }
    Ok(api)
}

/// The runs with a complete staging (its `scope.json`).
async fn staged_runs(store: &dyn DocumentStore) -> Result<Vec<String>> {
    Ok(store
        .list(&format!("{INTERNAL_PREFIX}/{RUNS_PREFIX}"))
        .await?
        .iter()
        .filter_map(|key| {
            let (dir, file) = key.as_str().rsplit_once('/')?;
            let run = dir.rsplit('/').next()?.strip_suffix(STAGING_SUFFIX)?;
            (file == STAGED_SCOPE).then(|| run.to_string())
        })
        .collect())
}

/// A run's staging.
struct Staging {
    run_id: String,
    scope: MirrorScope,
    fetched_at: DateTime<Utc>,
    /// Whether the ledger knows its run: a planner that died between
    /// staging and opening its run leaves an orphan (deleted once older
    /// files are published).
    known: bool,
}

/// The stagings of runs that are no longer running (`finishing`, its
/// own, is not), and orphans, oldest generation first.
async fn stagings(ledger: &dyn RunBook, store: &dyn DocumentStore) -> Result<Vec<Staging>> {
    let mut stagings = Vec::new();
    for run_id in staged_runs(store).await? {
        let run = ledger.run(&run_id).await?;
        // Planned since the finisher looked: it publishes when it finishes.
        if run
            .as_ref()
            .is_some_and(|run| run.state == RunState::Running)
        {
            continue;
        }
        let started_at = run
            .as_ref()
            .map_or(DateTime::<Utc>::MIN_UTC, |r| r.started_at);
        if let Some((scope, fetched_at)) = read_staged_scope(store, &run_id, started_at).await? {
            stagings.push(Staging {
                run_id,
                scope,
                fetched_at,
                known: run.is_some(),
            });
        }
    }
    stagings.sort_by(|a, b| (a.fetched_at, &a.run_id).cmp(&(b.fetched_at, &b.run_id)));
    Ok(stagings)
}

/// What the finisher of `run_id` kept of its publication, if it got that far.
pub async fn kept_result(store: &dyn DocumentStore, run_id: &str) -> Result<Option<StagedResult>> {
    let bytes = store
        .get(
            &staged_key(run_id, STAGED_RESULT)?,
            MAX_PUBLISHED_RECORD_BYTES,
        )
        .await?;
    // An unreadable result (a torn write cannot happen: put_atomic) is
    // simply published again.
    Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// The publication step of the finisher of `run_id` (which holds the run's
/// finishing lease). See the module docs.
pub async fn publish_at_finish(
    ledger: &dyn RunBook,
    store: &dyn BlobStore,
    run_id: &str,
) -> Result<Publication> {
    if let Some(result) = kept_result(store, run_id).await? {
        return Ok(Publication::Published(result));
    }
    let in_flight: Vec<String> = ledger
        .open_runs()
        .await?
        .into_iter()
        .filter(|run| run.run_id != run_id && run.state == RunState::Running)
        .map(|run| run.run_id)
        .collect();
    if !in_flight.is_empty() {
        tracing::info!(
            run_id,
            in_flight = ?in_flight,
            "not publishing the API files: other runs are in flight, and the last of them to finish publishes the newest"
        );
        return Ok(Publication::Deferred { in_flight });
    }
    let mut stagings = stagings(ledger, store).await?;
    let Some(newest) = stagings
        .iter()
        .rposition(|s| s.known)
        .map(|i| stagings.remove(i))
    else {
        return Ok(Publication::NothingStaged);
    };
    // Orphans newer than what is published may be a planner's about to
    // open its run.
    stagings.retain(|s| s.fetched_at < newest.fetched_at);
    let api = read_staged(store, &newest.run_id, newest.scope, newest.fetched_at).await?;
    let record = crate::mirror_record::read_hash_file(store).await?;
    let report = publish(store, &record.bottles, &api).await?;
    let result = StagedResult {
        api_files: report.api_files.len(),
        missing: report.missing,
        source_run: Some(newest.run_id),
    };
    let bytes = serde_json::to_vec(&result).expect("a result serialises");
    if let Err(e) = store
        .put_atomic(&staged_key(run_id, STAGED_RESULT)?, bytes)
        .await
    {
        tracing::warn!(run_id, error = %e, "published, but could not keep the result: a takeover publishes again (the same files)");
    }
    // What is left is older: never to be published.
    delete_stagings(store, &stagings).await;
    Ok(Publication::Published(result))
}

/// Deletes the staged files of `older` runs (kept results stay: a
/// takeover of their finisher reads them). Failures are logged: an old
/// staging left behind is never published (it is older).
async fn delete_stagings(store: &dyn DocumentStore, older: &[Staging]) {
    let deleted = async {
        let mut keys = Vec::new();
        for staging in older {
            keys.extend(
                store
                    .list(&staging_prefix(&staging.run_id)?)
                    .await?
                    .into_iter()
                    .filter(|key| key.file_name() != STAGED_RESULT),
            );
        }
        if !keys.is_empty() {
            store.delete(&keys).await?;
        }
        Ok::<usize, Error>(keys.len())
    };
    match deleted.await {
        Ok(0) => {}
        Ok(files) => tracing::info!(
            files,
            runs = older.len(),
            "deleted the API files older runs had staged"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "could not delete older runs' staged API files; they are never published (older) and the next publication tries again"
        ),
    }
}
