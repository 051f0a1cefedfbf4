//! Publishing the brew-usable view of a mirror (`bottles/` and `api/`, see
//! [`layout`](crate::model::layout)) after a run's bottles are stored:
//!
//! 1. every bottle `bottles_hash.json` lists has its flat copy under
//!    `bottles/` (a hard link or a server-side copy, see
//!    [`BlobStore::put_flat_copy`]): workers make it before they record a
//!    bottle, so this only backfills what an older bottlesync recorded
//!    under a dated key before flat copies existed (copied from that dated
//!    key while it has not expired);
//! 2. the bottles each API file names for the formulae in scope are
//!    checked against what is now in `bottles/` (name and digest);
//! 3. only then are the API files written, each atomically, byte for byte
//!    as the plan fetched them, after `.bottlesync/published.json` (what
//!    they are and the scope, for `bottlesync verify`).
//!
//! A bottle the mirror lacks (it failed this run) does not hold the API
//! files back: brew falls back to upstream for that bottle alone, and the
//! summary names it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::hash_file::MirroredBottle;
use crate::model::index::Rejection;
use crate::model::key::ObjectKey;
use crate::model::layout::{BOTTLES_DIR, flat_key_of, formula_jws_key, packages_key};
use crate::model::packages::{DependencyRules, PackagesFile};
use crate::model::tag::Tag;
use crate::ports::store::{BlobStore, BlobWriter, DocumentStore, INTERNAL_PREFIX};
use crate::{Sha256Digest, shorten};

/// The signed index is ~30 MB today; refuse anything absurd.
pub const MAX_FORMULA_JWS_BYTES: u64 = 256 * 1024 * 1024;

/// Flat copies made at once (each a link or one server-side copy).
pub const FLAT_COPY_CONCURRENCY: usize = 16;

/// Which formulae a mirror serves: what `--formula`, `--with-deps`,
/// `--linux-host-formulae` and `--include-disabled` asked for. Empty
/// `formulae` means all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorScope {
    #[serde(default)]
    pub formulae: Vec<String>,
    #[serde(default)]
    pub with_deps: bool,
    /// Records written before the setting existed mean off.
    #[serde(default)]
    pub linux_host_formulae: bool,
    #[serde(default)]
    pub include_disabled: bool,
}

impl MirrorScope {
    pub fn rules(&self) -> DependencyRules {
        DependencyRules {
            with_deps: self.with_deps,
            linux_host_formulae: self.linux_host_formulae,
        }
    }

    /// The entries of `file` set aside (not parseable) that this scope
    /// wants: a mirror never counts as complete while its published file
    /// names a bottle it could not read.
    pub fn rejections<'a>(&self, file: &'a PackagesFile) -> Vec<&'a Rejection> {
        file.rejections_in_scope(&self.formulae, self.rules())
    }

    /// Disabled formulae `file` names in scope that the scope leaves out.
    pub fn disabled_skipped(&self, file: &PackagesFile) -> usize {
        if self.include_disabled {
            return 0;
        }
        let mut missing = Vec::new();
        file.closure(&self.formulae, self.rules(), &mut missing)
            .into_iter()
            .filter(|entry| entry.disabled && entry.bottle.is_some())
            .count()
    }

    /// The bottles `file` names for the formulae in scope: what a client on
    /// its tag may request from this mirror. Disabled formulae count only
    /// when the scope includes them.
    pub fn wanted_bottles(&self, file: &PackagesFile) -> Vec<WantedBottle> {
        let mut missing = Vec::new();
        file.closure(&self.formulae, self.rules(), &mut missing)
            .into_iter()
            .filter(|entry| self.include_disabled || !entry.disabled)
            .filter_map(|entry| {
                let bottle = entry.bottle.as_ref()?;
                Some(WantedBottle {
                    name: entry.name.clone(),
                    version_rebuild: entry.version_rebuild(),
                    file_name: entry.file_name(bottle),
                    tag: bottle.tag.clone(),
                    sha256: bottle.sha256.clone(),
                })
            })
            .collect()
    }
}

