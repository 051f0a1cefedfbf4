//! The formula API documents: `formula.json` in Homebrew's schema (with the
//! unknown-to-a-mirror fields real entries carry, so parsers must be
//! lenient), its JWS wrapper, one formula's JSON, and the per-tag
//! `internal/packages.<tag>.jws.json` files, whose entries are made from
//! the formula.json entry by brew's own rules ([`crate::formula_struct`]),
//! so they carry Ruby symbols as `":name"` strings like upstream's.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use sha2::{Digest, Sha256};

use crate::bottles::{BottleInfo, ResolvedCatalog};
use crate::catalog::FormulaSpec;
use crate::formula_struct::{FormulaStruct, generate_formula_struct};
use crate::ruby::RubyValue;
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
    build_dependencies: &'a [String],
    dependencies: &'a [String],
    test_dependencies: &'a [String],
    recommended_dependencies: &'a [String],
    optional_dependencies: &'a [String],
    /// `"name"` or `{"name": "build"}`, with the bound at the same index of
    /// `uses_from_macos_bounds` (`{}` or `{"since": "<macos>"}`), as
    /// formula.rb `dependencies_hash` writes them.
    uses_from_macos: Vec<serde_json::Value>,
    uses_from_macos_bounds: Vec<serde_json::Value>,
    requirements: Vec<RequirementDoc<'a>>,
    conflicts_with: [&'a str; 0],
    caveats: Option<&'a str>,
    deprecated: bool,
    deprecation_date: Option<&'static str>,
    deprecation_reason: Option<&'static str>,
    deprecate_args: Option<DeprecateDisableArgs>,
    disabled: bool,
    disable_date: Option<&'static str>,
    disable_reason: Option<&'static str>,
    disable_args: Option<DeprecateDisableArgs>,
    post_install_defined: bool,
    service: Option<&'a str>,
    tap_git_head: &'static str,
    ruby_source_path: String,
    ruby_source_checksum: Checksum,
}

/// formula.rb `serialized_requirements`: one requirement.
#[derive(Serialize)]
struct RequirementDoc<'a> {
    name: &'a str,
    cask: Option<&'a str>,
    download: Option<&'a str>,
    /// macOS requirements carry the version number (`"14"`), not the name.
    version: Option<&'a str>,
    contexts: &'a [String],
    specs: &'static [&'static str],
}

/// formula.rb `deprecate!`/`disable!` arguments, as formula.json has them.
#[derive(Serialize)]
struct DeprecateDisableArgs {
    date: &'static str,
    because: &'static str,
    replacement_formula: Option<&'static str>,
    replacement_cask: Option<&'static str>,
}

const DEPRECATION_DATE: &str = "2025-01-01";
const DEPRECATION_REASON: &str = "unmaintained";
const DISABLE_DATE: &str = "2025-06-01";
const DISABLE_REASON: &str = "no_license";

#[derive(Serialize)]
struct Versions<'a> {
    stable: &'a str,
    head: Option<&'static str>,
    bottle: bool,
}

#[derive(Serialize)]
struct Urls {
    stable: SourceUrl,
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<HeadUrl>,
}

