//! A formula version's OCI image index (`<image>/manifests/<version_rebuild>`,
//! homebrew.md "Sizes and manifests"): the sizes of its bottles for the
//! planner, and, stored byte for byte under `bottles/<image>/manifests/`,
//! the relocation data brew >= 6.0.13 asks a mirror for.

use std::collections::HashMap;

use serde::Deserialize;

use crate::model::digest::Sha256Digest;

/// Real indexes are tens of KB; refuse anything absurd.
pub const MAX_IMAGE_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// The annotation naming a bottle's sha256.
const DIGEST_ANNOTATION: &str = "sh.brew.bottle.digest";
/// The annotation giving a bottle's size in bytes.
const SIZE_ANNOTATION: &str = "sh.brew.bottle.size";
/// The annotation naming the entry: `<pkg_version>.<tag>[.<rebuild>]`.
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// An image index as fetched, with what bottlesync reads of it.
#[derive(Clone, Debug)]
pub struct ImageIndex {
    /// Byte for byte as the registry sent it: what the mirror stores.
    pub bytes: Vec<u8>,
    /// Every bottle digest of its `manifests[]`, with its size when the
    /// entry has a size annotation.
    bottles: HashMap<Sha256Digest, Option<u64>>,
    /// `(ref name, digest)` of every entry that has both, in index order.
    refs: Vec<(String, Sha256Digest)>,
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<RawManifest>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

impl ImageIndex {
    /// Fails when the body is not a JSON object with a `manifests` list;
    /// entries without a valid digest annotation are ignored.
    pub fn parse(bytes: Vec<u8>) -> Result<ImageIndex, String> {
        let raw: RawIndex = serde_json::from_slice(&bytes)
            .map_err(|e| format!("not an OCI image index: {}", crate::serde_problem(&e)))?;
        let (mut bottles, mut refs) = (HashMap::new(), Vec::new());
        for m in raw.manifests {
            let Some(Ok(digest)) = m
                .annotations
                .get(DIGEST_ANNOTATION)
                .map(|d| Sha256Digest::parse(d))
            else {
                continue;
            };
            let size = m
                .annotations
                .get(SIZE_ANNOTATION)
                .and_then(|s| s.parse().ok());
            if let Some(name) = m.annotations.get(REF_NAME_ANNOTATION) {
                refs.push((name.clone(), digest.clone()));
            }
            bottles.insert(digest, size);
        }
        Ok(ImageIndex {
            bytes,
            bottles,
            refs,
        })
    }

    /// `(ref name, digest)` of the entries that name both
    /// (`org.opencontainers.image.ref.name`, `sh.brew.bottle.digest`).
    pub fn refs(&self) -> impl Iterator<Item = (&str, &Sha256Digest)> {
        self.refs
            .iter()
            .map(|(name, digest)| (name.as_str(), digest))
    }

    /// The size the index gives a bottle, when it has a size annotation.
    pub fn size_of(&self, digest: &Sha256Digest) -> Option<u64> {
        self.bottles.get(digest).copied().flatten()
    }

    /// Whether a `manifests[]` entry names this bottle (what brew looks
    /// for to relocate it).
    pub fn names(&self, digest: &Sha256Digest) -> bool {
        self.bottles.contains_key(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_sizes_are_read_and_the_bytes_kept() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"annotations":{{"sh.brew.bottle.digest":"{a}","sh.brew.bottle.size":"123"}}}},
              {{"annotations":{{"sh.brew.bottle.digest":"{b}"}}}},
              {{"annotations":{{"sh.brew.bottle.digest":"nope"}}}},
              {{}}]}}"#
        );
        let index = ImageIndex::parse(text.clone().into_bytes()).unwrap();
        assert_eq!(index.bytes, text.as_bytes());
        let (a, b) = (
            Sha256Digest::parse(&a).unwrap(),
            Sha256Digest::parse(&b).unwrap(),
        );
        assert_eq!(index.size_of(&a), Some(123));
        assert_eq!(index.size_of(&b), None);
        assert!(index.names(&a) && index.names(&b));
        assert!(!index.names(&Sha256Digest::from_bytes(&[0; 32])));
        assert!(
            ImageIndex::parse(b"<html>".to_vec())
                .unwrap_err()
                .contains("not an OCI image index")
        );
    }
}
