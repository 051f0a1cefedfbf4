//! `core::brew::publish` over a real directory store, watched write by
//! write: the flat copies come first (and an older record's entries are
//! rewritten to name them), then `.bottlesync/published.json`,
//! then the API files, so a client never reads an API file naming a bottle
//! the mirror could have but does not have yet. And a bottle the mirror
//! lacks is named, not waited for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bottlesync_adapters::local::local_store::LocalStore;
use bottlesync_core::brew::publish::{ApiFiles, MirrorScope, publish};
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::model::packages::PackagesFile;
use bottlesync_core::ports::store::{
    BlobReader, BlobStore, BlobWriter, DocumentStore, ObjectRead, Precondition, PutIf,
    StoreLocation, Upload, VersionToken,
};
use bottlesync_core::{ObjectKey, Result, Sha256Digest, Tag};
use chrono::Utc;

/// A directory store that records every write, in order.
struct Recording {
    inner: LocalStore,
    writes: Mutex<Vec<String>>,
}

impl Recording {
    fn note(&self, what: String) {
        self.writes.lock().unwrap().push(what);
    }
}

impl StoreLocation for Recording {
    fn location(&self) -> String {
        self.inner.location()
    }
}

#[async_trait]
impl BlobStore for Recording {
    async fn check_usable(&self) -> Result<()> {
        self.inner.check_usable().await
    }
}

#[async_trait]
impl BlobWriter for Recording {
    async fn begin(
        &self,
        key: &ObjectKey,
        expected: &Sha256Digest,
        size_hint: u64,
    ) -> Result<Box<dyn Upload>> {
        self.inner.begin(key, expected, size_hint).await
    }
    async fn put_flat_copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<()> {
        self.note(format!("flat {to}"));
        self.inner.put_flat_copy(from, to).await
    }
}

#[async_trait]
impl DocumentStore for Recording {
    async fn put_atomic(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<()> {
        self.note(format!("put {key}"));
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
        self.note(format!("put_if {key}"));
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
impl BlobReader for Recording {
    async fn open_read(&self, key: &ObjectKey) -> Result<Option<ObjectRead>> {
        self.inner.open_read(key).await
    }
}

fn tag() -> Tag {
    Tag::parse("arm64_tahoe").unwrap()
}

fn sha(seed: u8) -> Sha256Digest {
    Sha256Digest::from_bytes(&[seed; 32])
}

/// A per-tag file naming `wget` and `curl`, the first two bottles.
fn packages() -> PackagesFile {
    let payload = serde_json::json!({"formulae": {
        "wget": {"stable_version": "1.25.0", "bottle_checksum": sha(1).to_string()},
        "curl": {"stable_version": "8.17.0", "bottle_rebuild": 1, "bottle_checksum": sha(2).to_string()},
    }})
    .to_string();
    let bytes = serde_json::to_vec(&serde_json::json!({"payload": payload})).unwrap();
    PackagesFile::parse(&tag(), bytes).unwrap()
}

fn stored(name: &str, version: &str, rebuild: u32, file: &str) -> MirroredBottle {
    MirroredBottle {
        name: name.into(),
        version: version.into(),
        rebuild,
        tag: tag(),
        key: ObjectKey::parse(&format!("2026-11-29/{file}")).unwrap(),
        size: 5,
        downloaded_at: Utc::now(),
    }
}

#[tokio::test]
async fn flat_copies_then_the_record_then_the_api_files_and_what_is_lacking_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Recording {
        inner: LocalStore::open(dir.path()).unwrap(),
        writes: Mutex::new(vec![]),
    });
    // wget was stored (by a bottlesync older than flat copies); curl failed.
    let wget = "wget-1.25.0.arm64_tahoe.bottle.tar.gz";
    std::fs::create_dir_all(dir.path().join("2026-11-29")).unwrap();
    std::fs::write(dir.path().join("2026-11-29").join(wget), b"bytes").unwrap();
    let bottles = BTreeMap::from([(sha(1), stored("wget", "1.25.0", 0, wget))]);
    let api = ApiFiles {
        packages: BTreeMap::from([(tag(), packages())]),
        formula_jws: Some(b"[]".to_vec()),
        scope: MirrorScope::default(),
        ..ApiFiles::default()
    };

    let report = publish(store.as_ref(), &bottles, &api).await.unwrap();

    assert_eq!(report.flat_copies, 1);
    assert_eq!(
        report.missing_labels(),
        [format!(
            "curl-8.17.0.arm64_tahoe.bottle.1.tar.gz ({})",
            &sha(2).as_str()[..12]
        )]
    );
    assert_eq!(
        *store.writes.lock().unwrap(),
        [
            format!("flat bottles/{wget}"),
            "put_if bottles_hash.json".to_string(),
            "put .bottlesync/published.json".to_string(),
            "put api/internal/packages.arm64_tahoe.jws.json".to_string(),
            "put api/formula.jws.json".to_string(),
        ]
    );
    assert_eq!(
        std::fs::read(
            dir.path()
                .join("api/internal/packages.arm64_tahoe.jws.json")
        )
        .unwrap(),
        api.packages[&tag()].bytes
    );
    // The older entry now names the flat copy, the object that stays.
    let record = bottlesync_core::mirror_record::read_hash_file(store.as_ref())
        .await
        .unwrap();
    assert_eq!(
        record.bottles[&sha(1)].key.as_str(),
        format!("bottles/{wget}")
    );
}

/// Files of an older generation (a run planned first that finishes last)
/// never replace newer ones: nothing is written, and the report says why.
#[tokio::test]
async fn older_api_files_never_replace_newer_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Recording {
        inner: LocalStore::open(dir.path()).unwrap(),
        writes: Mutex::new(vec![]),
    });
    let newer = Utc::now();
    let older = newer - chrono::Duration::minutes(5);
    let api = |fetched_at, formula_jws: &[u8]| ApiFiles {
        packages: BTreeMap::from([(tag(), packages())]),
        formula_jws: Some(formula_jws.to_vec()),
        fetched_at,
        ..ApiFiles::default()
    };
    let bottles = BTreeMap::new();
    let first = publish(store.as_ref(), &bottles, &api(newer, b"[\"new\"]"))
        .await
        .unwrap();
    assert_eq!(first.superseded_by, None);
    store.writes.lock().unwrap().clear();

    let late = publish(store.as_ref(), &bottles, &api(older, b"[\"old\"]"))
        .await
        .unwrap();

    assert_eq!(late.superseded_by, Some(newer));
    assert!(late.api_files.is_empty());
    assert_eq!(*store.writes.lock().unwrap(), Vec::<String>::new());
    assert_eq!(
        std::fs::read(dir.path().join("api/formula.jws.json")).unwrap(),
        b"[\"new\"]"
    );
    let record = bottlesync_core::brew::publish::PublishedRecord::read(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.generation, Some(newer));
}
