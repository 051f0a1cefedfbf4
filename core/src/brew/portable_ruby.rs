//! Portable Ruby in the brew view: the bottles a run planned
//! (`bottlesync_core::plan::portable_ruby`) are kept in the published
//! record (and, for a fleet run, staged with its API files), publication
//! names the ones `bottles/` lacks, and `bottlesync verify` checks each
//! like a formula bottle: `bottles/<file>` present with the right sha256,
//! `bottles/portable-ruby/manifests/<version>` naming its digest. No API
//! file names them (brew's vendor files do), so they have their own section.

use std::collections::{BTreeMap, HashSet};

use crate::brew::publish::{MAX_PUBLISHED_RECORD_BYTES, WantedBottle};
use crate::brew::verify::TagReport;
use crate::error::{Error, Result};
use crate::model::hash_file::MirroredBottle;
use crate::ports::store::DocumentStore;
use crate::{ObjectKey, Sha256Digest};

/// The wanted Ruby bottles the mirror lacks (not stored under that name,
/// or no flat copy): brew on those clients fetches Ruby upstream.
pub fn missing(
    wanted: &[WantedBottle],
    stored: &BTreeMap<Sha256Digest, MirroredBottle>,
    present: &HashSet<String>,
) -> Vec<WantedBottle> {
    wanted
        .iter()
        .filter(|w| {
            let stored_as_wanted = stored
                .get(&w.sha256)
                .is_some_and(|b| b.key.file_name() == w.file_name);
            !(stored_as_wanted && present.contains(&w.file_name))
        })
        .cloned()
        .collect()
}

/// Stages a fleet run's Ruby bottles at `key` (none: nothing written).
pub async fn stage(
    store: &dyn DocumentStore,
    key: &ObjectKey,
    api: &crate::brew::publish::ApiFiles,
) -> Result<()> {
    if api.portable_ruby.is_empty() {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&api.portable_ruby).expect("wanted bottles serialise");
    store.put_atomic(key, bytes).await
}

/// The Ruby bottles a planner staged at `key`.
pub async fn read_staged(store: &dyn DocumentStore, key: &ObjectKey) -> Result<Vec<WantedBottle>> {
    let Some(bytes) = store.get(key, MAX_PUBLISHED_RECORD_BYTES).await? else {
        return Ok(Vec::new());
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::config(
            "staged API files",
            format!("{key}: {}", crate::serde_problem(&e)),
        )
    })
}

/// `portable-ruby: n/m bottles complete`, then each finding; nothing when
/// no Ruby was recorded.
pub fn render(report: &TagReport) -> String {
    if report.bottles == 0 {
        return String::new();
    }
    let mut out = format!(
        "portable-ruby: {}/{} bottles complete\n",
        report.complete, report.bottles
    );
    for f in &report.findings {
        out += &f.line();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tag;
    use crate::brew::publish::PublishedRecord;

    fn wanted(seed: u8, tag: &str) -> WantedBottle {
        WantedBottle {
            name: "portable-ruby".into(),
            version_rebuild: "4.0.6".into(),
            file_name: format!("portable-ruby-4.0.6.{tag}.bottle.tar.gz"),
            tag: Tag::parse(tag).unwrap(),
            sha256: Sha256Digest::from_bytes(&[seed; 32]),
        }
    }

    #[test]
    fn a_bottle_is_missing_unless_stored_under_its_name_and_flat_copied() {
        let (arm, intel, linux) = (
            wanted(1, "arm64_big_sur"),
            wanted(2, "catalina"),
            wanted(3, "x86_64_linux"),
        );
        let stored_as = |w: &WantedBottle, file: &str| MirroredBottle {
            name: w.name.clone(),
            version: "4.0.6".into(),
            rebuild: 0,
            tag: w.tag.clone(),
            key: ObjectKey::parse(&format!("2026-12-07/{file}")).unwrap(),
            size: 1,
            downloaded_at: chrono::Utc::now(),
        };
        let stored = BTreeMap::from([
            (arm.sha256.clone(), stored_as(&arm, &arm.file_name)),
            (intel.sha256.clone(), stored_as(&intel, &intel.file_name)),
            (linux.sha256.clone(), stored_as(&linux, "other-name.tar.gz")),
        ]);
        // catalina has no flat copy; x86_64_linux is stored under another name.
        let present = HashSet::from([arm.file_name.clone(), linux.file_name.clone()]);
        let gone = missing(&[arm, intel.clone(), linux.clone()], &stored, &present);
        assert_eq!(gone, [intel, linux]);
    }

    #[test]
    fn a_record_written_before_portable_ruby_still_reads() {
        let old = br#"{"schema":1,"published_at":"2026-12-01T00:00:00Z",
            "scope":{"formulae":[],"with_deps":false,"include_disabled":false},
            "tags":["arm64_tahoe"],"formula_jws":true}"#;
        let record: PublishedRecord = serde_json::from_slice(old).unwrap();
        assert!(record.portable_ruby.is_empty());
    }
}
