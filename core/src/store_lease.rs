//! One `sync` at a time per S3 prefix: a lease held in the conditional
//! object `<prefix>/.bottlesync/lock`, the S3 counterpart of the directory
//! store's flock on the same name. Created only if absent (`If-None-Match:
//! *`), renewed with `If-Match` every third of its length while the run
//! lasts, taken over (again with `If-Match`) only once expired, and deleted
//! (if still ours) at the end. A run killed with SIGKILL leaves it to
//! expire. Expiry is the holder's clock; hosts are assumed to agree within
//! a small part of the lease length.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::lease::{Lease, Renewal};
use crate::model::key::ObjectKey;
use crate::ports::store::{BlobStore, INTERNAL_PREFIX, Precondition, PutIf, VersionToken};

/// How long a lease lasts without renewal: what a killed run costs the
/// next one.
pub const LEASE_LENGTH: Duration = Duration::from_secs(5 * 60);

/// Rounds of "someone else moved it first" before acquiring gives up.
const ACQUIRE_ATTEMPTS: usize = 5;

/// The lock object's name inside the store, as error messages show it.
pub fn lease_key_name() -> String {
    format!("{INTERNAL_PREFIX}/lock")
}

fn lease_key() -> ObjectKey {
    ObjectKey::parse(&lease_key_name()).expect("constant key")
}

/// What the lock object says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Unique per run.
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl LeaseRecord {
    fn holder(&self) -> String {
        format!(
            "held by {} pid {} since {}, until {}",
            self.host,
            self.pid,
            self.acquired_at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.expires_at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

fn expiry(from: DateTime<Utc>, length: Duration) -> DateTime<Utc> {
    from + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX)
}

/// A lease this run holds; renewed in the background until `release`.
pub struct StoreLease {
    lock: Arc<LockRenewal>,
    lease: Lease,
}

impl StoreLease {
    /// Takes the lease on `store`, or fails with a `Destination` error that
    /// names the lock object and its holder.
    pub async fn acquire(store: Arc<dyn BlobStore>, length: Duration) -> Result<StoreLease> {
        let key = lease_key();
        let shown = format!("{}/{}", store.location(), lease_key_name());
        let now = Utc::now();
        let mine = LeaseRecord {
            owner: format!("{:016x}", rand::random::<u64>()),
            host: host_name(),
            pid: std::process::id(),
            acquired_at: now,
            expires_at: expiry(now, length),
        };
        let bytes = serde_json::to_vec(&mine).expect("lease records serialise");
        for _ in 0..ACQUIRE_ATTEMPTS {
            if let PutIf::Written(version) = store
                .put_if(&key, bytes.clone(), Precondition::Absent)
                .await?
            {
                return Ok(Self::held(store, mine, version, length));
            }
            let Some((existing, version)) = store.get_versioned(&key, 64 * 1024).await? else {
                continue; // released in between: try to create it again
            };
            if existing == bytes {
                // Our create landed, its answer was lost, and the SDK's
                // retry found our own lock.
                return Ok(Self::held(store, mine, version, length));
            }
            let holder: LeaseRecord = serde_json::from_slice(&existing).map_err(|e| {
                Error::destination(
                    store.location(),
                    format!(
                        "{shown} is not a bottlesync lock ({}); delete it if no run is using this destination",
                        crate::serde_problem(&e)
                    ),
                )
            })?;
            if holder.expires_at > Utc::now() {
                return Err(Error::destination(
                    store.location(),
                    format!(
                        "another bottlesync run holds {} ({shown}: {})",
                        lease_key_name(),
                        holder.holder()
                    ),
                ));
            }
            tracing::warn!(
                lock = %shown,
                "taking over an expired lock ({}): that run stopped without releasing it",
                holder.holder()
            );
            if let PutIf::Written(version) = store
                .put_if(&key, bytes.clone(), Precondition::Matches(version))
                .await?
            {
                return Ok(Self::held(store, mine, version, length));
            }
        }
        Err(Error::destination(
            store.location(),
            format!("cannot take {shown}: it changed hands {ACQUIRE_ATTEMPTS} times while trying"),
        ))
    }

    fn held(
        store: Arc<dyn BlobStore>,
        record: LeaseRecord,
        version: VersionToken,
        length: Duration,
    ) -> StoreLease {
        tracing::info!(
            lock = %format!("{}/{}", store.location(), lease_key_name()),
            until = %record.expires_at,
            "took the run lock"
        );
        let lock = Arc::new(LockRenewal {
            store,
            record: Mutex::new((record, version)),
            length,
        });
        StoreLease {
            lease: Lease::keep(lock.clone(), length),
            lock,
        }
    }

    /// Fires if another run took the lease over (this run failed to renew
    /// it in time): the caller should stop.
    pub fn lost(&self) -> CancellationToken {
        self.lease.lost()
    }

    /// Stops renewing and deletes the lock object if it is still ours.
    /// Failures are logged: an undeleted lock only expires.
    pub async fn release(self) {
        self.lease.stop().await;
        let store = &self.lock.store;
        let shown = format!("{}/{}", store.location(), lease_key_name());
        let version = self.lock.record.lock().expect("lease record").1.clone();
        match store.delete_if(&lease_key(), &version).await {
            Ok(true) => tracing::info!(lock = %shown, "released the run lock"),
            Ok(false) => tracing::warn!(
                lock = %shown,
                "the run lock was taken over by another run before the end of this one"
            ),
            Err(e) => tracing::warn!(
                lock = %shown,
                error = %e,
                "cannot delete the run lock: it expires on its own"
            ),
        }
    }
}

/// Renews the lock object with `If-Match` on the version this run wrote
/// last. A refused renewal may be our own whose answer was lost: the
/// object then holds exactly what we wrote.
struct LockRenewal {
    store: Arc<dyn BlobStore>,
    record: Mutex<(LeaseRecord, VersionToken)>,
    length: Duration,
}

#[async_trait]
impl Renewal for LockRenewal {
    fn what(&self) -> String {
        format!("{}/{}", self.store.location(), lease_key_name())
    }

    async fn renew(&self) -> Result<bool> {
        let key = lease_key();
        let (mut next, version) = self.record.lock().expect("lease record").clone();
        next.expires_at = expiry(Utc::now(), self.length);
        let bytes = serde_json::to_vec(&next).expect("lease records serialise");
        match self
            .store
            .put_if(&key, bytes.clone(), Precondition::Matches(version))
            .await?
        {
            PutIf::Written(version) => {
                *self.record.lock().expect("lease record") = (next, version);
                Ok(true)
            }
            PutIf::PreconditionFailed => match self.store.get_versioned(&key, 64 * 1024).await? {
                Some((existing, version)) if existing == bytes => {
                    *self.record.lock().expect("lease record") = (next, version);
                    Ok(true)
                }
                _ => Ok(false),
            },
        }
    }
}
