//! `BottleJob`: everything needed to fetch, verify and store one bottle.
//! The same struct is a `sync` work item and (later) the body of an SQS message.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::model::digest::Sha256Digest;
use crate::model::key::ObjectKey;
use crate::model::tag::Tag;

/// Where a bottle's size estimate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSource {
    /// `sh.brew.bottle.size` in the registry manifest.
    Manifest,
    /// The blob's Content-Length.
    ContentLength,
    /// The last stored bottle of the same formula and tag.
    PreviousBottle,
    /// Nothing told us; a conservative default so no estimate is zero.
    Default,
    /// Not looked up yet.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleJob {
    pub name: String,
    /// The formula's version without revision (`3.6.0`).
    pub version: String,
    pub revision: u32,
    pub rebuild: u32,
    /// The tag of the bottle file itself (after fallback), e.g. `arm64_sequoia`.
    pub tag: Tag,
    pub sha256: Sha256Digest,
    pub url: Url,
    /// Estimated size in bytes; 0 when `size_source` is `Unknown`.
    pub size: u64,
    pub size_source: SizeSource,
    /// Where the verified bottle goes, relative to the mirror root.
    pub key: ObjectKey,
}

impl BottleJob {
    pub fn pkg_version(&self) -> String {
        crate::model::naming::pkg_version(&self.version, self.revision)
    }

    /// The manifest reference that sizes this bottle (`pkg_version[-rebuild]`).
    pub fn version_rebuild(&self) -> String {
        crate::model::naming::version_rebuild(&self.pkg_version(), self.rebuild)
    }

    /// `bottles/<mirror file name>`: the flat copy brew requests, made from
    /// the committed `key` before the bottle is recorded.
    pub fn flat_key(&self) -> ObjectKey {
        crate::model::layout::flat_key_of(&self.key)
    }

    /// `name pkg_version tag`, for logs and summaries.
    pub fn label(&self) -> String {
        format!("{} {} {}", self.name, self.pkg_version(), self.tag)
    }
}
