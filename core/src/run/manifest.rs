//! A run's manifest: every message a fleet run sends (or means to send),
//! with the queue it goes to, kept in the mirror's store at
//! `.bottlesync/runs/<run id>.json`. It is written before the first message
//! goes out, so whatever happens to the messages afterwards (lost, dead-
//! lettered uncounted, never sent because the planner died) the reconcile
//! and a resumed planner can still name every bottle of the run and send
//! it again. The reconcile deletes it when it closes the run.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::key::ObjectKey;
use crate::model::message::validate_run_id;
use crate::plan::route::Route;
use crate::ports::store::{DocumentStore, INTERNAL_PREFIX};

pub const MANIFEST_SCHEMA: u32 = 1;
/// 20,000 messages of ~1 KiB are 20 MiB; anything near this is not ours.
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunManifest {
    pub schema: u32,
    pub run_id: String,
    pub messages: Vec<ManifestMessage>,
}

/// One message of the run: its body, exactly as sent, and its queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestMessage {
    pub route: Route,
    pub body: String,
}

impl RunManifest {
    pub fn new(run_id: impl Into<String>, messages: Vec<ManifestMessage>) -> Self {
        RunManifest {
            schema: MANIFEST_SCHEMA,
            run_id: run_id.into(),
            messages,
        }
    }

    /// `.bottlesync/runs/<run id>.json`.
    pub fn key(run_id: &str) -> Result<ObjectKey> {
        validate_run_id(run_id).map_err(|problem| Error::config("run id", problem))?;
        ObjectKey::parse(&format!("{INTERNAL_PREFIX}/runs/{run_id}.json"))
    }

    /// Writes the manifest (replacing an older one of the same run atomically).
    pub async fn write(&self, store: &dyn DocumentStore) -> Result<()> {
        let bytes = serde_json::to_vec(self).expect("manifests serialise");
        store.put_atomic(&Self::key(&self.run_id)?, bytes).await
    }

    /// The manifest of `run_id`; `None` when the run has none (a run planned
    /// before manifests existed).
    pub async fn read(store: &dyn DocumentStore, run_id: &str) -> Result<Option<RunManifest>> {
        let key = Self::key(run_id)?;
        let Some(bytes) = store.get(&key, MAX_MANIFEST_BYTES).await? else {
            return Ok(None);
        };
        let location = format!("{}/{key}", store.location());
        let manifest: RunManifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::store(
                &location,
                format!("invalid run manifest: {}", crate::serde_problem(&e)),
            )
        })?;
        if manifest.schema != MANIFEST_SCHEMA || manifest.run_id != run_id {
            return Err(Error::store(
                location,
                format!(
                    "run manifest has schema {} and run id {:?}; expected schema {MANIFEST_SCHEMA} and {run_id:?}",
                    manifest.schema, manifest.run_id
                ),
            ));
        }
        Ok(Some(manifest))
    }

    /// Deletes the manifest of a run that is closed: nothing reads it any
    /// more (the reconcile re-sends only for runs still open). A manifest
    /// already gone is fine.
    pub async fn delete(store: &dyn DocumentStore, run_id: &str) -> Result<()> {
        store.delete(&[Self::key(run_id)?]).await
    }
}