/// One bottle an API file names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WantedBottle {
    pub name: String,
    /// The manifest reference brew asks for (`pkg_version[-rebuild]`).
    pub version_rebuild: String,
    /// The flat name brew requests under `bottles/`.
    pub file_name: String,
    pub tag: Tag,
    pub sha256: Sha256Digest,
}

/// The API files a plan used, to be published once its bottles are in.
#[derive(Clone, Debug, Default)]
pub struct ApiFiles {
    /// Per-tag files, by client tag, byte for byte as fetched.
    pub packages: BTreeMap<Tag, PackagesFile>,
    /// `formula.jws.json` as fetched, when the plan's index came from it.
    pub formula_jws: Option<Vec<u8>>,
    pub scope: MirrorScope,
    /// The Portable Ruby bottles the plan wanted (`bottles/` must hold
    /// them; recorded for `bottlesync verify`).
    pub portable_ruby: Vec<WantedBottle>,
    /// When the files were fetched from upstream: their generation. Files
    /// of an older generation never replace newer ones (a run planned
    /// first may finish last).
    pub fetched_at: DateTime<Utc>,
}

/// `.bottlesync/published.json`: what was last published, and for which
/// scope, so `bottlesync verify` checks exactly that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRecord {
    pub schema: u32,
    pub published_at: DateTime<Utc>,
    pub scope: MirrorScope,
    /// The tags with a per-tag API file.
    pub tags: Vec<Tag>,
    pub formula_jws: bool,
    /// The Portable Ruby bottles planned (none in records written before
    /// bottlesync mirrored it).
    #[serde(default)]
    pub portable_ruby: Vec<WantedBottle>,
    /// [`ApiFiles::fetched_at`] of the files published (none in records
    /// written before generations existed: any generation replaces them).
    #[serde(default)]
    pub generation: Option<DateTime<Utc>>,
}

pub const PUBLISHED_RECORD_SCHEMA: u32 = 1;
/// Refuse a record larger than this rather than read it into memory.
pub const MAX_PUBLISHED_RECORD_BYTES: u64 = 16 * 1024 * 1024;

pub fn published_record_key() -> ObjectKey {
    ObjectKey::parse(&format!("{INTERNAL_PREFIX}/published.json")).expect("a constant valid key")
}

impl PublishedRecord {
    /// Reads the record; `None` when nothing was published yet.
    pub async fn read(store: &dyn DocumentStore) -> Result<Option<PublishedRecord>> {
        let key = published_record_key();
        let Some(bytes) = store.get(&key, MAX_PUBLISHED_RECORD_BYTES).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::HashFile {
                location: format!("{}/{key}", store.location()),
                problem: format!("not a publication record: {}", crate::serde_problem(&e)),
            })
    }
}

/// What a publication did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Flat copies made now (bottles stored this run, or before flat
    /// copies existed).
    pub flat_copies: usize,
    /// Flat copies that could not be made (each logged).
    pub flat_copy_failures: usize,
    /// Keys of the API files written.
    pub api_files: Vec<ObjectKey>,
    /// Bottles the published API files name (formulae in scope) that the
    /// mirror lacks: clients fetch these from upstream.
    pub missing: Vec<WantedBottle>,
    /// The generation of newer API files already published, which these
    /// did not replace (nothing was written).
    pub superseded_by: Option<DateTime<Utc>>,
}

impl PublishReport {
    /// `name version tag` of each missing bottle, for summaries.
    pub fn missing_labels(&self) -> Vec<String> {
        missing_labels(&self.missing)
    }
}

/// `file name (sha256 prefix)` of each bottle, for summaries.
pub fn missing_labels(missing: &[WantedBottle]) -> Vec<String> {
    missing
        .iter()
        .map(|b| format!("{} ({})", b.file_name, &b.sha256.as_str()[..12]))
        .collect()
}

