//! Where a local mirror's objects get their final names: a fully written,
//! fsynced temp file renamed to its key, durably. Both the store
//! (`local_store`) and its uploads (`local_upload`) publish through it.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bottlesync_core::error::{Error, Result};
use bottlesync_core::model::key::ObjectKey;

/// Renames fully written, fsynced temp files to their keys under `root`,
/// durably: the directory holding the new name is fsynced (the run records a
/// bottle as stored when `publish` returns), and so are the directories
/// above it up to the mirror root, but only until one is known to be
/// durable already. A folder created just now (the new dated folder), by
/// this call or a concurrent one, survives a crash only once the directory
/// holding it is synced; once this process has synced it, it needs no
/// second sync (about half of the fsyncs of a small bottle). Nothing is
/// assumed of folders found at start: a killed run may have left one whose
/// entry never reached the disk.
#[derive(Clone)]
pub(crate) struct Publisher {
    root: PathBuf,
    durable: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Publisher {
    pub(crate) fn new(root: &Path) -> Self {
        Publisher {
            root: root.to_path_buf(),
            durable: Arc::default(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) async fn publish(&self, temp: &Path, key: &ObjectKey) -> Result<()> {
        let this = self.clone();
        let (temp, key) = (temp.to_path_buf(), key.clone());
        tokio::task::spawn_blocking(move || this.publish_blocking(&temp, &key))
            .await
            .map_err(|e| Error::store(self.root.display().to_string(), e.to_string()))?
    }

    fn publish_blocking(&self, temp: &Path, key: &ObjectKey) -> Result<()> {
        let err = |p: String| Error::store(self.root.display().to_string(), p);
        let target = self.root.join(key.as_str());
        let parent = target.parent().expect("keys have a file name");
        // A folder this process made durable exists (nothing deletes folders).
        if !self.is_durable(parent) {
            std::fs::create_dir_all(parent)
                .map_err(|e| err(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::rename(temp, &target)
            .map_err(|e| err(format!("cannot rename into {}: {e}", target.display())))?;
        let sync = |dir: &Path| {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| err(format!("cannot sync directory {}: {e}", dir.display())))
        };
        sync(parent)?;
        // The entries of `parent` and of each folder above it that is not
        // yet known durable, up to the root.
        let mut newly_durable = Vec::new();
        let mut dir = parent;
        while dir != self.root && !self.is_durable(dir) {
            let Some(up) = dir.parent() else { break };
            sync(up)?;
            newly_durable.push(dir.to_path_buf());
            dir = up;
        }
        if !newly_durable.is_empty() {
            self.durable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(newly_durable);
        }
        Ok(())
    }

    fn is_durable(&self, dir: &Path) -> bool {
        self.durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(dir)
    }
}
