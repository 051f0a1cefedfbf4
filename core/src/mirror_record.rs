//! `bottles_hash.json` in a mirror's store, read and written in one place:
//! the journal's compaction (`sync`), the fleet finisher's compaction, the
//! planner (what is mirrored), publication and `serve` (registry blobs by
//! digest) all come here. The file's format is `model::hash_file`.
//!
//! It may be compacted by several writers at once (fleet finishers,
//! `bottlesync compact`, a `sync`): each compaction reads it with its
//! version and writes it back only if it is still that version
//! (`DocumentStore::put_if`), re-reading and re-merging when another won.

use chrono::Utc;

use crate::error::{Error, Result};
use crate::model::digest::Sha256Digest;
use crate::model::hash_file::{HASH_FILE_NAME, MAX_HASH_FILE_BYTES, MirrorRecord, MirroredBottle};
use crate::model::key::ObjectKey;
use crate::ports::store::{DocumentStore, Precondition, PutIf};
use crate::retry::RetryPolicy;

fn hash_file_key() -> ObjectKey {
    ObjectKey::parse(HASH_FILE_NAME).expect("constant key")
}

fn hash_file_location(store: &dyn DocumentStore) -> String {
    format!("{}/{HASH_FILE_NAME}", store.location())
}

/// `bottles_hash.json` as it is now in `store` (empty if absent). An
/// unreadable or invalid file is an error, so it is never silently overwritten.
pub async fn read_hash_file(store: &dyn DocumentStore) -> Result<MirrorRecord> {
    Ok(read_hash_file_versioned(store).await?.0)
}

/// The hash file and the precondition under which it may be replaced.
async fn read_hash_file_versioned(
    store: &dyn DocumentStore,
) -> Result<(MirrorRecord, Precondition)> {
    let found = store
        .get_versioned(&hash_file_key(), MAX_HASH_FILE_BYTES)
        .await
        .map_err(|e| Error::hash_file(hash_file_location(store), e.to_string()))?;
    match found {
        None => Ok((MirrorRecord::default(), Precondition::Absent)),
        Some((bytes, version)) => MirrorRecord::parse(&bytes)
            .map(|record| (record, Precondition::Matches(version)))
            .map_err(|problem| Error::hash_file(hash_file_location(store), problem)),
    }
}

/// Compactions of one hash file that may lose the race in a row before one
/// gives up: every round has a winner, so this covers that many writers
/// at once.
const COMPACTION_ATTEMPTS: usize = 16;

fn compaction_retry() -> RetryPolicy {
    RetryPolicy {
        retries: COMPACTION_ATTEMPTS - 1,
        min_delay: std::time::Duration::from_millis(20),
        max_delay: std::time::Duration::from_secs(2),
        ..RetryPolicy::default()
    }
}

/// What a compaction wrote, and how often another writer got in between.
#[derive(Debug)]
pub struct Compaction {
    pub record: MirrorRecord,
    /// Conditional writes refused because the file had changed since it
    /// was read (each one re-read and merged again).
    pub conflicts: usize,
}

/// Merges `bottles` into the store's `bottles_hash.json` and writes it back
/// (validated first; replaced atomically, so readers see the old or the new
/// file; and only over the version it read, so a concurrent compaction's
/// bottles are never lost). The one compaction used by `sync` and by the
/// fleet.
pub async fn compact_into(
    store: &dyn DocumentStore,
    bottles: impl IntoIterator<Item = (Sha256Digest, MirroredBottle)>,
) -> Result<MirrorRecord> {
    Ok(merge_into_hash_file(store, bottles).await?.record)
}

/// `compact_into`, also telling how many conflicts it went through.
pub async fn merge_into_hash_file(
    store: &dyn DocumentStore,
    bottles: impl IntoIterator<Item = (Sha256Digest, MirroredBottle)>,
) -> Result<Compaction> {
    let bottles: Vec<_> = bottles.into_iter().collect();
    let location = hash_file_location(store);
    let mut delays = compaction_retry().delays();
    let mut conflicts = 0;
    loop {
        let (mut record, precondition) = read_hash_file_versioned(store).await?;
        record.bottles.extend(bottles.iter().cloned());
        record.updated_at = Utc::now();
        let bytes = record
            .to_validated_json()
            .map_err(|problem| Error::hash_file(&location, problem))?;
        // A write that landed but whose answer was lost comes back as a
        // conflict (the SDK's retry finds our own version): the next round
        // reads our bottles back and writes the same set again.
        match store.put_if(&hash_file_key(), bytes, precondition).await? {
            PutIf::Written(_) => return Ok(Compaction { record, conflicts }),
            PutIf::PreconditionFailed => {
                conflicts += 1;
                let Some(wait) = delays.next() else {
                    return Err(Error::hash_file(
                        &location,
                        format!(
                            "changed by other writers during {conflicts} compactions in a row; \
                             nothing written (run `bottlesync compact` again)"
                        ),
                    ));
                };
                tracing::warn!(
                    key = %location,
                    conflicts,
                    wait_ms = wait.as_millis() as u64,
                    "the hash file changed while compacting: reading it again to merge"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}
