//! Request and byte counters, so tests and benchmarks can check what a
//! client did (how often it retried, whether it resumed, how much it
//! downloaded), not only what it ended up with.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counters of one bottle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleStats {
    /// GETs on the registry blob endpoint (whatever the answer).
    pub blob_requests: u64,
    /// HEADs on the registry blob endpoint.
    pub blob_head_requests: u64,
    /// GETs on the storage host (whatever the answer).
    pub storage_gets: u64,
    /// HEADs on the storage host.
    pub storage_head_requests: u64,
    /// Body bytes the storage host handed to the connection (a client that
    /// hangs up mid-body can leave up to a few hundred KiB unread in flight).
    pub bytes_served: u64,
    /// Storage GETs that carried a `Range` header.
    pub range_requests: u64,
}

/// A snapshot of all counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// GETs of `formula.json` and `formula.jws.json`.
    pub index_requests: u64,
    /// GETs of other API files (`formula/<name>.json`, `internal/...`).
    pub api_file_requests: u64,
    /// GETs of `/token`.
    pub token_requests: u64,
    /// GETs and HEADs on manifest URLs.
    pub manifest_requests: u64,
    /// HEADs anywhere (registry blobs, manifests, storage).
    pub head_requests: u64,
    /// GETs on registry blob URLs, known sha256 or not.
    pub blob_requests: u64,
    /// GETs on the storage host.
    pub storage_gets: u64,
    /// Body bytes sent by the storage host.
    pub bytes_served: u64,
    /// Storage GETs with a `Range` header.
    pub range_requests: u64,
    /// 401 answers (missing, wrong or out-of-scope credentials).
    pub unauthorized: u64,
    /// Storage requests rejected (400) for carrying an `Authorization` header.
    pub storage_auth_rejections: u64,
    /// Storage requests rejected (403) for a bad or expired signature.
    pub storage_signature_rejections: u64,
    /// Requests answered by an injected fault.
    pub faults_injected: u64,
    /// Per sha256; only bottles that saw a request.
    pub bottles: BTreeMap<String, BottleStats>,
    /// GETs and HEADs on the API host (`/api/...`, registry blobs and
    /// manifests, `/token`; not `/__standin/...`) per request path as sent
    /// (percent-encoded, no query), whatever the answer.
    #[serde(default)]
    pub paths: BTreeMap<String, u64>,
}

impl Stats {
    /// The counters of one bottle (zero when it saw no request).
    pub fn bottle(&self, sha256: &str) -> BottleStats {
        self.bottles.get(sha256).cloned().unwrap_or_default()
    }

    /// GETs and HEADs of one request path (zero when never asked).
    pub fn path(&self, path: &str) -> u64 {
        self.paths.get(path).copied().unwrap_or(0)
    }
}

/// Live counters of one bottle.
#[derive(Debug, Default)]
pub(crate) struct BottleCounters {
    pub blob_requests: AtomicU64,
    pub blob_head_requests: AtomicU64,
    pub storage_gets: AtomicU64,
    pub storage_head_requests: AtomicU64,
    pub bytes_served: AtomicU64,
    pub range_requests: AtomicU64,
}

/// Live totals.
#[derive(Debug, Default)]
pub(crate) struct TotalCounters {
    pub index_requests: AtomicU64,
    pub api_file_requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub manifest_requests: AtomicU64,
    pub head_requests: AtomicU64,
    pub blob_requests: AtomicU64,
    pub storage_gets: AtomicU64,
    pub bytes_served: AtomicU64,
    pub range_requests: AtomicU64,
    pub unauthorized: AtomicU64,
    pub storage_auth_rejections: AtomicU64,
    pub storage_signature_rejections: AtomicU64,
    pub faults_injected: AtomicU64,
    pub paths: Mutex<BTreeMap<String, u64>>,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn zero(counter: &AtomicU64) {
    counter.store(0, Ordering::Relaxed);
}

impl BottleCounters {
    pub fn snapshot(&self) -> BottleStats {
        BottleStats {
            blob_requests: read(&self.blob_requests),
            blob_head_requests: read(&self.blob_head_requests),
            storage_gets: read(&self.storage_gets),
            storage_head_requests: read(&self.storage_head_requests),
            bytes_served: read(&self.bytes_served),
            range_requests: read(&self.range_requests),
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.blob_requests,
            &self.blob_head_requests,
            &self.storage_gets,
            &self.storage_head_requests,
            &self.bytes_served,
            &self.range_requests,
        ] {
            zero(c);
        }
    }
}

impl TotalCounters {
    /// Counts one GET or HEAD of `path`.
    pub fn count_path(&self, path: &str) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        match paths.get_mut(path) {
            Some(n) => *n += 1,
            None => {
                paths.insert(path.to_string(), 1);
            }
        }
    }

    /// A snapshot with the given per-bottle counters.
    pub fn snapshot<'a>(
        &self,
        bottles: impl Iterator<Item = (&'a str, &'a BottleCounters)>,
    ) -> Stats {
        Stats {
            index_requests: read(&self.index_requests),
            api_file_requests: read(&self.api_file_requests),
            token_requests: read(&self.token_requests),
            manifest_requests: read(&self.manifest_requests),
            head_requests: read(&self.head_requests),
            blob_requests: read(&self.blob_requests),
            storage_gets: read(&self.storage_gets),
            bytes_served: read(&self.bytes_served),
            range_requests: read(&self.range_requests),
            unauthorized: read(&self.unauthorized),
            storage_auth_rejections: read(&self.storage_auth_rejections),
            storage_signature_rejections: read(&self.storage_signature_rejections),
            faults_injected: read(&self.faults_injected),
            bottles: bottles
                .map(|(sha, c)| (sha.to_string(), c.snapshot()))
                .filter(|(_, s)| *s != BottleStats::default())
                .collect(),
            paths: self.paths.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.index_requests,
            &self.api_file_requests,
            &self.token_requests,
            &self.manifest_requests,
            &self.head_requests,
            &self.blob_requests,
            &self.storage_gets,
            &self.bytes_served,
            &self.range_requests,
            &self.unauthorized,
            &self.storage_auth_rejections,
            &self.storage_signature_rejections,
            &self.faults_injected,
        ] {
            zero(c);
        }
        self.paths.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
