//! Where a brew-usable mirror keeps what clients request (homebrew.md,
//! "What a brew-usable mirror serves"), beside the dated folders and
//! `bottles_hash.json`:
//!
//! ```text
//! <dest>/bottles/<mirror file name>               HOMEBREW_BOTTLE_DOMAIN=<base>/bottles
//! <dest>/bottles/<image>/manifests/<ref>          the upstream OCI image index
//! <dest>/api/internal/packages.<tag>.jws.json     HOMEBREW_API_DOMAIN=<base>/api (brew >= 6)
//! <dest>/api/formula.jws.json                     older clients
//! <dest>/<YYYY-MM-DD>/<mirror file name>         the archive: what one run downloaded
//! ```
//!
//! `bottles_hash.json` names a bottle's flat key, the object that stays; the
//! dated object is where the bottle was first committed (verified), and on
//! S3 it carries the [`ARCHIVE_TAG`], which the storage's archive lifecycle
//! rule expires after `archive_days`, so that a bottle's bytes are stored
//! once at steady state.
//!
//! Stored names carry a literal `@` or `+` (`openssl@3-...`); a client
//! percent-encodes them in its request, a server decodes them.

use crate::model::key::ObjectKey;
use crate::model::naming::image_name;
use crate::model::tag::Tag;
use crate::{Error, Result};

/// The folder `HOMEBREW_BOTTLE_DOMAIN` points at.
pub const BOTTLES_DIR: &str = "bottles";
/// The folder `HOMEBREW_API_DOMAIN` points at.
pub const API_DIR: &str = "api";
/// The API file of brew 4.x and 5.x, published beside the per-tag ones.
pub const FORMULA_JWS_FILE: &str = "formula.jws.json";

pub const CONTENT_TYPE_BOTTLE: &str = "application/gzip";
pub const CONTENT_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_OTHER: &str = "application/octet-stream";

/// The object tag (key, value) S3 puts on every object of a dated folder,
/// and on nothing else: the archive lifecycle rule
/// (`terraform/modules/storage`) expires exactly the objects that carry it.
/// A lifecycle filter takes a key prefix, and no prefix matches exactly the
/// `<YYYY-MM-DD>/` folders (`<prefix>/2` would match any other name starting
/// with a 2), while a tag is on exactly the objects written with it; flat
/// copies are made without it (`TaggingDirective: REPLACE`).
pub const ARCHIVE_TAG: (&str, &str) = ("bottlesync-archive", "dated");

/// The tags `key` is stored with: the [`ARCHIVE_TAG`] for a dated bottle
/// (`<YYYY-MM-DD>/<file>`), none for anything else.
pub fn archive_tag(key: &ObjectKey) -> Option<(&'static str, &'static str)> {
    key.is_dated().then_some(ARCHIVE_TAG)
}

/// `packages.<tag>.jws.json`: the per-tag API file brew >= 6 fetches.
pub fn packages_file_name(tag: &Tag) -> String {
    format!("packages.{tag}.jws.json")
}

/// `bottles/<mirror file name>`: the flat name brew requests.
pub fn flat_bottle_key(file_name: &str) -> Result<ObjectKey> {
    if file_name.contains('/') {
        return Err(Error::Key {
            key: crate::shorten(file_name, 200),
            problem: "a bottle file name must not contain '/'".into(),
        });
    }
    ObjectKey::parse(&format!("{BOTTLES_DIR}/{file_name}"))
}

/// `bottles/<file name of key>`: the flat key of the bottle stored at
/// `key`. Cannot fail: the last component of a valid key is a valid name.
pub fn flat_key_of(key: &ObjectKey) -> ObjectKey {
    flat_bottle_key(key.file_name()).expect("the file name of a valid key makes a valid flat key")
}

/// `bottles/<image>/manifests/<version_rebuild>` of a formula: where brew
/// >= 6.0.13 asks a bottle domain for the image index (not percent-encoded).
pub fn manifest_key(formula: &str, version_rebuild: &str) -> Result<ObjectKey> {
    ObjectKey::parse(&format!(
        "{BOTTLES_DIR}/{}/manifests/{version_rebuild}",
        image_name(formula)
    ))
}

