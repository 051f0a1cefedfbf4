//! The ledger: what the mirror holds. `Ledger` is the port; `JournalLedger`
//! keeps it in the store itself (for `sync`): `bottles_hash.json` plus one
//! small journal object per bottle stored since the last compaction, written
//! the moment the bottle is committed, so a crash loses at most the bottles
//! in flight and a rerun resumes.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::hash_file::{HASH_FILE_NAME, MAX_HASH_FILE_BYTES, MirrorRecord, MirroredBottle};
use crate::key::ObjectKey;
use crate::store::{BlobStore, INTERNAL_PREFIX};

#[async_trait]
pub trait Ledger: Send + Sync {
    /// Every bottle recorded as stored.
    async fn stored_bottles(&self) -> Result<BTreeMap<Sha256Digest, MirroredBottle>>;

    /// Records one committed bottle, durably, before returning.
    async fn record_stored(&self, sha256: &Sha256Digest, bottle: &MirroredBottle) -> Result<()>;
}

/// The journal's folder inside the mirror.
pub fn journal_prefix() -> String {
    format!("{INTERNAL_PREFIX}/journal")
}

pub struct JournalLedger {
    store: Arc<dyn BlobStore>,
}

impl JournalLedger {
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        JournalLedger { store }
    }

    pub async fn read_hash_file(&self) -> Result<MirrorRecord> {
        read_hash_file(self.store.as_ref()).await
    }

    async fn read_journal(&self) -> Result<Vec<(ObjectKey, Sha256Digest, MirroredBottle)>> {
        let mut entries = Vec::new();
        for key in self.store.list(&journal_prefix()).await? {
            let Some(bytes) = self.store.get(&key, 1024 * 1024).await? else {
                continue;
            };
            let entry: JournalEntry = serde_json::from_slice(&bytes).map_err(|e| {
                Error::hash_file(
                    format!("{}/{key}", self.store.location()),
                    format!("invalid journal entry: {e}"),
                )
            })?;
            entries.push((key, entry.sha256, entry.bottle));
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
            folded.push(key);
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
    let bytes = store
        .get(&hash_file_key(), MAX_HASH_FILE_BYTES)
        .await
        .map_err(|e| Error::hash_file(hash_file_location(store), e.to_string()))?;
    match bytes {
        None => Ok(MirrorRecord::default()),
        Some(bytes) => MirrorRecord::parse(&bytes)
            .map_err(|problem| Error::hash_file(hash_file_location(store), problem)),
    }
}

/// Merges `bottles` into the store's `bottles_hash.json` and writes it back
/// (validated first; replaced atomically, so readers see the old or the new
/// file). The one compaction used by `sync` and by the fleet.
pub async fn compact_into(
    store: &dyn BlobStore,
    bottles: impl IntoIterator<Item = (Sha256Digest, MirroredBottle)>,
) -> Result<MirrorRecord> {
    let mut record = read_hash_file(store).await?;
    record.bottles.extend(bottles);
    record.updated_at = Utc::now();
    let bytes = record
        .to_validated_json()
        .map_err(|problem| Error::hash_file(hash_file_location(store), problem))?;
    store.put_atomic(&hash_file_key(), bytes).await?;
    Ok(record)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalEntry {
    sha256: Sha256Digest,
    bottle: MirroredBottle,
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
        let key = ObjectKey::parse(&format!("{}/{sha256}.json", journal_prefix()))?;
        let entry = JournalEntry {
            sha256: sha256.clone(),
            bottle: bottle.clone(),
        };
        let bytes = serde_json::to_vec(&entry).expect("journal entries serialise");
        self.store.put_atomic(&key, bytes).await
    }
}
