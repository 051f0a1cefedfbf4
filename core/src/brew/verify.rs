//! `bottlesync verify`: what an operator runs before pointing clients at a
//! mirror. It reads the published API files as a client would and checks,
//! per tag, every bottle they name for the formulae in scope: the flat file
//! is in `bottles/` with the right sha256 (its bytes hashed, not trusted
//! from a record), and the image index brew asks for is stored and names
//! the bottle.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::brew::publish::{MirrorScope, PublishedRecord, WantedBottle, flat_names};
use crate::error::{Error, Result};
use crate::model::image_index::{ImageIndex, MAX_IMAGE_INDEX_BYTES};
use crate::model::layout::{flat_bottle_key, manifest_key, packages_key};
use crate::model::packages::{MAX_PACKAGES_FILE_BYTES, PackagesFile};
use crate::ports::store::BlobStore;
use crate::{Sha256Digest, Tag};

/// What is wrong with one bottle an API file names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// No `bottles/<file>`: brew falls back to upstream.
    Missing,
    /// `bottles/<file>` holds other bytes: brew refuses the download.
    WrongSha256 { actual: String },
    /// No `bottles/<image>/manifests/<ref>`: brew installs without
    /// relocation data.
    ManifestMissing,
    /// The stored image index has no entry for this bottle's digest.
    ManifestLacksDigest,
    /// The stored image index is not one.
    ManifestUnreadable { problem: String },
    /// The API file's entry could not be read: whatever bottle it names,
    /// the mirror was never given it.
    EntryRejected { problem: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub formula: String,
    pub file: String,
    pub sha256: String,
    pub problem: Problem,
}

impl Finding {
    /// The finding as people read it, one indented line.
    pub fn line(&self) -> String {
        let what = match &self.problem {
            Problem::Missing => "missing from bottles/".to_string(),
            Problem::WrongSha256 { actual } => format!("wrong sha256 ({actual})"),
            Problem::ManifestMissing => "no manifest".to_string(),
            Problem::ManifestLacksDigest => "manifest lacks its digest".to_string(),
            Problem::ManifestUnreadable { problem } => format!("manifest unreadable: {problem}"),
            // No bottle could be read from the entry: the file names it.
            Problem::EntryRejected { problem } => return format!("  {}: {problem}\n", self.file),
        };
        format!(
            "  {} ({}): {what}\n",
            self.file,
            &self.sha256[..12.min(self.sha256.len())]
        )
    }
}

/// The check of one tag's API file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TagReport {
    /// Bottles the file names for the formulae in scope.
    pub bottles: usize,
    /// Of those, complete (file, sha256 and manifest right).
    pub complete: usize,
    /// Disabled formulae (`disable_args`) with a bottle the scope leaves
    /// out: brew refuses to install them.
    pub disabled_skipped: usize,
    pub findings: Vec<Finding>,
    /// The API file itself could not be read or parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_file_problem: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub mirror: String,
    pub scope: MirrorScope,
    pub tags: BTreeMap<Tag, TagReport>,
    /// Whether `api/formula.jws.json` (older clients) is published.
    pub formula_jws: bool,
    /// The Portable Ruby bottles the record names (`bottles` 0: none).
    pub portable_ruby: TagReport,
}

impl VerifyReport {
    pub fn complete(&self) -> bool {
        self.tags
            .values()
            .all(|t| t.findings.is_empty() && t.api_file_problem.is_none())
            && self.portable_ruby.findings.is_empty()
    }
}

/// Checks the mirror in `store` as its published API files describe it.
/// An error only when nothing was published (or the record is unreadable):
/// everything wrong with the mirror itself is in the report.
pub async fn verify(store: &dyn BlobStore) -> Result<VerifyReport> {
    let Some(record) = PublishedRecord::read(store).await? else {
        return Err(Error::Destination {
            location: store.location(),
            problem: "no API files were published here (no .bottlesync/published.json): run `bottlesync sync` (or let a fleet run finish) first".into(),
        });
    };
    let mut checks = BottleCheck {
        store,
        present: flat_names(store).await?,
        hashed: BTreeMap::new(),
        indexes: BTreeMap::new(),
    };
    let mut report = VerifyReport {
        mirror: store.location(),
        scope: record.scope.clone(),
        tags: BTreeMap::new(),
        formula_jws: record.formula_jws,
        portable_ruby: TagReport::default(),
    };
    for ruby in &record.portable_ruby {
        checks.record(&mut report.portable_ruby, ruby).await?;
    }
    for tag in &record.tags {
        let tag_report = report.tags.entry(tag.clone()).or_default();
        let key = packages_key(tag);
        let file = match store.get(&key, MAX_PACKAGES_FILE_BYTES).await? {
            None => Err(format!("{key} is missing")),
            Some(bytes) => PackagesFile::parse(tag, bytes).map_err(|p| format!("{key}: {p}")),
        };
        let file = match file {
            Ok(file) => file,
            Err(problem) => {
                tag_report.api_file_problem = Some(problem);
                continue;
            }
        };
        tag_report.disabled_skipped = record.scope.disabled_skipped(&file);
        for rejected in record.scope.rejections(&file) {
            tag_report.bottles += 1;
            tag_report.findings.push(Finding {
                formula: rejected.formula.clone(),
                file: key.to_string(),
                sha256: String::new(),
                problem: Problem::EntryRejected {
                    problem: rejected.to_string(),
                },
            });
        }
        for wanted in record.scope.wanted_bottles(&file) {
            checks.record(tag_report, &wanted).await?;
        }
    }
    Ok(report)
}

