//! The formula API documents: `formula.json` in Homebrew's schema (with the
//! unknown-to-a-mirror fields real entries carry, so parsers must be
//! lenient), its JWS wrapper, one formula's JSON, and the per-tag
//! `internal/packages.<tag>.jws.json` files.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use sha2::{Digest, Sha256};

use crate::bottles::{BottleInfo, ResolvedCatalog};
use crate::catalog::FormulaSpec;
use crate::tags;

#[derive(Serialize)]
struct FormulaDoc<'a> {
    name: &'a str,
    full_name: &'a str,
    tap: &'static str,
    oldnames: [&'a str; 0],
    aliases: [&'a str; 0],
    versioned_formulae: [&'a str; 0],
    desc: String,
    license: &'static str,
    homepage: String,
    versions: Versions<'a>,
    urls: Urls,
    revision: u32,
    version_scheme: u32,
    bottle: BottleDoc<'a>,
    pour_bottle_only_if: Option<&'a str>,
    keg_only: bool,
    options: [&'a str; 0],
    build_dependencies: [&'a str; 0],
    dependencies: &'a [String],
    test_dependencies: [&'a str; 0],
    recommended_dependencies: [&'a str; 0],
    optional_dependencies: [&'a str; 0],
    uses_from_macos: [&'a str; 0],
    requirements: [&'a str; 0],
    conflicts_with: [&'a str; 0],
    caveats: Option<&'a str>,
    deprecated: bool,
    deprecation_date: Option<&'static str>,
    deprecation_reason: Option<&'static str>,
    disabled: bool,
    disable_date: Option<&'static str>,
    disable_reason: Option<&'static str>,
    post_install_defined: bool,
    service: Option<&'a str>,
    tap_git_head: &'static str,
    ruby_source_path: String,
    ruby_source_checksum: Checksum,
}

#[derive(Serialize)]
struct Versions<'a> {
    stable: &'a str,
    head: Option<&'static str>,
    bottle: bool,
}

#[derive(Serialize)]
struct Urls {
    stable: SourceUrl,
}

#[derive(Serialize)]
struct SourceUrl {
    url: String,
    tag: Option<String>,
    revision: Option<String>,
    using: Option<String>,
    checksum: String,
}

#[derive(Serialize)]
struct Checksum {
    sha256: String,
}

/// `{}` without bottles, else `{"stable": {...}}`.
struct BottleDoc<'a> {
    stable: Option<StableBottles<'a>>,
}

#[derive(Serialize)]
struct StableBottles<'a> {
    rebuild: u32,
    root_url: &'a str,
    files: Files<'a>,
}

/// The `files` map, in catalog order.
struct Files<'a>(&'a [BottleInfo]);

#[derive(Serialize)]
struct FileDoc<'a> {
    cellar: &'a str,
    url: &'a str,
    sha256: &'a str,
}

impl Serialize for BottleDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(usize::from(self.stable.is_some())))?;
        if let Some(stable) = &self.stable {
            map.serialize_entry("stable", stable)?;
        }
        map.end()
    }
}

impl Serialize for Files<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for b in self.0 {
            map.serialize_entry(
                &b.tag,
                &FileDoc {
                    cellar: &b.cellar,
                    url: &b.url,
                    sha256: &b.sha256,
                },
            )?;
        }
        map.end()
    }
}

fn hex_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn formula_doc<'a>(
    formula: &'a FormulaSpec,
    bottles: &'a [BottleInfo],
    root_url: &'a str,
) -> FormulaDoc<'a> {
    let name = formula.name.as_str();
    FormulaDoc {
        name,
        full_name: name,
        tap: "homebrew/core",
        oldnames: [],
        aliases: [],
        versioned_formulae: [],
        desc: format!("Stand-in formula {name}"),
        license: "MIT",
        homepage: format!("https://example.invalid/{name}"),
        versions: Versions {
            stable: &formula.version,
            head: formula.version.len().is_multiple_of(2).then_some("HEAD"),
            bottle: !bottles.is_empty(),
        },
        urls: Urls {
            stable: SourceUrl {
                url: format!(
                    "https://example.invalid/{name}/{name}-{}.tar.gz",
                    formula.version
                ),
                tag: None,
                revision: None,
                using: None,
                checksum: hex_of(&format!("source {name} {}", formula.version)),
            },
        },
        revision: formula.revision,
        version_scheme: 0,
        bottle: BottleDoc {
            stable: (!bottles.is_empty()).then_some(StableBottles {
                rebuild: formula.rebuild,
                root_url,
                files: Files(bottles),
            }),
        },
        pour_bottle_only_if: None,
        keg_only: false,
        options: [],
        build_dependencies: [],
        dependencies: &formula.dependencies,
        test_dependencies: [],
        recommended_dependencies: [],
        optional_dependencies: [],
        uses_from_macos: [],
        requirements: [],
        conflicts_with: [],
        caveats: None,
        deprecated: formula.deprecated,
        deprecation_date: formula.deprecated.then_some("2025-01-01"),
        deprecation_reason: formula.deprecated.then_some("unmaintained"),
        disabled: formula.disabled,
        disable_date: formula.disabled.then_some("2025-06-01"),
        disable_reason: formula.disabled.then_some("no_license"),
        post_install_defined: false,
        service: None,
        tap_git_head: "0123456789abcdef0123456789abcdef01234567",
        ruby_source_path: format!("Formula/{}/{name}.rb", &name[..1]),
        ruby_source_checksum: Checksum {
            sha256: hex_of(&format!("ruby {name}")),
        },
    }
}