#[derive(Serialize)]
struct HeadUrl {
    url: String,
    branch: Option<&'static str>,
    using: Option<&'static str>,
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
            head: formula.head.then_some("HEAD"),
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
            head: formula.head.then(|| HeadUrl {
                url: format!("https://example.invalid/{name}.git"),
                branch: Some("main"),
                using: None,
            }),
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
        build_dependencies: &formula.build_dependencies,
        dependencies: &formula.dependencies,
        test_dependencies: &formula.test_dependencies,
        recommended_dependencies: &formula.recommended_dependencies,
        optional_dependencies: &formula.optional_dependencies,
        uses_from_macos: formula
            .uses_from_macos
            .iter()
            .map(|u| match u.build {
                true => serde_json::json!({ &u.name: "build" }),
                false => serde_json::json!(u.name),
            })
            .collect(),
        uses_from_macos_bounds: formula
            .uses_from_macos
            .iter()
            .map(|u| match &u.since {
                Some(since) => serde_json::json!({ "since": since }),
                None => serde_json::json!({}),
            })
            .collect(),
        requirements: formula
            .requirements
            .iter()
            .map(|r| RequirementDoc {
                name: &r.name,
                cask: None,
                download: None,
                version: r.version.as_deref().map(|v| match r.name.as_str() {
                    "macos" | "maximum_macos" => tags::MACOS_NEWEST_FIRST
                        .iter()
                        .find(|(name, _)| *name == v)
                        .map_or(v, |(_, number)| number),
                    _ => v,
                }),
                contexts: &r.contexts,
                specs: if formula.head {
                    &["stable", "head"]
                } else {
                    &["stable"]
                },
            })
            .collect(),
        conflicts_with: [],
        caveats: None,
        deprecated: formula.deprecated,
        deprecation_date: formula.deprecated.then_some(DEPRECATION_DATE),
        deprecation_reason: formula.deprecated.then_some(DEPRECATION_REASON),
        deprecate_args: formula.deprecated.then_some(DeprecateDisableArgs {
            date: DEPRECATION_DATE,
            because: DEPRECATION_REASON,
            replacement_formula: None,
            replacement_cask: None,
        }),
        disabled: formula.disabled,
        disable_date: formula.disabled.then_some(DISABLE_DATE),
        disable_reason: formula.disabled.then_some(DISABLE_REASON),
        disable_args: formula.disabled.then_some(DeprecateDisableArgs {
            date: DISABLE_DATE,
            because: DISABLE_REASON,
            replacement_formula: None,
            replacement_cask: None,
        }),
        post_install_defined: false,
        service: None,
        tap_git_head: FORMULA_TAP_GIT_HEAD,
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

/// `metadata.homebrew_version` of the per-tag files.
pub(crate) const PACKAGES_HOMEBREW_VERSION: &str = "6.0.18";
/// `metadata.generated_at`: fixed, so a catalog always gives the same bytes.
pub(crate) const PACKAGES_GENERATED_AT: u64 = 1_787_000_000;
const FORMULA_TAP_GIT_HEAD: &str = "0123456789abcdef0123456789abcdef01234567";
const CASK_TAP_GIT_HEAD: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// One formula of a per-tag file, as brew writes it: the formula.json
/// entry turned into brew's FormulaStruct (`generate_formula_struct_hash`)
/// and serialised for `tag` (`FormulaStruct#serialize`), so symbols are
/// `":name"` strings and blanks and zeros are left out (no `revision` means
/// 0, no `bottle_checksum` means no bottle for this tag, no `bottle_tag`
/// means the client's own tag, no `bottle_cellar` means
/// `:any_skip_relocation`; a disabled formula has `disable_args`).
#[cfg(test)]
pub(crate) fn package_entry(formula: &FormulaSpec, bottles: &[BottleInfo], tag: &str) -> RubyValue {
    formula_struct(formula, bottles).serialize(tag)
}

/// The FormulaStruct brew builds from `formula`'s formula.json entry.
fn formula_struct(formula: &FormulaSpec, bottles: &[BottleInfo]) -> FormulaStruct {
    // The root URL does not reach the struct.
    let doc =
        serde_json::to_string(&formula_doc(formula, bottles, "")).expect("formula doc serialises");
    let doc = RubyValue::from_json(&doc).expect("formula doc parses");
    generate_formula_struct(&doc)
}

/// Payload of `internal/packages.<tag>.jws.json` in upstream's schema:
/// `metadata`, the formulae (by name, sorted) as a client on `tag` sees
/// them (the bottle brew would install there, by the fallback rule), no
/// casks, and the other top-level keys upstream has. Deterministic: the
/// same catalog always gives the same text.
pub(crate) fn render_packages_payload(catalog: &ResolvedCatalog, tag: &str) -> String {
    struct Entries<'a>(&'a ResolvedCatalog, &'a str);
    impl Serialize for Entries<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let Entries(catalog, tag) = *self;
            let mut order: Vec<usize> = (0..catalog.formulae.len()).collect();
            order.sort_by(|a, b| catalog.formulae[*a].name.cmp(&catalog.formulae[*b].name));
            let mut map = serializer.serialize_map(Some(order.len()))?;
            for i in order {
                let formula = &catalog.formulae[i];
                let entry = formula_struct(formula, catalog.bottles_of(i)).serialize(tag);
                map.serialize_entry(&formula.name, &entry)?;
            }
            map.end()
        }
    }
    #[derive(Serialize)]
    struct Metadata<'a> {
        homebrew_version: &'static str,
        bottle_tag: &'a str,
        generated_at: u64,
    }
    type Empty = std::collections::BTreeMap<String, String>;
    #[derive(Serialize)]
    struct Payload<'a> {
        metadata: Metadata<'a>,
        formulae: Entries<'a>,
        casks: Empty,
        formula_aliases: Empty,
        formula_renames: Empty,
        cask_renames: Empty,
        formula_tap_git_head: &'static str,
        cask_tap_git_head: &'static str,
        formula_tap_migrations: Empty,
        cask_tap_migrations: Empty,
    }
    serde_json::to_string(&Payload {
        metadata: Metadata {
            homebrew_version: PACKAGES_HOMEBREW_VERSION,
            bottle_tag: tag,
            generated_at: PACKAGES_GENERATED_AT,
        },
        formulae: Entries(catalog, tag),
        casks: Empty::new(),
        formula_aliases: Empty::new(),
        formula_renames: Empty::new(),
        cask_renames: Empty::new(),
        formula_tap_git_head: FORMULA_TAP_GIT_HEAD,
        cask_tap_git_head: CASK_TAP_GIT_HEAD,
        formula_tap_migrations: Empty::new(),
        cask_tap_migrations: Empty::new(),
    })
    .expect("packages payload serialises")
}

