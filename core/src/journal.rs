//! `JournalLedger`, the `Ledger` of a `sync`, kept in the store itself:
//! `bottles_hash.json` plus small journal objects for the bottles stored
//! since the last compaction, each written (durably) before its bottles
//! count as stored, so a crash loses at most the bottles in flight and a
//! rerun resumes. Group commit: while one journal object is being written,
//! the bottles committed meanwhile wait and go into the next one together
//! (one write and fsync for many small bottles; no bottle waits for a timer).
//! Compaction folds the journal into `bottles_hash.json` through
//! [`crate::mirror_record`], as the fleet's finisher does.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::mirror_record::{compact_into, read_hash_file};
use crate::model::digest::Sha256Digest;
use crate::model::hash_file::{MirrorRecord, MirroredBottle};
use crate::model::key::ObjectKey;
use crate::ports::ledger::Ledger;
use crate::ports::store::{BlobStore, INTERNAL_PREFIX};

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