/// `formula.json`: every formula, in catalog order.
pub(crate) fn render_formula_json(catalog: &ResolvedCatalog, root_url: &str) -> String {
    let docs: Vec<FormulaDoc<'_>> = catalog
        .formulae
        .iter()
        .enumerate()
        .map(|(i, f)| formula_doc(f, catalog.bottles_of(i), root_url))
        .collect();
    serde_json::to_string(&docs).expect("formula docs serialise")
}

/// `formula/<name>.json`: one formula object.
pub(crate) fn render_one_formula(
    formula: &FormulaSpec,
    bottles: &[BottleInfo],
    root_url: &str,
) -> String {
    serde_json::to_string(&formula_doc(formula, bottles, root_url)).expect("formula doc serialises")
}

#[derive(Serialize)]
struct Jws<'a> {
    payload: &'a str,
    signatures: [JwsSignature; 1],
}

#[derive(Serialize)]
struct JwsSignature {
    protected: &'static str,
    header: JwsHeader,
    signature: String,
}

#[derive(Serialize)]
struct JwsHeader {
    kid: &'static str,
}

/// base64url of `{"alg":"PS512"}`.
const JWS_PROTECTED: &str = "eyJhbGciOiJQUzUxMiJ9";

/// Wraps `payload` like Homebrew's signed API files. The signature is a
/// deterministic stand-in (a digest of header and payload), not RSA: the
/// same payload always gives the same bytes.
pub(crate) fn render_jws(payload: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(JWS_PROTECTED.as_bytes());
    hasher.update(b".");
    hasher.update(payload.as_bytes());
    let jws = Jws {
        payload,
        signatures: [JwsSignature {
            protected: JWS_PROTECTED,
            header: JwsHeader { kid: "homebrew-1" },
            signature: base64url(&hasher.finalize()),
        }],
    };
    serde_json::to_string(&jws).expect("jws serialises")
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=group.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[derive(Serialize)]
struct PackageEntry<'a> {
    stable_version: &'a str,
    revision: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    bottle_rebuild: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bottle_checksum: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bottle_tag: Option<&'a str>,
}

/// Payload of `internal/packages.<tag>.jws.json`: compact entries for a
/// client on `tag`, with `bottle_tag` only when brew would install another
/// tag's bottle (the fallback rule). The exact upstream layout is not known
/// to us; this is the shape the reference describes:
/// `{"formulae": {"<name>": {...}}}`.
pub(crate) fn render_packages_payload(catalog: &ResolvedCatalog, tag: &str) -> String {
    struct Entries<'a>(&'a ResolvedCatalog, &'a str);
    impl Serialize for Entries<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let Entries(catalog, tag) = *self;
            let mut map = serializer.serialize_map(Some(catalog.formulae.len()))?;
            for (i, f) in catalog.formulae.iter().enumerate() {
                let bottles = catalog.bottles_of(i);
                let available: Vec<&str> = bottles.iter().map(|b| b.tag.as_str()).collect();
                let chosen = tags::installable_tag(&available, tag)
                    .and_then(|t| bottles.iter().find(|b| b.tag == t));
                map.serialize_entry(
                    &f.name,
                    &PackageEntry {
                        stable_version: &f.version,
                        revision: f.revision,
                        bottle_rebuild: chosen.map(|_| f.rebuild),
                        bottle_checksum: chosen.map(|b| b.sha256.as_str()),
                        bottle_tag: chosen.map(|b| b.tag.as_str()).filter(|t| *t != tag),
                    },
                )?;
            }
            map.end()
        }
    }
    #[derive(Serialize)]
    struct Payload<'a> {
        formulae: Entries<'a>,
    }
    serde_json::to_string(&Payload {
        formulae: Entries(catalog, tag),
    })
    .expect("packages payload serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_known_values() {
        assert_eq!(base64url(b"{\"alg\":\"PS512\"}"), JWS_PROTECTED);
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
