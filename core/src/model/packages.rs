//! The per-tag API file brew >= 6 installs from
//! (`{api}/internal/packages.<tag>.jws.json`, homebrew.md "How clients use
//! a mirror"): a signed JWS whose payload names, per formula, exactly the
//! bottle a client on that tag requests. The mirror plans from it and
//! publishes it byte for byte, so the two can never disagree.
//!
//! Serialisation upstream drops blank values and zeros: no `revision` means
//! 0, no `bottle_rebuild` means 0, no `bottle_checksum` means no bottle for
//! this tag, and `bottle_tag` is there only when the bottle is of another
//! tag (`all`, or an older macOS).

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::digest::Sha256Digest;
use crate::model::index::Rejection;
use crate::model::naming::{
    checked_mirror_file_name, pkg_version, validate_formula_name, validate_version, version_rebuild,
};
use crate::model::tag::Tag;

/// Upstream's files are a few MB; refuse anything absurd.
pub const MAX_PACKAGES_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// One per-tag API file, validated, with the bytes as fetched.
#[derive(Clone, Debug)]
pub struct PackagesFile {
    /// The client tag the file is for.
    pub tag: Tag,
    /// Byte for byte as fetched: what the mirror publishes (brew checks the
    /// signature, so not one byte may change).
    pub bytes: Vec<u8>,
    pub formulae: BTreeMap<String, PackageEntry>,
    /// Entries set aside, each with its reason.
    pub rejections: Vec<Rejection>,
}

/// What a client on the file's tag installs for one formula.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageEntry {
    pub name: String,
    /// `stable_version`, without revision.
    pub version: String,
    pub revision: u32,
    pub rebuild: u32,
    /// The bottle brew installs, `None` when the formula has none for this
    /// client.
    pub bottle: Option<ClientBottle>,
    /// Runtime dependencies (`stable_dependencies` without build and test).
    pub dependencies: Vec<String>,
    pub disabled: bool,
}

/// The bottle a client requests: its own tag's, or a fallback's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientBottle {
    pub tag: Tag,
    pub sha256: Sha256Digest,
}

impl PackageEntry {
    pub fn pkg_version(&self) -> String {
        pkg_version(&self.version, self.revision)
    }

    /// The manifest reference brew asks for (`pkg_version[-rebuild]`).
    pub fn version_rebuild(&self) -> String {
        version_rebuild(&self.pkg_version(), self.rebuild)
    }

    /// The flat name brew requests for `bottle`.
    pub fn file_name(&self, bottle: &ClientBottle) -> String {
        crate::model::naming::mirror_file_name(
            &self.name,
            &self.pkg_version(),
            bottle.tag.as_str(),
            self.rebuild,
        )
    }
}

#[derive(Deserialize)]
struct Envelope {
    payload: String,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(default, borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow)]
    formulae: BTreeMap<String, &'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(default, borrow)]
    bottle_tag: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawEntry {
    stable_version: Option<String>,
    #[serde(default)]
    revision: u32,
    #[serde(default)]
    bottle_rebuild: u32,
    bottle_checksum: Option<String>,
    bottle_tag: Option<String>,
    #[serde(default)]
    stable_dependencies: Vec<serde_json::Value>,
    #[serde(default)]
    disabled: bool,
}

impl PackagesFile {
    /// Parses the file fetched for client `tag`. Only a body that is not a
    /// JWS around a `{"formulae": {...}}` payload for this tag is an error;
    /// bad entries become [`Rejection`]s and the rest is used.
    pub fn parse(tag: &Tag, bytes: Vec<u8>) -> Result<PackagesFile, String> {
        let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "not a JWS document (an object with a \"payload\" string): {}",
                crate::serde_problem(&e)
            )
        })?;
        let payload: Payload<'_> = serde_json::from_str(&envelope.payload).map_err(|e| {
            format!(
                "JWS payload is not an object with \"formulae\": {}",
                crate::serde_problem(&e)
            )
        })?;
        if let Some(said) = payload.metadata.and_then(|m| m.bottle_tag)
            && said != tag.as_str()
        {
            return Err(format!(
                "is the file of tag {:?}, not {tag:?}",
                crate::shorten(said, 64)
            ));
        }
        let mut formulae = BTreeMap::new();
        let mut rejections = Vec::new();
        for (name, raw) in payload.formulae {
            match parse_entry(tag, &name, raw) {
                Ok(entry) => {
                    formulae.insert(name, entry);
                }
                Err((entry_tag, problem)) => rejections.push(Rejection {
                    formula: crate::shorten(&name, 80),
                    tag: entry_tag,
                    problem,
                }),
            }
        }
        Ok(PackagesFile {
            tag: tag.clone(),
            bytes,
            formulae,
            rejections,
        })
    }

    /// The formulae a client of this file can install, with their runtime
    /// dependency closure when `with_deps`: all when `requested` is empty.
    /// Names the closure needs but the file lacks go to `missing`.
    pub fn closure<'a>(
        &'a self,
        requested: &[String],
        with_deps: bool,
        missing: &mut Vec<String>,
    ) -> Vec<&'a PackageEntry> {
        if requested.is_empty() {
            return self.formulae.values().collect();
        }
        dependency_closure(
            requested,
            with_deps,
            |name| self.formulae.get(name),
            |entry| entry.dependencies.clone(),
            missing,
        )
    }
}

