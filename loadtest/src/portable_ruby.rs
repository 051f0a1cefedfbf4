//! Portable Ruby on the stand-in's registry, as ghcr.io serves
//! `homebrew/core/portable-ruby`: `tags/list` (one tag per version), an
//! OCI image index per version (`manifests[]` entries annotated
//! `<version>.<tag>` and the bottle's digest and size, like formula
//! bottles), and blobs with the same 401 challenge, bearer token and 307 to
//! storage. It is kept apart from the formulae: it is in no `formula.json`
//! and no per-tag API file (brew's vendor files pin it, not the API).
//!
//! The client-family rule is written again here, on purpose (the oracle
//! shares no code with bottlesync).

use std::sync::atomic::Ordering;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bottles::{self, BottleInfo, ResolvedCatalog};
use crate::catalog::{BottleSpec, Catalog, FormulaSpec};
use crate::manifest::IMAGE_INDEX_MEDIA_TYPE;
use crate::server::{SharedState, StandIn};
use crate::tags::{TagPlatform, parse_tag};

/// The registry image, and the name brew's file name starts with.
pub const PORTABLE_RUBY: &str = "portable-ruby";

/// The Ruby tags: one per client family (brew's `vendor/portable-ruby-*`).
pub const RUBY_TAGS: [&str; 4] = ["arm64_big_sur", "catalina", "x86_64_linux", "arm64_linux"];

/// One Portable Ruby version and its bottles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortableRubySpec {
    pub version: String,
    #[serde(default)]
    pub bottles: Vec<BottleSpec>,
}

impl PortableRubySpec {
    /// What the tricky and brew-mirror catalogs serve: 3.4.8 and 4.0.6
    /// (brew 6.0.18's), each for the four families.
    pub fn two_versions() -> Vec<PortableRubySpec> {
        ["3.4.8", "4.0.6"]
            .into_iter()
            .map(|version| PortableRubySpec {
                version: version.into(),
                bottles: RUBY_TAGS
                    .iter()
                    .map(|tag| BottleSpec::new(*tag, 30_000))
                    .collect(),
            })
            .collect()
    }

    /// As a formula, to resolve its bottles and render its image index
    /// with the formulae's own code (never served as a formula).
    fn as_formula(&self) -> FormulaSpec {
        FormulaSpec {
            bottles: self.bottles.clone(),
            ..FormulaSpec::new(PORTABLE_RUBY, self.version.clone())
        }
    }
}

/// The Ruby versions of `catalog`, hashed, with URLs under `registry_root`.
pub(crate) fn resolve(catalog: &Catalog, registry_root: &str) -> ResolvedCatalog {
    let formulae = catalog
        .portable_ruby()
        .iter()
        .map(PortableRubySpec::as_formula)
        .collect();
    bottles::resolve(&Catalog::from_formulae(formulae), registry_root)
}

/// `GET /v2/homebrew/core/<image>/tags/list`: the version tags, oldest
/// first, after the same auth as blobs; 404 for an image without tags.
pub(crate) fn tag_list(state: &SharedState, image: &str, headers: &HeaderMap) -> Response {
    if !state
        .tokens
        .authorizes(headers, image, state.require_token.load(Ordering::Relaxed))
    {
        return crate::registry::unauthorized(state, image);
    }
    if image != PORTABLE_RUBY || state.portable_ruby.formulae.is_empty() {
        return crate::registry::oci_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known",
        );
    }
    let tags: Vec<&str> = state
        .portable_ruby
        .formulae
        .iter()
        .map(|f| f.version.as_str())
        .collect();
    Json(json!({ "name": format!("homebrew/core/{image}"), "tags": tags })).into_response()
}

/// `portable-ruby/manifests/<version>`: that version's image index, or
/// `None` when there is no such version.
pub(crate) fn image_index(state: &SharedState, reference: &str) -> Option<Response> {
    let i = state
        .portable_ruby
        .formulae
        .iter()
        .position(|f| f.version == reference)?;
    let body = state.portable_ruby.image_index(i);
    Some(([(CONTENT_TYPE, IMAGE_INDEX_MEDIA_TYPE.to_string())], body).into_response())
}

/// The Ruby tag a client on `client` runs (`None` for `all` and tags the
/// stand-in does not know).
pub fn ruby_tag_of(client: &str) -> Option<&'static str> {
    Some(match parse_tag(client)? {
        TagPlatform::MacOs { arm64: true, .. } => "arm64_big_sur",
        TagPlatform::MacOs { arm64: false, .. } => "catalina",
        TagPlatform::Linux { arm64: false } => "x86_64_linux",
        TagPlatform::Linux { arm64: true } => "arm64_linux",
        TagPlatform::All => return None,
    })
}

impl StandIn {
    /// Ground truth: every Portable Ruby bottle served, version by version.
    pub fn portable_ruby_bottles(&self) -> Vec<BottleInfo> {
        self.state.portable_ruby.bottles.clone()
    }

    /// The Portable Ruby bottles a mirror for `client_tags` must hold under
    /// `versions` (every version served when `None`): each version's bottle
    /// for each client's family.
    pub fn expected_portable_ruby(
        &self,
        client_tags: &[&str],
        versions: Option<&[&str]>,
    ) -> Vec<BottleInfo> {
        let families: Vec<&str> = client_tags.iter().filter_map(|c| ruby_tag_of(c)).collect();
        self.state
            .portable_ruby
            .bottles
            .iter()
            .filter(|b| families.contains(&b.tag.as_str()))
            .filter(|b| versions.is_none_or(|v| v.contains(&b.version.as_str())))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_client_tags() {
        assert_eq!(ruby_tag_of("arm64_golden_gate"), Some("arm64_big_sur"));
        assert_eq!(ruby_tag_of("arm64_sequoia"), Some("arm64_big_sur"));
        assert_eq!(ruby_tag_of("sequoia"), Some("catalina"));
        assert_eq!(ruby_tag_of("x86_64_linux"), Some("x86_64_linux"));
        assert_eq!(ruby_tag_of("arm64_linux"), Some("arm64_linux"));
        assert_eq!(ruby_tag_of("all"), None);
    }

    #[test]
    fn ruby_is_resolved_apart_from_the_formulae() {
        let catalog = Catalog::brew_mirror();
        assert!(catalog.formula(PORTABLE_RUBY).is_none());
        let ruby = resolve(&catalog, "http://r/v2/homebrew/core");
        assert_eq!(ruby.bottles.len(), 8);
        let b = &ruby.bottles[0];
        assert_eq!(
            b.mirror_file_name,
            "portable-ruby-3.4.8.arm64_big_sur.bottle.tar.gz"
        );
        assert_eq!(
            b.url,
            format!(
                "http://r/v2/homebrew/core/portable-ruby/blobs/sha256:{}",
                b.sha256
            )
        );
        let index: serde_json::Value = serde_json::from_str(&ruby.image_index(1)).unwrap();
        let annotations = &index["manifests"][0]["annotations"];
        assert_eq!(
            annotations["org.opencontainers.image.ref.name"],
            "4.0.6.arm64_big_sur"
        );
        assert_eq!(
            annotations["sh.brew.bottle.digest"],
            ruby.bottles[4].sha256.as_str()
        );
    }
}