/// Checks bottles as a client fetches them: the flat file is there, its
/// bytes have the wanted sha256, and its stored image index names it. A
/// file named by several tags is hashed once, an image index read once.
struct BottleCheck<'a> {
    store: &'a dyn BlobStore,
    /// The flat names under `bottles/`.
    present: HashSet<String>,
    hashed: BTreeMap<String, Result<Sha256Digest>>,
    indexes: BTreeMap<String, std::result::Result<ImageIndex, Problem>>,
}

impl BottleCheck<'_> {
    /// Checks `wanted` and counts it in `report`: complete, or a finding.
    async fn record(&mut self, report: &mut TagReport, wanted: &WantedBottle) -> Result<()> {
        report.bottles += 1;
        match self.problem(wanted).await? {
            None => report.complete += 1,
            Some(problem) => report.findings.push(Finding {
                formula: wanted.name.clone(),
                file: wanted.file_name.clone(),
                sha256: wanted.sha256.to_string(),
                problem,
            }),
        }
        Ok(())
    }

    /// What is wrong with `wanted`, if anything. An error only when the
    /// store cannot be read at all.
    async fn problem(&mut self, wanted: &WantedBottle) -> Result<Option<Problem>> {
        if !self.present.contains(&wanted.file_name) {
            return Ok(Some(Problem::Missing));
        }
        if !self.hashed.contains_key(&wanted.file_name) {
            let digest = hash_object(self.store, &flat_bottle_key(&wanted.file_name)?).await;
            self.hashed.insert(wanted.file_name.clone(), digest);
        }
        match &self.hashed[&wanted.file_name] {
            Ok(actual) if *actual == wanted.sha256 => {}
            Ok(actual) => {
                return Ok(Some(Problem::WrongSha256 {
                    actual: actual.to_string(),
                }));
            }
            Err(e) => {
                return Ok(Some(Problem::WrongSha256 {
                    actual: format!("unreadable: {e}"),
                }));
            }
        }
        let manifest = manifest_key(&wanted.name, &wanted.version_rebuild)?;
        if !self.indexes.contains_key(manifest.as_str()) {
            let index = match self.store.get(&manifest, MAX_IMAGE_INDEX_BYTES).await? {
                None => Err(Problem::ManifestMissing),
                Some(bytes) => ImageIndex::parse(bytes)
                    .map_err(|problem| Problem::ManifestUnreadable { problem }),
            };
            self.indexes.insert(manifest.as_str().to_string(), index);
        }
        Ok(match &self.indexes[manifest.as_str()] {
            Ok(index) if index.names(&wanted.sha256) => None,
            Ok(_) => Some(Problem::ManifestLacksDigest),
            Err(problem) => Some(problem.clone()),
        })
    }
}

/// The sha256 of an object's bytes, streamed.
async fn hash_object(store: &dyn BlobStore, key: &crate::ObjectKey) -> Result<Sha256Digest> {
    let Some(mut object) = store.open_read(key).await? else {
        return Err(Error::Destination {
            location: format!("{}/{key}", store.location()),
            problem: "disappeared while verifying".into(),
        });
    };
    let mut hasher = Sha256::new();
    while let Some(chunk) = object.chunk().await? {
        hasher.update(&chunk);
    }
    Ok(Sha256Digest::from_bytes(&hasher.finalize()))
}

/// The report as people read it: per tag a line, then every finding.
pub fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    for (tag, tag_report) in &report.tags {
        out += &format!(
            "{tag}: {}/{} bottles complete{}{}\n",
            tag_report.complete,
            tag_report.bottles,
            match tag_report.disabled_skipped {
                0 => String::new(),
                n => format!(", {n} disabled formulae skipped"),
            },
            tag_report
                .api_file_problem
                .as_deref()
                .map(|p| format!(" (API file: {p})"))
                .unwrap_or_default()
        );
        for f in &tag_report.findings {
            out += &f.line();
        }
    }
    if report.tags.is_empty() {
        out += "no per-tag API files published\n";
    }
    out += &super::portable_ruby::render(&report.portable_ruby);
    // A bottle named by several tags is one problem; rejected entries share
    // their API file's name, so the formula tells them apart.
    let unique: HashSet<(&str, &str)> = report
        .tags
        .values()
        .chain([&report.portable_ruby])
        .flat_map(|t| {
            t.findings
                .iter()
                .map(|f| (f.file.as_str(), f.formula.as_str()))
        })
        .collect();
    out += &if report.complete() {
        format!("{}: complete\n", report.mirror)
    } else {
        format!(
            "{}: INCOMPLETE ({} bottles with problems)\n",
            report.mirror,
            unique.len()
        )
    };
    out
}
