//! `sync`'s journal over a real directory store: bottles recorded while a
//! journal object is being written go into the next object together (group
//! commit), every one is durable when its `record_stored` returns, and the
//! one-entry objects older versions wrote are still read and folded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bottlesync_adapters::local::local_store::LocalStore;
use bottlesync_core::journal::{JournalLedger, journal_prefix};
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::ports::ledger::Ledger;
use bottlesync_core::ports::store::{
    BlobReader, BlobStore, BlobWriter, DocumentStore, ObjectRead, Precondition, PutIf,
    StoreLocation, Upload, VersionToken,
};
use bottlesync_core::{ObjectKey, Result, Sha256Digest, Tag};
use chrono::Utc;

/// A directory store whose first journal write is slow (a slow disk's
/// fsync), counting journal writes.
struct SlowFirstWrite {
    inner: LocalStore,
    journal_writes: AtomicUsize,
}

impl StoreLocation for SlowFirstWrite {
    fn location(&self) -> String {
        self.inner.location()
    }
}

#[async_trait]
impl BlobStore for SlowFirstWrite {
    async fn check_usable(&self) -> Result<()> {
        self.inner.check_usable().await
    }
}

#[async_trait]
impl BlobWriter for SlowFirstWrite {
    async fn begin(
        &self,
        key: &ObjectKey,
        expected: &Sha256Digest,
        size_hint: u64,
    ) -> Result<Box<dyn Upload>> {
        self.inner.begin(key, expected, size_hint).await
    }
    async fn put_flat_copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<()> {
        self.inner.put_flat_copy(from, to).await
    }
}

#[async_trait]
impl DocumentStore for SlowFirstWrite {
    async fn put_atomic(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<()> {
        if key.as_str().starts_with(&journal_prefix())
            && self.journal_writes.fetch_add(1, Ordering::SeqCst) == 0
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.inner.put_atomic(key, bytes).await
    }
    async fn get_versioned(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, VersionToken)>> {
        self.inner.get_versioned(key, max_bytes).await
    }
    async fn put_if(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        precondition: Precondition,
    ) -> Result<PutIf> {
        self.inner.put_if(key, bytes, precondition).await
    }
    async fn delete_if(&self, key: &ObjectKey, version: &VersionToken) -> Result<bool> {
        self.inner.delete_if(key, version).await
    }
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        self.inner.get(key, max_bytes).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, keys: &[ObjectKey]) -> Result<()> {
        self.inner.delete(keys).await
    }
}

#[async_trait]
impl BlobReader for SlowFirstWrite {
    async fn open_read(&self, key: &ObjectKey) -> Result<Option<ObjectRead>> {
        self.inner.open_read(key).await
    }
}

fn bottle(i: u32) -> (Sha256Digest, MirroredBottle) {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    (
        Sha256Digest::from_bytes(&seed),
        MirroredBottle {
            name: format!("f{i}"),
            version: "1.0".into(),
            rebuild: 0,
            tag: Tag::parse("arm64_tahoe").unwrap(),
            key: ObjectKey::parse(&format!("2026-11-29/f{i}-1.0.arm64_tahoe.bottle.tar.gz"))
                .unwrap(),
            size: 5,
            downloaded_at: Utc::now(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bottles_recorded_during_a_journal_write_share_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SlowFirstWrite {
        inner: LocalStore::open(dir.path()).unwrap(),
        journal_writes: AtomicUsize::new(0),
    });
    let ledger = Arc::new(JournalLedger::new(store.clone()));
    let first = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let (sha, record) = bottle(0);
            ledger.record_stored(&sha, &record).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // 49 more while the first write is slow.
    let rest: Vec<_> = (1..50)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let (sha, record) = bottle(i);
                ledger.record_stored(&sha, &record).await
            })
        })
        .collect();
    first.await.unwrap().unwrap();
    for task in rest {
        task.await.unwrap().unwrap();
    }
    let writes = store.journal_writes.load(Ordering::SeqCst);
    assert!(
        writes <= 3,
        "50 bottles took {writes} journal writes: no group commit"
    );
    let objects = store.list(&journal_prefix()).await.unwrap();
    assert_eq!(objects.len(), writes);

    // Every bottle is there, from a fresh ledger (as after a crash).
    let reread = JournalLedger::new(Arc::new(LocalStore::open_read_only(dir.path())));
    let stored = reread.stored_bottles().await.unwrap();
    assert_eq!(stored.len(), 50);
    for i in 0..50 {
        let (sha, record) = bottle(i);
        assert_eq!(
            stored.get(&sha).map(|b| &b.key),
            Some(&record.key),
            "bottle {i}"
        );
    }
}

#[tokio::test]
async fn one_entry_objects_of_older_versions_are_read_and_folded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    let (old_sha, old) = bottle(7);
    let entry = serde_json::json!({"sha256": old_sha.to_string(), "bottle": old});
    store
        .put_atomic(
            &ObjectKey::parse(&format!("{}/{old_sha}.json", journal_prefix())).unwrap(),
            serde_json::to_vec(&entry).unwrap(),
        )
        .await
        .unwrap();
    let ledger = JournalLedger::new(store.clone());
    let (new_sha, new) = bottle(8);
    ledger.record_stored(&new_sha, &new).await.unwrap();
    let stored = ledger.stored_bottles().await.unwrap();
    assert_eq!(stored.get(&old_sha).map(|b| &b.key), Some(&old.key));
    assert_eq!(stored.get(&new_sha).map(|b| &b.key), Some(&new.key));

    let record = ledger.compact().await.unwrap();
    assert_eq!(record.bottles.len(), 2);
    assert!(
        store.list(&journal_prefix()).await.unwrap().is_empty(),
        "the folded objects are deleted"
    );
}
