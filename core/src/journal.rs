//! `JournalLedger`, the `Ledger` of a `sync`, kept in the store itself:
//! `bottles_hash.json` plus small journal objects for the bottles stored
//! since the last compaction, each written (durably) before its bottles
//! count as stored, so a crash loses at most the bottles in flight and a
//! rerun resumes. Group commit: while one journal object is being written,
//! the bottles committed meanwhile wait and go into the next one together
//! (one write and fsync for many small bottles; no bottle waits for a timer).
//!
//! `bottles_hash.json` may be compacted by several writers at once (fleet
//! finishers, `bottlesync compact`, a `sync`): each compaction reads it with
//! its version and writes it back only if it is still that version
//! (`BlobStore::put_if`), re-reading and re-merging when another won.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::model::digest::Sha256Digest;
use crate::model::hash_file::{HASH_FILE_NAME, MAX_HASH_FILE_BYTES, MirrorRecord, MirroredBottle};
use crate::model::key::ObjectKey;
use crate::ports::ledger::Ledger;
use crate::ports::store::{BlobStore, INTERNAL_PREFIX, Precondition, PutIf};
use crate::retry::RetryPolicy;

/// The journal's folder inside the mirror.
pub fn journal_prefix() -> String {
    format!("{INTERNAL_PREFIX}/journal")
}

pub struct JournalLedger {
    store: Arc<dyn BlobStore>,
    /// Entries waiting for the next journal object, with who to tell.
    waiting: std::sync::Mutex<Vec<(JournalEntry, oneshot::Sender<Result<()>>)>>,
    /// Held while a journal object is written: one at a time.
    writing: tokio::sync::Mutex<()>,
}

/// The most entries one journal object holds.
const MAX_ENTRIES_PER_OBJECT: usize = 1024;

impl JournalLedger {
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        JournalLedger {
            store,
            waiting: std::sync::Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Writes every waiting entry (up to [`MAX_ENTRIES_PER_OBJECT`]) as one
    /// journal object and tells each its result.
    async fn write_waiting(&self) {
        let batch: Vec<_> = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let take = waiting.len().min(MAX_ENTRIES_PER_OBJECT);
            waiting.drain(..take).collect()
        };
        let Some((first, _)) = batch.first() else {
            return;
        };
        let result = async {
            let key = ObjectKey::parse(&format!("{}/{}.json", journal_prefix(), first.sha256))?;
            let entries: Vec<&JournalEntry> = batch.iter().map(|(entry, _)| entry).collect();
            let bytes = serde_json::to_vec(&entries).expect("journal entries serialise");
            self.store.put_atomic(&key, bytes).await
        }
        .await;
        if batch.len() > 1 {
            tracing::debug!(
                entries = batch.len(),
                "journal: one object for several bottles"
            );
        }
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }

    pub async fn read_hash_file(&self) -> Result<MirrorRecord> {
        read_hash_file(self.store.as_ref()).await
    }

    async fn read_journal(&self) -> Result<Vec<(ObjectKey, Sha256Digest, MirroredBottle)>> {
        let mut entries = Vec::new();
        for key in self.store.list(&journal_prefix()).await? {
            let Some(bytes) = self.store.get(&key, 64 * 1024 * 1024).await? else {
                continue;
            };
            let object: JournalObject = serde_json::from_slice(&bytes).map_err(|e| {
                Error::hash_file(
                    format!("{}/{key}", self.store.location()),
                    format!("invalid journal entry: {e}"),
                )
            })?;
            let list = match object {
                JournalObject::One(entry) => vec![entry],
                JournalObject::Many(list) => list,
            };
            for entry in list {
                entries.push((key.clone(), entry.sha256, entry.bottle));
            }
        }
        Ok(entries)
    }

    /// Folds the journal into `bottles_hash.json` (validated, replaced
    /// atomically), then removes the folded journal entries.
    pub async fn compact(&self) -> Result<MirrorRecord> {
        let journal = self.read_journal().await?;
        let mut folded = Vec::with_capacity(journal.len());
        let mut bottles = Vec::with_capacity(journal.len());
        for (key, sha, bottle) in journal {
            bottles.push((sha, bottle));
            if folded.last() != Some(&key) {
                folded.push(key);
            }
        }
        let record = compact_into(self.store.as_ref(), bottles).await?;
        self.store.delete(&folded).await?;
        Ok(record)
    }
}

fn hash_file_key() -> ObjectKey {
    ObjectKey::parse(HASH_FILE_NAME).expect("constant key")
}

fn hash_file_location(store: &dyn BlobStore) -> String {
    format!("{}/{HASH_FILE_NAME}", store.location())
}

/// `bottles_hash.json` as it is now in `store` (empty if absent). An
/// unreadable or invalid file is an error, so it is never silently overwritten.
pub async fn read_hash_file(store: &dyn BlobStore) -> Result<MirrorRecord> {
    Ok(read_hash_file_versioned(store).await?.0)
}

/// The hash file and the precondition under which it may be replaced.
async fn read_hash_file_versioned(store: &dyn BlobStore) -> Result<(MirrorRecord, Precondition)> {
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
    store: &dyn BlobStore,
    bottles: impl IntoIterator<Item = (Sha256Digest, MirroredBottle)>,
) -> Result<MirrorRecord> {
    Ok(merge_into_hash_file(store, bottles).await?.record)
}

/// `compact_into`, also telling how many conflicts it went through.
pub async fn merge_into_hash_file(
    store: &dyn BlobStore,
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

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalEntry {
    sha256: Sha256Digest,
    bottle: MirroredBottle,
}

/// A journal object: a list of entries (what is written), or one entry
/// (what versions before group commit wrote, still read).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JournalObject {
    Many(Vec<JournalEntry>),
    One(JournalEntry),
}

#[async_trait]
impl Ledger for JournalLedger {
    async fn stored_bottles(&self) -> Result<BTreeMap<Sha256Digest, MirroredBottle>> {
        let mut bottles = read_hash_file(self.store.as_ref()).await?.bottles;
        for (_, sha, bottle) in self.read_journal().await? {
            bottles.insert(sha, bottle);
        }
        Ok(bottles)
    }

    async fn record_stored(&self, sha256: &Sha256Digest, bottle: &MirroredBottle) -> Result<()> {
        let (done, mut result) = oneshot::channel();
        let entry = JournalEntry {
            sha256: sha256.clone(),
            bottle: bottle.clone(),
        };
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((entry, done));
        loop {
            // Whoever holds `writing` writes what waits, this entry included
            // unless an earlier writer took it.
            let _writing = self.writing.lock().await;
            if let Ok(written) = result.try_recv() {
                return written;
            }
            self.write_waiting().await;
            if let Ok(written) = result.try_recv() {
                return written;
            }
        }
    }
}