/// `api/internal/packages.<tag>.jws.json`.
pub fn packages_key(tag: &Tag) -> ObjectKey {
    ObjectKey::parse(&format!("{API_DIR}/internal/{}", packages_file_name(tag)))
        .expect("a tag makes a valid key")
}

/// `api/formula.jws.json`.
pub fn formula_jws_key() -> ObjectKey {
    ObjectKey::parse(&format!("{API_DIR}/{FORMULA_JWS_FILE}")).expect("a constant valid key")
}

/// The `Content-Type` an object is stored and served with, from its key:
/// bottles are gzip (never `text/*`, never a `Content-Encoding`: brew
/// checks the sha256 of the bytes as stored), manifests are OCI image
/// indexes, API and bookkeeping files JSON.
pub fn content_type(key: &ObjectKey) -> &'static str {
    let key = key.as_str();
    if key.ends_with(".tar.gz") {
        CONTENT_TYPE_BOTTLE
    } else if key.starts_with(&format!("{BOTTLES_DIR}/")) && key.contains("/manifests/") {
        CONTENT_TYPE_IMAGE_INDEX
    } else if key.ends_with(".json") {
        CONTENT_TYPE_JSON
    } else {
        CONTENT_TYPE_OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_what_brew_requests() {
        assert_eq!(
            flat_bottle_key("openssl@3-3.4.0_1.arm64_sequoia.bottle.tar.gz")
                .unwrap()
                .as_str(),
            "bottles/openssl@3-3.4.0_1.arm64_sequoia.bottle.tar.gz"
        );
        assert!(flat_bottle_key("a/b.tar.gz").is_err());
        assert!(flat_bottle_key("..").is_err());
        assert_eq!(
            manifest_key("openssl@3", "3.4.0_1-2").unwrap().as_str(),
            "bottles/openssl/3/manifests/3.4.0_1-2"
        );
        assert_eq!(
            manifest_key("gtk+3", "3.24.43").unwrap().as_str(),
            "bottles/gtkx3/manifests/3.24.43"
        );
        let tag = Tag::parse("arm64_tahoe").unwrap();
        assert_eq!(
            packages_key(&tag).as_str(),
            "api/internal/packages.arm64_tahoe.jws.json"
        );
        assert_eq!(formula_jws_key().as_str(), "api/formula.jws.json");
    }

    #[test]
    fn only_dated_bottles_carry_the_archive_tag() {
        let of = |key: &str| archive_tag(&ObjectKey::parse(key).unwrap());
        assert_eq!(
            of("2026-11-29/wget-1.25.0.tahoe.bottle.1.tar.gz"),
            Some(("bottlesync-archive", "dated"))
        );
        for kept in [
            "bottles/wget-1.25.0.tahoe.bottle.1.tar.gz",
            "bottles/openssl/3/manifests/3.4.0",
            "api/internal/packages.tahoe.jws.json",
            "api/formula.jws.json",
            "bottles_hash.json",
            ".bottlesync/journal/x.json",
            ".bottlesync/published.json",
        ] {
            assert_eq!(of(kept), None, "{kept}");
        }
    }

    #[test]
    fn content_types_follow_the_reference() {
        let of = |key: &str| content_type(&ObjectKey::parse(key).unwrap());
        assert_eq!(
            of("bottles/wget-1.25.0.tahoe.bottle.1.tar.gz"),
            CONTENT_TYPE_BOTTLE
        );
        assert_eq!(
            of("2026-11-29/wget-1.25.0.tahoe.bottle.tar.gz"),
            CONTENT_TYPE_BOTTLE
        );
        assert_eq!(
            of("bottles/openssl/3/manifests/3.4.0"),
            CONTENT_TYPE_IMAGE_INDEX
        );
        assert_eq!(
            of("api/internal/packages.tahoe.jws.json"),
            CONTENT_TYPE_JSON
        );
        assert_eq!(of("bottles_hash.json"), CONTENT_TYPE_JSON);
        assert_eq!(of(".bottlesync/journal/x"), CONTENT_TYPE_OTHER);
    }
}