/// The formulae `requested` names plus, with `with_deps`, every runtime
/// dependency reachable from them, each once, in breadth-first order.
/// `lookup` finds a formula; names it cannot find go to `missing`.
pub fn dependency_closure<'a, T>(
    requested: &[String],
    with_deps: bool,
    lookup: impl Fn(&str) -> Option<&'a T>,
    dependencies: impl Fn(&'a T) -> Vec<String>,
    missing: &mut Vec<String>,
) -> Vec<&'a T> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut queue: std::collections::VecDeque<String> = requested.iter().cloned().collect();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(formula) = lookup(&name) else {
            if !missing.contains(&name) {
                missing.push(name);
            }
            continue;
        };
        if with_deps {
            queue.extend(dependencies(formula));
        }
        out.push(formula);
    }
    out
}

fn parse_entry(
    file_tag: &Tag,
    name: &str,
    raw: &RawValue,
) -> Result<PackageEntry, (Option<String>, String)> {
    let whole = |problem: String| (None, problem);
    validate_formula_name(name).map_err(whole)?;
    let raw: RawEntry = serde_json::from_str(raw.get())
        .map_err(|e| whole(format!("malformed entry: {}", crate::serde_problem(&e))))?;
    let version = raw.stable_version.unwrap_or_default();
    let bottle = match raw.bottle_checksum {
        None => None,
        Some(checksum) => {
            let tag = match raw.bottle_tag {
                Some(text) => {
                    Tag::parse(&text).map_err(|p| (Some(crate::shorten(&text, 64)), p))?
                }
                None => file_tag.clone(),
            };
            let sha256 = Sha256Digest::parse(&checksum)
                .map_err(|p| (Some(tag.to_string()), format!("bottle_checksum: {p}")))?;
            validate_version(&version).map_err(whole)?;
            Some(ClientBottle { tag, sha256 })
        }
    };
    let entry = PackageEntry {
        name: name.to_string(),
        version,
        revision: raw.revision,
        rebuild: raw.bottle_rebuild,
        bottle,
        dependencies: runtime_dependencies(&raw.stable_dependencies),
        disabled: raw.disabled,
    };
    if let Some(bottle) = &entry.bottle {
        checked_mirror_file_name(
            name,
            &entry.pkg_version(),
            bottle.tag.as_str(),
            entry.rebuild,
        )
        .map_err(|p| (Some(bottle.tag.to_string()), p))?;
    }
    Ok(entry)
}

