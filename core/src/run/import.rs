//! `bottlesync import-hashes`: seeding the fleet ledger from a mirror built
//! by another tool (its hash file), so the next plan skips those bottles.

use chrono::Utc;
use serde::Serialize;

use crate::error::Result;
use crate::model::hash_file::{ExternalHashes, MirroredBottle};
use crate::model::key::ObjectKey;
use crate::model::tag::Tag;
use crate::ports::fleet_ledger::FleetLedger;

/// Keys of bottles imported from a hash file that gave only their digests:
/// they count as mirrored when planning, and compaction leaves them out of
/// `bottles_hash.json` (there is no object behind them in this mirror).
pub const IMPORTED_KEY_PREFIX: &str = "imported/";

#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    pub source: String,
    pub format: &'static str,
    pub in_file: usize,
    pub imported: usize,
    /// Already recorded as stored.
    pub skipped: usize,
}

/// Validates the whole file first (a bad file changes nothing), then records
/// its bottles as stored. Safe to run twice.
/// `hashes` is the parsed file, `source` where it came from.
pub async fn import_hashes(
    ledger: &dyn FleetLedger,
    hashes: ExternalHashes,
    source: &str,
) -> Result<ImportReport> {
    let now = Utc::now();
    let bottles: Vec<_> = hashes
        .digests
        .iter()
        .map(|sha| {
            let bottle = hashes
                .bottles
                .get(sha)
                .cloned()
                .unwrap_or_else(|| MirroredBottle {
                    name: "imported".into(),
                    version: "0".into(),
                    rebuild: 0,
                    tag: Tag::parse("all").expect("constant tag"),
                    key: ObjectKey::parse(&format!("{IMPORTED_KEY_PREFIX}{sha}"))
                        .expect("valid key"),
                    size: 0,
                    downloaded_at: now,
                });
            (sha.clone(), bottle)
        })
        .collect();
    let imported = ledger.import_stored(&bottles).await?;
    Ok(ImportReport {
        source: source.to_string(),
        format: hashes.format,
        in_file: bottles.len(),
        imported,
        skipped: bottles.len() - imported,
    })
}

/// Kept here so `finish::compact` and this module agree on what an import is.
pub fn is_imported_placeholder(bottle: &MirroredBottle) -> bool {
    bottle.key.as_str().starts_with(IMPORTED_KEY_PREFIX)
}