/// The whole `internal/packages.<tag>.jws.json` file.
pub(crate) fn render_packages_file(catalog: &ResolvedCatalog, tag: &str) -> String {
    render_jws(&render_packages_payload(catalog, tag))
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

/// The stand-in's per-tag entries, one of each shape, against the text
/// brew's serializer gives for them (api/formula_struct.rb `serialize`,
/// checked rule by rule in `formula_struct::tests` against brew's specs):
/// brew's key order, `":name"` symbols, blanks and zeros left out.
#[cfg(test)]
mod fixture_tests {
    use super::*;
    use crate::Catalog;
    use crate::bottles::{self, ResolvedCatalog};

    fn brew_mirror() -> ResolvedCatalog {
        bottles::resolve(&Catalog::brew_mirror(), "http://stand-in.invalid/v2")
    }

    /// The entry of `name` for `tag`, checksums replaced by `<sha256>`
    /// (their values follow from the content generator, checked apart).
    fn entry(catalog: &ResolvedCatalog, name: &str, tag: &str) -> String {
        let i = catalog
            .formulae
            .iter()
            .position(|f| f.name == name)
            .unwrap();
        let bottles = catalog.bottles_of(i);
        let entry = package_entry(&catalog.formulae[i], bottles, tag);
        if let Some(RubyValue::Str(sha)) = entry.get_str("bottle_checksum") {
            assert!(bottles.iter().any(|b| &b.sha256 == sha), "{name} {tag}");
        }
        let RubyValue::Hash(mut pairs) = entry else {
            panic!("{name}: not a hash");
        };
        for (key, value) in &mut pairs {
            let key = key.as_str().unwrap();
            if key.ends_with("checksum") {
                assert_eq!(value.as_str().map(str::len), Some(64), "{name} {key}");
                *value = RubyValue::Str("<sha256>".into());
            }
        }
        RubyValue::Hash(pairs).to_json()
    }

    #[test]
    fn a_plain_formula() {
        assert_eq!(
            entry(&brew_mirror(), "pkgconf", "arm64_tahoe"),
            concat!(
                r#"{"desc":"Stand-in formula pkgconf","homepage":"https://example.invalid/pkgconf","#,
                r#""license":"MIT","ruby_source_checksum":"<sha256>","stable_checksum":"<sha256>","#,
                r#""stable_url_args":["https://example.invalid/pkgconf/pkgconf-2.5.1.tar.gz"],"#,
                r#""stable_version":"2.5.1","bottle_cellar":"/opt/homebrew/Cellar","#,
                r#""bottle_checksum":"<sha256>"}"#
            )
        );
    }

    #[test]
    fn revision_and_rebuild() {
        assert_eq!(
            entry(&brew_mirror(), "libsigc++", "x86_64_linux"),
            concat!(
                r#"{"bottle_rebuild":1,"desc":"Stand-in formula libsigc++","#,
                r#""homepage":"https://example.invalid/libsigc++","license":"MIT","revision":2,"#,
                r#""ruby_source_checksum":"<sha256>","stable_checksum":"<sha256>","#,
                r#""stable_url_args":["https://example.invalid/libsigc++/libsigc++-3.6.0.tar.gz"],"#,
                r#""stable_version":"3.6.0","bottle_cellar":":any","bottle_checksum":"<sha256>"}"#
            )
        );
    }

    /// Typed dependencies, a requirement with a context, uses_from_macos
    /// with and without a bound and typed, a head spec (head_dependencies
    /// and head_uses_from_macos repeat the stable ones, as brew's generator
    /// does when formula.json has no head_dependencies).
    #[test]
    fn typed_dependencies_requirements_and_uses_from_macos() {
        let dependencies = concat!(
            r#"["openssl@3",{"pkgconf":":build"},{"old-tool":":test"},"#,
            r#"{"ca-certificates":":recommended"},{"gtk+3":":optional"},"#,
            r#"{":macos":[":sonoma",":build"]}]"#
        );
        let uses = concat!(
            r#"[["zlib"],["libxml2",{":since":":tahoe"}],"#,
            r#"[{"pkgconf":":build",":since":":sonoma"}]]"#
        );
        assert_eq!(
            entry(&brew_mirror(), "curl", "sequoia"),
            format!(
                concat!(
                    r#"{{"desc":"Stand-in formula curl","head_dependencies":{deps},"#,
                    r#""head_url_args":["https://example.invalid/curl.git",{{":branch":"main"}}],"#,
                    r#""head_uses_from_macos":{uses},"homepage":"https://example.invalid/curl","#,
                    r#""license":"MIT","ruby_source_checksum":"<sha256>","#,
                    r#""stable_dependencies":{deps},"stable_checksum":"<sha256>","#,
                    r#""stable_url_args":["https://example.invalid/curl/curl-8.17.0.tar.gz"],"#,
                    r#""stable_uses_from_macos":{uses},"stable_version":"8.17.0","#,
                    r#""bottle_cellar":":any","bottle_checksum":"<sha256>"}}"#
                ),
                deps = dependencies,
                uses = uses
            )
        );
    }

    /// `depends_on :linux` is the symbol `":linux"`; no bottle on macOS.
    #[test]
    fn a_linux_requirement() {
        let catalog = brew_mirror();
        let head = concat!(
            r#"{"desc":"Stand-in formula linux-only","homepage":"https://example.invalid/linux-only","#,
            r#""license":"MIT","ruby_source_checksum":"<sha256>","stable_dependencies":[":linux"],"#,
            r#""stable_checksum":"<sha256>","#,
            r#""stable_url_args":["https://example.invalid/linux-only/linux-only-0.5.0.tar.gz"],"#,
            r#""stable_version":"0.5.0""#
        );
        assert_eq!(
            entry(&catalog, "linux-only", "arm64_tahoe"),
            format!("{head}}}")
        );
        assert_eq!(
            entry(&catalog, "linux-only", "x86_64_linux"),
            format!(r#"{head},"bottle_checksum":"<sha256>"}}"#)
        );
    }

    /// An `all` bottle: `bottle_tag` `":all"` on every tag, no cellar
    /// (`:any_skip_relocation`).
    #[test]
    fn an_all_bottle() {
        let catalog = brew_mirror();
        for tag in ["arm64_tahoe", "sequoia", "x86_64_linux"] {
            assert_eq!(
                entry(&catalog, "ca-certificates", tag),
                concat!(
                    r#"{"desc":"Stand-in formula ca-certificates","#,
                    r#""homepage":"https://example.invalid/ca-certificates","license":"MIT","#,
                    r#""ruby_source_checksum":"<sha256>","stable_checksum":"<sha256>","#,
                    r#""stable_url_args":["https://example.invalid/ca-certificates/ca-certificates-2025-09-09.tar.gz"],"#,
                    r#""stable_version":"2025-09-09","bottle_tag":":all","bottle_checksum":"<sha256>"}"#
                ),
                "{tag}"
            );
        }
    }

    /// A fallback bottle: tahoe clients get the sequoia bottle, named by
    /// `bottle_tag`, with its path cellar; sequoia clients get no
    /// `bottle_tag`; Linux clients no bottle.
    #[test]
    fn a_fallback_bottle() {
        let catalog = brew_mirror();
        let head = concat!(
            r#"{"desc":"Stand-in formula old-tool","homepage":"https://example.invalid/old-tool","#,
            r#""license":"MIT","ruby_source_checksum":"<sha256>","stable_checksum":"<sha256>","#,
            r#""stable_url_args":["https://example.invalid/old-tool/old-tool-1.0.tar.gz"],"#,
            r#""stable_version":"1.0""#
        );
        assert_eq!(
            entry(&catalog, "old-tool", "arm64_tahoe"),
            format!(
                r#"{head},"bottle_tag":":arm64_sequoia","bottle_cellar":"/opt/homebrew/Cellar","bottle_checksum":"<sha256>"}}"#
            )
        );
        assert_eq!(
            entry(&catalog, "old-tool", "arm64_sequoia"),
            format!(
                r#"{head},"bottle_cellar":"/opt/homebrew/Cellar","bottle_checksum":"<sha256>"}}"#
            )
        );
        assert_eq!(
            entry(&catalog, "old-tool", "x86_64_linux"),
            format!("{head}}}")
        );
    }

    /// Disabled and deprecated: `disable_args`/`deprecate_args` with symbol
    /// keys and a known reason as a symbol, no booleans.
    #[test]
    fn disabled_and_deprecated() {
        assert_eq!(
            entry(&brew_mirror(), "gone", "x86_64_linux"),
            concat!(
                r#"{"desc":"Stand-in formula gone","#,
                r#""disable_args":{":date":"2025-06-01",":because":":no_license"},"#,
                r#""homepage":"https://example.invalid/gone","license":"MIT","#,
                r#""ruby_source_checksum":"<sha256>","stable_checksum":"<sha256>","#,
                r#""stable_url_args":["https://example.invalid/gone/gone-1.2.0.tar.gz"],"#,
                r#""stable_version":"1.2.0","bottle_cellar":":any","bottle_checksum":"<sha256>"}"#
            )
        );
        let tricky = bottles::resolve(&Catalog::tricky(), "http://stand-in.invalid/v2");
        let old = entry(&tricky, "old-but-ok", "arm64_tahoe");
        assert!(
            old.starts_with(
                r#"{"deprecate_args":{":date":"2025-01-01",":because":":unmaintained"},"desc":"#
            ),
            "{old}"
        );
    }

    /// formula.json carries the same facts in its own schema (formula.rb
    /// `to_hash`, `dependencies_hash`, `serialized_requirements`).
    #[test]
    fn formula_json_has_the_same_facts() {
        let catalog = brew_mirror();
        let doc = |name: &str| -> serde_json::Value {
            let i = catalog
                .formulae
                .iter()
                .position(|f| f.name == name)
                .unwrap();
            let text = render_one_formula(&catalog.formulae[i], catalog.bottles_of(i), "R");
            serde_json::from_str(&text).unwrap()
        };
        let curl = doc("curl");
        assert_eq!(
            curl["uses_from_macos"],
            serde_json::json!(["zlib", "libxml2", {"pkgconf": "build"}])
        );
        assert_eq!(
            curl["uses_from_macos_bounds"],
            serde_json::json!([{}, {"since": "tahoe"}, {"since": "sonoma"}])
        );
        assert_eq!(
            curl["requirements"],
            serde_json::json!([{"name": "macos", "cask": null, "download": null, "version": "14",
                                "contexts": ["build"], "specs": ["stable", "head"]}])
        );
        assert_eq!(curl["test_dependencies"], serde_json::json!(["old-tool"]));
        assert_eq!(
            curl["recommended_dependencies"],
            serde_json::json!(["ca-certificates"])
        );
        assert_eq!(curl["optional_dependencies"], serde_json::json!(["gtk+3"]));
        assert_eq!(curl["versions"]["head"], "HEAD");
        assert_eq!(
            curl["urls"]["head"]["url"],
            "https://example.invalid/curl.git"
        );
        assert_eq!(
            doc("linux-only")["requirements"],
            serde_json::json!([{"name": "linux", "cask": null, "download": null, "version": null,
                                "contexts": [], "specs": ["stable"]}])
        );
        let gone = doc("gone");
        assert_eq!(gone["disabled"], true);
        assert_eq!(
            gone["disable_args"],
            serde_json::json!({"date": "2025-06-01", "because": "no_license",
                               "replacement_formula": null, "replacement_cask": null})
        );
        let wget = doc("wget");
        assert_eq!(wget["versions"]["head"], serde_json::Value::Null);
        assert!(wget["urls"].get("head").is_none());
    }
}