/// The flat names present under `bottles/` (not manifests).
pub async fn flat_names(store: &dyn DocumentStore) -> Result<HashSet<String>> {
    Ok(store
        .list(BOTTLES_DIR)
        .await?
        .into_iter()
        .filter_map(|key| {
            key.as_str()
                .strip_prefix(&format!("{BOTTLES_DIR}/"))
                .filter(|rest| !rest.contains('/'))
                .map(str::to_string)
        })
        .collect())
}

/// Makes the flat copy of every bottle in `stored` that has none yet, from
/// the dated key an older record names. Returns (made, failed); failures
/// are logged and leave that bottle out of `present`.
pub async fn make_flat_copies(
    store: &dyn BlobStore,
    stored: &BTreeMap<Sha256Digest, MirroredBottle>,
    present: &mut HashSet<String>,
) -> (usize, usize) {
    let todo: Vec<&MirroredBottle> = stored
        .values()
        .filter(|bottle| !present.contains(bottle.key.file_name()))
        .collect();
    // Chunks of futures from a plain async fn: a stream of closures over
    // borrowed data makes this future lose `Send` (rust#102211).
    let mut results = Vec::with_capacity(todo.len());
    for chunk in todo.chunks(FLAT_COPY_CONCURRENCY) {
        results.extend(futures::future::join_all(chunk.iter().map(|b| flat_copy(store, b))).await);
    }
    let (mut made, mut failed) = (0, 0);
    for (name, result) in results {
        match result {
            Ok(()) => {
                present.insert(name);
                made += 1;
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(file = %name, error = %e, "could not make the flat copy under bottles/; the API files name this bottle as missing (clients fetch it upstream)");
            }
        }
    }
    (made, failed)
}

async fn flat_copy(store: &dyn BlobWriter, bottle: &MirroredBottle) -> (String, Result<()>) {
    let name = bottle.key.file_name().to_string();
    let result = match bottle.archived_key() {
        Some(dated) => put_flat_copy_of(store, dated).await,
        // Recorded under its flat key, which was made before the record
        // named it: the object was deleted since, and nothing is left to
        // copy it from.
        None => Err(Error::store(
            store.location(),
            format!(
                "{} is missing, and {} names no other copy of it",
                bottle.key,
                crate::model::hash_file::HASH_FILE_NAME
            ),
        )),
    };
    (name, result)
}

/// Rewrites the entries an older record names under their dated key, once
/// their flat copy is there, to name the flat key: the record then names
/// only objects that stay (the dated ones expire). Readers map the old
/// entries by file name anyway, so a failure here is logged and changes
/// nothing; the next publication tries again.
async fn record_flat_keys(
    store: &dyn DocumentStore,
    stored: &BTreeMap<Sha256Digest, MirroredBottle>,
    present: &HashSet<String>,
) {
    let moved: Vec<(Sha256Digest, MirroredBottle)> = stored
        .iter()
        .filter(|(_, bottle)| {
            bottle.archived_key().is_some() && present.contains(bottle.key.file_name())
        })
        .map(|(sha, bottle)| {
            let key = bottle.flat_key();
            (
                sha.clone(),
                MirroredBottle {
                    key,
                    ..bottle.clone()
                },
            )
        })
        .collect();
    if moved.is_empty() {
        return;
    }
    match crate::mirror_record::compact_into(store, moved.iter().cloned()).await {
        Ok(_) => tracing::info!(
            bottles = moved.len(),
            "bottles_hash.json now names the flat key of each bottle an older bottlesync recorded under its dated key"
        ),
        Err(e) => tracing::warn!(
            bottles = moved.len(),
            error = %e,
            "could not rewrite older entries of bottles_hash.json to their flat keys; readers map them by file name, the next publication tries again"
        ),
    }
}