/// `stable_dependencies` holds plain names (runtime) and `{name: type}`
/// objects; only `build` and `test` are not needed to run.
fn runtime_dependencies(listed: &[serde_json::Value]) -> Vec<String> {
    let mut out = Vec::new();
    for dependency in listed {
        match dependency {
            serde_json::Value::String(name) => out.push(name.clone()),
            serde_json::Value::Object(map) => {
                for (name, kind) in map {
                    let kinds: Vec<&str> = match kind {
                        serde_json::Value::String(k) => vec![k.as_str()],
                        serde_json::Value::Array(ks) => {
                            ks.iter().filter_map(|k| k.as_str()).collect()
                        }
                        _ => vec![],
                    };
                    if !kinds.iter().all(|k| matches!(*k, "build" | "test")) || kinds.is_empty() {
                        out.push(name.clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jws(payload: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "payload": payload.to_string(),
            "signatures": [{"protected": "eyJhbGciOiJQUzUxMiJ9", "header": {"kid": "homebrew-1"}, "signature": "c2ln"}]
        }))
        .unwrap()
    }

    fn tahoe() -> Tag {
        Tag::parse("arm64_tahoe").unwrap()
    }

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn entries_follow_upstreams_serialisation() {
        let bytes = jws(&serde_json::json!({
            "metadata": {"homebrew_version": "6.0.18", "bottle_tag": "arm64_tahoe", "generated_at": 1},
            "formulae": {
                "wget": {"desc": "d", "stable_version": "1.25.0", "revision": 1, "bottle_rebuild": 2,
                         "bottle_checksum": sha('a'), "bottle_tag": "arm64_sequoia",
                         "stable_dependencies": ["libidn2", "openssl@3", {"pkgconf": "build"}, {"gettext": "recommended"}]},
                "openssl@3": {"stable_version": "3.4.0", "bottle_checksum": sha('b')},
                "linux-only": {"stable_version": "1.0"}
            },
            "casks": {}
        }));
        let file = PackagesFile::parse(&tahoe(), bytes.clone()).unwrap();
        assert_eq!(file.bytes, bytes, "kept byte for byte");
        assert!(file.rejections.is_empty(), "{:?}", file.rejections);
        let wget = &file.formulae["wget"];
        assert_eq!((wget.revision, wget.rebuild), (1, 2));
        let bottle = wget.bottle.as_ref().unwrap();
        assert_eq!(bottle.tag.as_str(), "arm64_sequoia");
        assert_eq!(
            wget.file_name(bottle),
            "wget-1.25.0_1.arm64_sequoia.bottle.2.tar.gz"
        );
        assert_eq!(wget.version_rebuild(), "1.25.0_1-2");
        assert_eq!(wget.dependencies, ["libidn2", "openssl@3", "gettext"]);
        let openssl = &file.formulae["openssl@3"];
        assert_eq!((openssl.revision, openssl.rebuild), (0, 0));
        assert_eq!(openssl.bottle.as_ref().unwrap().tag, tahoe());
        assert_eq!(file.formulae["linux-only"].bottle, None);
    }

    #[test]
    fn hostile_entries_are_set_aside_one_by_one() {
        let bytes = jws(&serde_json::json!({
            "formulae": {
                "../etc": {"stable_version": "1.0", "bottle_checksum": sha('a')},
                "bad-sha": {"stable_version": "1.0", "bottle_checksum": "xyz"},
                "bad-tag": {"stable_version": "1.0", "bottle_checksum": sha('a'), "bottle_tag": "../x"},
                "bad-version": {"stable_version": "../1", "bottle_checksum": sha('a')},
                "not-an-object": 3,
                "good": {"stable_version": "1.0", "bottle_checksum": sha('c')}
            }
        }));
        let file = PackagesFile::parse(&tahoe(), bytes).unwrap();
        assert_eq!(file.formulae.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(file.rejections.len(), 5, "{:?}", file.rejections);
        let bad_sha = file
            .rejections
            .iter()
            .find(|r| r.formula == "bad-sha")
            .unwrap();
        assert!(bad_sha.problem.contains("bottle_checksum"), "{bad_sha}");
    }

    #[test]
    fn a_body_that_is_not_a_per_tag_file_is_an_error_naming_the_problem() {
        let wrong_tag =
            jws(&serde_json::json!({"metadata": {"bottle_tag": "sequoia"}, "formulae": {}}));
        let error = PackagesFile::parse(&tahoe(), wrong_tag).unwrap_err();
        assert!(error.contains("\"sequoia\""), "{error}");
        let error = PackagesFile::parse(&tahoe(), b"<html>".to_vec()).unwrap_err();
        assert!(error.contains("not a JWS document"), "{error}");
        let error = PackagesFile::parse(&tahoe(), jws(&serde_json::json!([]))).unwrap_err();
        assert!(error.contains("formulae"), "{error}");
    }

    #[test]
    fn the_closure_follows_runtime_dependencies_and_names_what_is_missing() {
        let bytes = jws(&serde_json::json!({
            "formulae": {
                "gtk+3": {"stable_version": "3.24", "bottle_checksum": sha('a'),
                          "stable_dependencies": ["openssl@3", {"meson": "build"}, "nowhere"]},
                "openssl@3": {"stable_version": "3.4.0", "bottle_checksum": sha('b')},
                "meson": {"stable_version": "1.0", "bottle_checksum": sha('c')}
            }
        }));
        let file = PackagesFile::parse(&tahoe(), bytes).unwrap();
        let mut missing = vec![];
        let names: Vec<&str> = file
            .closure(&["gtk+3".into()], true, &mut missing)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["gtk+3", "openssl@3"]);
        assert_eq!(missing, ["nowhere"]);
        assert_eq!(file.closure(&[], false, &mut missing).len(), 3);
    }
}