/// Puts the flat copy (`bottles/<its file name>`) of the committed bottle
/// at `dated`: what the worker does before it records a bottle, and what
/// publication backfills for an older record.
pub async fn put_flat_copy_of(store: &dyn BlobWriter, dated: &ObjectKey) -> Result<()> {
    store.put_flat_copy(dated, &flat_key_of(dated)).await
}

/// Publishes `api` over the mirror whose stored bottles are `stored` (the
/// compacted `bottles_hash.json`): flat copies first, then the check, then
/// the record and the API files. See the module docs.
pub async fn publish(
    store: &dyn BlobStore,
    stored: &BTreeMap<Sha256Digest, MirroredBottle>,
    api: &ApiFiles,
) -> Result<PublishReport> {
    if let Some(newer) = newer_generation(store, api.fetched_at).await {
        tracing::info!(
            fetched_at = %api.fetched_at,
            published = %newer,
            "not publishing these API files: newer ones are published already"
        );
        return Ok(PublishReport {
            superseded_by: Some(newer),
            ..PublishReport::default()
        });
    }
    let mut present = flat_names(store).await?;
    let (flat_copies, flat_copy_failures) = make_flat_copies(store, stored, &mut present).await;
    record_flat_keys(store, stored, &present).await;
    let mut missing = BTreeSet::new();
    for file in api.packages.values() {
        for wanted in api.scope.wanted_bottles(file) {
            let in_mirror = stored
                .get(&wanted.sha256)
                .is_some_and(|b| b.key.file_name() == wanted.file_name)
                && present.contains(&wanted.file_name);
            if !in_mirror {
                missing.insert(wanted);
            }
        }
    }
    missing.extend(crate::brew::portable_ruby::missing(
        &api.portable_ruby,
        stored,
        &present,
    ));
    let record = PublishedRecord {
        schema: PUBLISHED_RECORD_SCHEMA,
        published_at: Utc::now(),
        scope: api.scope.clone(),
        tags: api.packages.keys().cloned().collect(),
        formula_jws: api.formula_jws.is_some(),
        portable_ruby: api.portable_ruby.clone(),
        generation: Some(api.fetched_at),
    };
    let record_bytes = serde_json::to_vec_pretty(&record).expect("a record serialises");
    store
        .put_atomic(&published_record_key(), record_bytes)
        .await?;
    let mut api_files = Vec::new();
    for (tag, file) in &api.packages {
        let key = packages_key(tag);
        store.put_atomic(&key, file.bytes.clone()).await?;
        api_files.push(key);
    }
    if let Some(bytes) = &api.formula_jws {
        let key = formula_jws_key();
        store.put_atomic(&key, bytes.clone()).await?;
        api_files.push(key);
    }
    let missing: Vec<WantedBottle> = missing.into_iter().collect();
    if missing.is_empty() {
        tracing::info!(
            api_files = api_files.len(),
            flat_copies,
            "published the API files: every bottle they name for the formulae in scope is in bottles/"
        );
    } else {
        tracing::warn!(
            api_files = api_files.len(),
            missing = missing.len(),
            first = %shorten(&missing[0].file_name, 120),
            "published the API files; the mirror lacks some bottles they name (clients fetch those upstream)"
        );
    }
    Ok(PublishReport {
        flat_copies,
        flat_copy_failures,
        api_files,
        missing,
        superseded_by: None,
    })
}

/// The generation of the published API files when it is newer than
/// `fetched_at`. A record that cannot be read is logged and replaced.
async fn newer_generation(
    store: &dyn DocumentStore,
    fetched_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match PublishedRecord::read(store).await {
        Ok(record) => record
            .and_then(|r| r.generation)
            .filter(|published| *published > fetched_at),
        Err(e) => {
            tracing::warn!(error = %e, "the publication record cannot be read: publishing over it");
            None
        }
    }
}
