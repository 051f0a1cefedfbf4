//! brew's `FormulaStruct`, as far as the stand-in's formulae need it: how
//! brew turns a formula's `formula.json` hash into the struct
//! (api/formula/formula_struct_generator.rb, `generate_formula_struct_hash`)
//! and how it serialises the struct into one entry of a per-tag file
//! (api/formula_struct.rb, `serialize` and `serialize_bottle`). Ported rule
//! for rule, so the per-tag format follows from brew's code and from the
//! same facts as `formula.json`.
//!
//! Left out because no stand-in formula has them: `merge_variations`
//! (per-tag variations), caveats placeholders, keg-only reasons,
//! `no_autobump`, services.

use crate::ruby::{RubyValue, array, empty_hash, hash, str, sym};
use crate::tags::{self, MACOS_NEWEST_FIRST};

/// FormulaStruct's props in their `const` declaration order, without the
/// `*_present` PREDICATES and `bottle_checksums` (SKIP_SERIALIZATION):
/// the key order of a serialised entry, before the bottle keys.
pub const SERIALIZED_PROPS: [&str; 34] = [
    "aliases",
    "bottle_rebuild",
    "caveats",
    "conflicts",
    "deprecate_args",
    "desc",
    "disable_args",
    "executables",
    "head_dependencies",
    "head_url_args",
    "head_uses_from_macos",
    "homepage",
    "keg_only_args",
    "license",
    "link_overwrite_paths",
    "no_autobump_args",
    "oldnames",
    "post_install_defined",
    "post_install_steps",
    "pour_bottle_args",
    "revision",
    "ruby_source_checksum",
    "service_args",
    "service_name_args",
    "service_run_args",
    "service_run_kwargs",
    "stable_dependencies",
    "stable_patches",
    "stable_checksum",
    "stable_url_args",
    "stable_uses_from_macos",
    "stable_version",
    "version_scheme",
    "versioned_formulae",
];

/// `formula_struct.rb` DEFAULT_CELLAR: not written into the entry.
const DEFAULT_CELLAR: &str = "any_skip_relocation";

/// FormulaStructGenerator API_SUPPORTED_REQUIREMENTS.
const API_SUPPORTED_REQUIREMENTS: [&str; 5] = ["arch", "linux", "macos", "maximum_macos", "xcode"];

/// deprecate_disable.rb FORMULA_DEPRECATE_DISABLE_REASONS (the keys): a
/// known reason is written as a symbol, any other as a string.
const FORMULA_DEPRECATE_DISABLE_REASONS: [&str; 10] = [
    "does_not_build",
    "no_license",
    "repo_archived",
    "repo_removed",
    "unmaintained",
    "unreachable",
    "unsupported",
    "deprecated_upstream",
    "versioned_formula",
    "checksum_mismatch",
];

/// One element of `bottle_checksums`: `{cellar: ..., <tag>: "<sha256>"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct BottleChecksum {
    pub tag: String,
    /// A Symbol (`:any`) or a path String.
    pub cellar: RubyValue,
    pub checksum: String,
}

/// A FormulaStruct: its props (any of [`SERIALIZED_PROPS`]; absent ones
/// have their blank default) and its bottle checksums.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FormulaStruct {
    pub props: Vec<(&'static str, RubyValue)>,
    pub bottle_checksums: Vec<BottleChecksum>,
}

impl FormulaStruct {
    /// Sets prop `name` (which must be one of [`SERIALIZED_PROPS`]).
    pub fn set(&mut self, name: &str, value: RubyValue) {
        let name = SERIALIZED_PROPS
            .iter()
            .find(|p| **p == name)
            .unwrap_or_else(|| panic!("{name} is not a FormulaStruct prop"));
        match self.props.iter_mut().find(|(p, _)| p == name) {
            Some(prop) => prop.1 = value,
            None => self.props.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&RubyValue> {
        self.props.iter().find(|(p, _)| *p == name).map(|(_, v)| v)
    }

    /// `serialize_bottle`: the bottle a client on `bottle_tag` installs
    /// (its own tag, else `all`, else an older macOS of its architecture),
    /// as `bottle_tag` (only when another tag), `bottle_cellar` (only when
    /// not `:any_skip_relocation`) and `bottle_checksum`; `None` without one.
    pub fn serialize_bottle(&self, bottle_tag: &str) -> Option<[(RubyValue, RubyValue); 3]> {
        let available: Vec<&str> = self
            .bottle_checksums
            .iter()
            .map(|b| b.tag.as_str())
            .collect();
        let chosen = tags::installable_tag(&available, bottle_tag)?;
        let bottle = self.bottle_checksums.iter().find(|b| b.tag == chosen)?;
        let tag = if bottle.tag == bottle_tag {
            RubyValue::Nil
        } else {
            sym(bottle.tag.clone())
        };
        // `bottle_info.delete(:cellar) || :any`: no cellar means `:any`.
        let cellar = match &bottle.cellar {
            RubyValue::Nil => sym("any"),
            cellar if *cellar == sym(DEFAULT_CELLAR) => RubyValue::Nil,
            cellar => cellar.clone(),
        };
        Some([
            (str("bottle_tag"), tag),
            (str("bottle_cellar"), cellar),
            (str("bottle_checksum"), str(bottle.checksum.clone())),
        ])
    }

    /// `serialize(bottle_tag:)`: the props in declaration order, the bottle
    /// keys merged at the end, then `deep_stringify_symbols` and
    /// `deep_compact_blank`.
    pub fn serialize(&self, bottle_tag: &str) -> RubyValue {
        let mut pairs: Vec<(RubyValue, RubyValue)> = SERIALIZED_PROPS
            .iter()
            .map(|prop| {
                (
                    str(*prop),
                    self.get(prop).cloned().unwrap_or(RubyValue::Nil),
                )
            })
            .collect();
        if let Some(bottle) = self.serialize_bottle(bottle_tag) {
            pairs.extend(bottle);
        }
        RubyValue::Hash(pairs)
            .deep_stringify_symbols()
            .deep_compact_blank()
            .unwrap_or_else(empty_hash)
    }
}

/// `Utils.convert_to_string_or_symbol`: `":any"` is `:any`, else a String.
fn string_or_symbol(value: &RubyValue) -> RubyValue {
    match value.as_str().and_then(|s| s.strip_prefix(':')) {
        Some(name) => sym(name),
        None => value.clone(),
    }
}

/// `DeprecateDisable.to_reason_string_or_symbol(..., type: :formula)`.
fn reason_string_or_symbol(reason: &RubyValue) -> RubyValue {
    match reason {
        RubyValue::Str(s) | RubyValue::Sym(s)
            if FORMULA_DEPRECATE_DISABLE_REASONS.contains(&s.as_str()) =>
        {
            sym(s.clone())
        }
        other => other.clone(),
    }
}

/// `hash.transform_keys(&:to_sym)` with `because` as a reason.
fn deprecate_disable_args(args: &RubyValue) -> RubyValue {
    let pairs = args.as_hash().unwrap_or_default();
    hash(pairs.iter().map(|(k, v)| {
        let key = k.to_sym();
        let value = if key == sym("because") {
            reason_string_or_symbol(v)
        } else {
            v.clone()
        };
        (key, value)
    }))
}

/// `{...}.compact_blank` on a Symbol-keyed hash (shallow).
fn compact_blank_hash(pairs: Vec<(RubyValue, RubyValue)>) -> RubyValue {
    hash(pairs.into_iter().filter(|(_, v)| !v.is_blank()))
}

/// `&.to_sym`.
fn optional_sym(value: Option<&RubyValue>) -> RubyValue {
    match value {
        None | Some(RubyValue::Nil) => RubyValue::Nil,
        Some(v) => v.to_sym(),
    }
}

/// `generate_formula_struct_hash`: the struct brew builds from one
/// `formula.json` entry (a parsed JSON object).
pub fn generate_formula_struct(formula: &RubyValue) -> FormulaStruct {
    let mut out = FormulaStruct::default();
    let field = |key: &str| formula.get_str(key).cloned().unwrap_or(RubyValue::Nil);
    let dig = |keys: &[&str]| formula.dig(keys).cloned().unwrap_or(RubyValue::Nil);

    for prop in [
        "aliases",
        "caveats",
        "desc",
        "executables",
        "homepage",
        "license",
        "oldnames",
        "post_install_defined",
        "post_install_steps",
        "revision",
        "version_scheme",
        "versioned_formulae",
    ] {
        out.set(prop, field(prop));
    }

    out.bottle_checksums = formula
        .dig(&["bottle", "stable", "files"])
        .and_then(RubyValue::as_hash)
        .unwrap_or_default()
        .iter()
        .map(|(tag, spec)| BottleChecksum {
            tag: tag.as_str().unwrap_or_default().to_string(),
            cellar: string_or_symbol(spec.get_str("cellar").unwrap_or(&RubyValue::Nil)),
            checksum: spec
                .get_str("sha256")
                .and_then(RubyValue::as_str)
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    out.set("bottle_rebuild", dig(&["bottle", "stable", "rebuild"]));

    let conflicts = field("conflicts_with");
    let reasons = field("conflicts_with_reasons");
    let conflicts = conflicts.as_array().unwrap_or_default();
    out.set(
        "conflicts",
        array(conflicts.iter().enumerate().map(|(i, name)| {
            let reason = reasons.as_array().and_then(|r| r.get(i));
            match reason {
                Some(reason) if !reason.is_blank() => {
                    array([name.clone(), hash([(sym("because"), reason.clone())])])
                }
                _ => array([name.clone(), empty_hash()]),
            }
        })),
    );

    for key in ["deprecate_args", "disable_args"] {
        if let Some(args) = formula.get_str(key).filter(|a| **a != RubyValue::Nil) {
            out.set(key, deprecate_disable_args(args));
        }
    }

    let head_url = formula
        .dig(&["urls", "head", "url"])
        .cloned()
        .unwrap_or_else(|| str(""));
    out.set(
        "head_url_args",
        array([
            head_url,
            compact_blank_hash(vec![
                (sym("branch"), dig(&["urls", "head", "branch"])),
                (
                    sym("using"),
                    optional_sym(formula.dig(&["urls", "head", "using"])),
                ),
            ]),
        ]),
    );

    out.set("link_overwrite_paths", field("link_overwrite"));
    if let Some(condition) = formula
        .get_str("pour_bottle_only_if")
        .filter(|c| **c != RubyValue::Nil)
    {
        out.set(
            "pour_bottle_args",
            hash([(sym("only_if"), condition.to_sym())]),
        );
    }
    out.set(
        "ruby_source_checksum",
        dig(&["ruby_source_checksum", "sha256"]),
    );
    out.set("stable_checksum", dig(&["urls", "stable", "checksum"]));
    out.set(
        "stable_url_args",
        array([
            dig(&["urls", "stable", "url"]),
            compact_blank_hash(vec![
                (sym("tag"), dig(&["urls", "stable", "tag"])),
                (sym("revision"), dig(&["urls", "stable", "revision"])),
                (
                    sym("using"),
                    optional_sym(formula.dig(&["urls", "stable", "using"])),
                ),
            ]),
        ]),
    );
    out.set("stable_version", dig(&["versions", "stable"]));

    let requirements = formula.get_str("requirements");
    let stable_dependency_hash = hash(
        [
            "dependencies",
            "build_dependencies",
            "test_dependencies",
            "recommended_dependencies",
            "optional_dependencies",
            "uses_from_macos",
            "uses_from_macos_bounds",
        ]
        .map(|key| {
            let list = formula
                .get_str(key)
                .filter(|v| **v != RubyValue::Nil)
                .cloned()
                .unwrap_or_else(|| array([]));
            (str(key), list)
        }),
    );
    let (stable_dependencies, stable_uses_from_macos) = process_dependencies_and_requirements(
        Some(&stable_dependency_hash),
        requirements,
        "stable",
    );
    // "head_dependencies is always present unless the stable and head deps
    // are identical": without it (and without any head) the stable hash is
    // used, so every formula has head_dependencies.
    let head_dependency_hash = formula
        .get_str("head_dependencies")
        .filter(|v| **v != RubyValue::Nil)
        .unwrap_or(&stable_dependency_hash);
    let (head_dependencies, head_uses_from_macos) =
        process_dependencies_and_requirements(Some(head_dependency_hash), requirements, "head");
    out.set("stable_dependencies", array(stable_dependencies));
    out.set(
        "stable_patches",
        formula
            .get_str("patches")
            .cloned()
            .unwrap_or_else(|| array([])),
    );
    out.set("stable_uses_from_macos", array(stable_uses_from_macos));
    out.set("head_dependencies", array(head_dependencies));
    out.set("head_uses_from_macos", array(head_uses_from_macos));
    out
}

/// `process_dependencies_and_requirements`: (dependencies then
/// requirements, uses_from_macos pairs) for `spec` (`"stable"`/`"head"`).
pub fn process_dependencies_and_requirements(
    dependency_hash: Option<&RubyValue>,
    requirements: Option<&RubyValue>,
    spec: &str,
) -> (Vec<RubyValue>, Vec<RubyValue>) {
    let (mut dependencies, uses_from_macos) = match dependency_hash.filter(|h| !h.is_blank()) {
        Some(dependency_hash) => {
            let symbolized = symbolize_dependency_hash(dependency_hash);
            (
                process_dependencies(&symbolized),
                process_uses_from_macos(&symbolized),
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    if let Some(requirements) = requirements.filter(|r| !r.is_blank()) {
        dependencies.extend(process_requirements(requirements, spec));
    }
    (dependencies, uses_from_macos)
}

/// `symbolize_dependency_hash`: dependency types and bounds become symbols
/// (`{"bar" => "build"}` -> `{"bar" => :build}`, `{"since" => "catalina"}`
/// -> `{since: :catalina}`).
pub fn symbolize_dependency_hash(dependency_hash: &RubyValue) -> RubyValue {
    let pairs = dependency_hash.as_hash().unwrap_or_default();
    hash(pairs.iter().map(|(key, deps)| {
        let is_bounds = key.as_str() == Some("uses_from_macos_bounds");
        let deps = deps.as_array().unwrap_or_default();
        let deps = deps.iter().map(|dep| match dep.as_hash() {
            Some(entries) if is_bounds => {
                hash(entries.iter().map(|(k, v)| (k.to_sym(), v.to_sym())))
            }
            Some(entries) => hash(entries.iter().map(|(name, types)| {
                let types = match types.as_array() {
                    Some(list) => array(list.iter().map(RubyValue::to_sym)),
                    None => types.to_sym(),
                };
                (name.clone(), types)
            })),
            None => dep.clone(),
        });
        (key.clone(), array(deps))
    }))
}

/// `process_dependencies`: the runtime names, then `{name => type}` for
/// build, test, recommended and optional dependencies, in that order.
pub fn process_dependencies(dependency_hash: &RubyValue) -> Vec<RubyValue> {
    let list = |key: &str| {
        dependency_hash
            .get_str(key)
            .and_then(RubyValue::as_array)
            .unwrap_or_default()
            .to_vec()
    };
    let mut out = list("dependencies");
    for kind in ["build", "test", "recommended", "optional"] {
        for dep in list(&format!("{kind}_dependencies")) {
            out.push(hash([(dep, sym(kind))]));
        }
    }
    out
}

/// `MacOSVersion::SYMBOLS.key(version)`: `"14"` -> `:sonoma`.
fn macos_symbol(version: Option<&RubyValue>) -> RubyValue {
    let version = version.and_then(RubyValue::as_str);
    MACOS_NEWEST_FIRST
        .iter()
        .find(|(_, number)| Some(*number) == version)
        .map_or(RubyValue::Nil, |(name, _)| sym(*name))
}

/// `process_requirements`: the supported requirements of `spec`, as
/// `:name` or `{name: [version, *contexts]}`.
pub fn process_requirements(requirements: &RubyValue, spec: &str) -> Vec<RubyValue> {
    let requirements = requirements.as_array().unwrap_or_default();
    requirements
        .iter()
        .filter_map(|req| {
            let specs = req.get_str("specs").and_then(RubyValue::as_array)?;
            if !specs.contains(&str(spec)) {
                return None;
            }
            let name = req.get_str("name")?.as_str()?;
            if !API_SUPPORTED_REQUIREMENTS.contains(&name) {
                return None;
            }
            let version = match name {
                "arch" => optional_sym(req.get_str("version")),
                "macos" | "maximum_macos" => macos_symbol(req.get_str("version")),
                _ => req.get_str("version").cloned().unwrap_or(RubyValue::Nil),
            };
            let mut tags = Vec::new();
            if !version.is_blank() {
                tags.push(version);
            }
            let contexts = req.get_str("contexts").and_then(RubyValue::as_array);
            tags.extend(contexts.unwrap_or_default().iter().map(|tag| match tag {
                RubyValue::Str(_) => tag.to_sym(),
                RubyValue::Hash(pairs) => hash(pairs.iter().map(|(k, v)| (k.to_sym(), v.clone()))),
                other => other.clone(),
            }));
            Some(if tags.is_empty() {
                sym(name)
            } else {
                hash([(sym(name), array(tags))])
            })
        })
        .collect()
}

/// `deep_transform_values(&:to_sym)`.
fn deep_to_sym(value: &RubyValue) -> RubyValue {
    match value {
        RubyValue::Hash(pairs) => hash(pairs.iter().map(|(k, v)| (k.clone(), deep_to_sym(v)))),
        RubyValue::Array(items) => array(items.iter().map(deep_to_sym)),
        other => other.to_sym(),
    }
}

/// `process_uses_from_macos`: `[name, bounds]`, or `[{name => type,
/// **bounds}, {}]` when the entry has a type.
pub fn process_uses_from_macos(dependency_hash: &RubyValue) -> Vec<RubyValue> {
    let list = |key: &str| {
        dependency_hash
            .get_str(key)
            .and_then(RubyValue::as_array)
            .unwrap_or_default()
            .to_vec()
    };
    let bounds = list("uses_from_macos_bounds");
    list("uses_from_macos")
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let bounds = bounds
                .get(i)
                .and_then(RubyValue::as_hash)
                .unwrap_or_default();
            let bounds: Vec<(RubyValue, RubyValue)> = bounds
                .iter()
                .map(|(k, v)| (k.to_sym(), v.to_sym()))
                .collect();
            match entry {
                RubyValue::Hash(_) => {
                    let RubyValue::Hash(mut merged) = deep_to_sym(entry) else {
                        unreachable!("a Hash stays a Hash");
                    };
                    for (k, v) in bounds {
                        match merged.iter_mut().find(|(key, _)| *key == k) {
                            Some(pair) => pair.1 = v,
                            None => merged.push((k, v)),
                        }
                    }
                    array([RubyValue::Hash(merged), empty_hash()])
                }
                _ => array([entry.clone(), RubyValue::Hash(bounds)]),
            }
        })
        .collect()
}

/// brew's own specs, translated literally: each input and expectation is
/// the Ruby literal of the cited spec, written with [`sym`]/[`str`]/...
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruby::RubyValue::{Bool, Int, Nil};

    fn checksums(list: &[(RubyValue, &str, &str)]) -> Vec<BottleChecksum> {
        list.iter()
            .map(|(cellar, tag, checksum)| BottleChecksum {
                tag: tag.to_string(),
                cellar: cellar.clone(),
                checksum: checksum.to_string(),
            })
            .collect()
    }

    fn bottle_hash(
        tag: RubyValue,
        cellar: RubyValue,
        checksum: &str,
    ) -> [(RubyValue, RubyValue); 3] {
        [
            (str("bottle_tag"), tag),
            (str("bottle_cellar"), cellar),
            (str("bottle_checksum"), str(checksum)),
        ]
    }

    /// test/api/formula_struct_spec.rb, `#serialize_bottle` (both examples).
    #[test]
    fn serialize_bottle_matches_brews_spec() {
        let formula = FormulaStruct {
            bottle_checksums: checksums(&[
                (sym("any"), "arm64_sequoia", "checksum1"),
                (sym("any_skip_relocation"), "sequoia", "checksum2"),
                (str("/opt/homebrew/Cellar"), "arm64_sonoma", "checksum3"),
            ]),
            ..FormulaStruct::default()
        };
        assert_eq!(
            formula.serialize_bottle("arm64_tahoe"),
            Some(bottle_hash(sym("arm64_sequoia"), sym("any"), "checksum1"))
        );
        assert_eq!(
            formula.serialize_bottle("arm64_sequoia"),
            Some(bottle_hash(Nil, sym("any"), "checksum1"))
        );
        assert_eq!(
            formula.serialize_bottle("sequoia"),
            Some(bottle_hash(Nil, Nil, "checksum2"))
        );
        assert_eq!(
            formula.serialize_bottle("arm64_sonoma"),
            Some(bottle_hash(Nil, str("/opt/homebrew/Cellar"), "checksum3"))
        );
        assert_eq!(formula.serialize_bottle("x86_64_linux"), None);

        let all = FormulaStruct {
            bottle_checksums: checksums(&[(sym("any_skip_relocation"), "all", "checksum1")]),
            ..FormulaStruct::default()
        };
        for tag in ["arm64_tahoe", "sequoia", "x86_64_linux"] {
            assert_eq!(
                all.serialize_bottle(tag),
                Some(bottle_hash(sym("all"), Nil, "checksum1")),
                "{tag}"
            );
        }
    }

    /// formula_struct.rb `serialize_bottle`: a checksum without a cellar
    /// is `:any` (no spec covers it).
    #[test]
    fn a_bottle_without_cellar_is_any() {
        let formula = FormulaStruct {
            bottle_checksums: checksums(&[(Nil, "sequoia", "checksum2")]),
            ..FormulaStruct::default()
        };
        assert_eq!(
            formula.serialize_bottle("sequoia"),
            Some(bottle_hash(Nil, sym("any"), "checksum2"))
        );
    }

    /// test/api/formula_struct_spec.rb, "serialize/deserialize round-trip":
    /// that struct, serialised for arm64_sequoia. brew's spec only checks
    /// the round trip; the expected text applies deep_stringify_symbols
    /// and deep_compact_blank by hand, and each part has the form brew's
    /// `::deserialize` specs feed back in (`"stable_url_args" =>
    /// [url]`, `"stable_uses_from_macos" => [["zlib"]]`, `"conflicts" =>
    /// [["other-formula"]]`, `"bottle_cellar" => ":any"`).
    #[test]
    fn serialize_matches_brews_round_trip_spec() {
        let mut original = FormulaStruct::default();
        for (prop, value) in [
            ("desc", str("round-trip test")),
            ("homepage", str("https://example.com")),
            ("license", str("MIT")),
            ("ruby_source_checksum", str("abc123")),
            ("stable_version", str("1.0.0")),
            (
                "stable_url_args",
                array([str("https://example.com/foo-1.0.tar.gz"), empty_hash()]),
            ),
            (
                "stable_dependencies",
                array([str("dep1"), hash([(str("dep2"), sym("build"))])]),
            ),
            ("executables", array([str("foo")])),
            (
                "stable_uses_from_macos",
                array([array([str("zlib"), empty_hash()])]),
            ),
            (
                "conflicts",
                array([array([str("other-formula"), empty_hash()])]),
            ),
            ("revision", Int(2)),
            ("aliases", array([str("foo-alias")])),
            ("post_install_defined", Bool(true)),
        ] {
            original.set(prop, value);
        }
        original.bottle_checksums = checksums(&[(sym("any"), "arm64_sequoia", "checksum1")]);
        assert_eq!(
            original.serialize("arm64_sequoia").to_json(),
            concat!(
                r#"{"aliases":["foo-alias"],"conflicts":[["other-formula"]],"desc":"round-trip test","#,
                r#""executables":["foo"],"homepage":"https://example.com","license":"MIT","#,
                r#""post_install_defined":true,"revision":2,"ruby_source_checksum":"abc123","#,
                r#""stable_dependencies":["dep1",{"dep2":":build"}],"#,
                r#""stable_url_args":["https://example.com/foo-1.0.tar.gz"],"#,
                r#""stable_uses_from_macos":[["zlib"]],"stable_version":"1.0.0","#,
                r#""bottle_cellar":":any","bottle_checksum":"checksum1"}"#
            )
        );
        // On another macOS the fallback bottle's tag is named.
        let tahoe = original.serialize("arm64_tahoe");
        assert_eq!(tahoe.get_str("bottle_tag"), Some(&str(":arm64_sequoia")));
    }

    /// The `let` blocks of test/api/formula/formula_struct_generator_spec.rb.
    fn raw_dependency_hash() -> RubyValue {
        hash([
            (
                str("dependencies"),
                array([
                    str("foo"),
                    hash([(str("bar"), str("build"))]),
                    hash([(str("baz"), array([str("build"), str("test")]))]),
                ]),
            ),
            (
                str("uses_from_macos"),
                array([
                    str("abc"),
                    hash([(str("def"), str("build"))]),
                    hash([(str("ghi"), array([str("build"), str("test")]))]),
                    str("jkl"),
                ]),
            ),
            (
                str("uses_from_macos_bounds"),
                array([
                    empty_hash(),
                    hash([(str("since"), str("catalina"))]),
                    empty_hash(),
                    hash([(str("since"), str("catalina"))]),
                ]),
            ),
        ])
    }

    fn symbolized_dependency_hash() -> RubyValue {
        hash([
            (
                str("dependencies"),
                array([
                    str("foo"),
                    hash([(str("bar"), sym("build"))]),
                    hash([(str("baz"), array([sym("build"), sym("test")]))]),
                ]),
            ),
            (
                str("uses_from_macos"),
                array([
                    str("abc"),
                    hash([(str("def"), sym("build"))]),
                    hash([(str("ghi"), array([sym("build"), sym("test")]))]),
                    str("jkl"),
                ]),
            ),
            (
                str("uses_from_macos_bounds"),
                array([
                    empty_hash(),
                    hash([(sym("since"), sym("catalina"))]),
                    empty_hash(),
                    hash([(sym("since"), sym("catalina"))]),
                ]),
            ),
        ])
    }

    fn dependency_args() -> Vec<RubyValue> {
        vec![
            str("foo"),
            hash([(str("bar"), sym("build"))]),
            hash([(str("baz"), array([sym("build"), sym("test")]))]),
        ]
    }

    fn uses_from_macos_args() -> Vec<RubyValue> {
        vec![
            array([str("abc"), empty_hash()]),
            array([
                hash([(str("def"), sym("build")), (sym("since"), sym("catalina"))]),
                empty_hash(),
            ]),
            array([
                hash([(str("ghi"), array([sym("build"), sym("test")]))]),
                empty_hash(),
            ]),
            array([str("jkl"), hash([(sym("since"), sym("catalina"))])]),
        ]
    }

    fn requirements_array() -> RubyValue {
        let requirement = |name: &str, version: Option<&str>, specs: &[&str], contexts: &[&str]| {
            let mut pairs = vec![(str("name"), str(name))];
            if let Some(version) = version {
                pairs.push((str("version"), str(version)));
            }
            pairs.push((str("specs"), array(specs.iter().map(|s| str(*s)))));
            if !contexts.is_empty() {
                pairs.push((str("contexts"), array(contexts.iter().map(|c| str(*c)))));
            }
            hash(pairs)
        };
        array([
            requirement("linux", None, &["head"], &[]),
            requirement("codesign", None, &["stable", "head"], &[]),
            requirement("arch", Some("arm64"), &["stable", "head"], &[]),
            requirement("macos", Some("14"), &["stable"], &[]),
            requirement("maximum_macos", Some("13"), &["stable", "head"], &["build"]),
            requirement("xcode", None, &["stable", "head"], &[]),
            requirement(
                "xcode",
                Some("11.2"),
                &["stable", "head"],
                &["build", "test"],
            ),
        ])
    }

    fn stable_requirements_args() -> Vec<RubyValue> {
        vec![
            hash([(sym("arch"), array([sym("arm64")]))]),
            hash([(sym("macos"), array([sym("sonoma")]))]),
            hash([(sym("maximum_macos"), array([sym("ventura"), sym("build")]))]),
            sym("xcode"),
            hash([(
                sym("xcode"),
                array([str("11.2"), sym("build"), sym("test")]),
            )]),
        ]
    }

    fn head_requirements_args() -> Vec<RubyValue> {
        vec![
            sym("linux"),
            hash([(sym("arch"), array([sym("arm64")]))]),
            hash([(sym("maximum_macos"), array([sym("ventura"), sym("build")]))]),
            sym("xcode"),
            hash([(
                sym("xcode"),
                array([str("11.2"), sym("build"), sym("test")]),
            )]),
        ]
    }

    /// formula_struct_generator_spec.rb `::process_dependencies_and_requirements`.
    #[test]
    fn dependencies_and_requirements_match_brews_spec() {
        let deps = raw_dependency_hash();
        let requirements = requirements_array();
        let joined = |a: Vec<RubyValue>, b: Vec<RubyValue>| a.into_iter().chain(b).collect();
        assert_eq!(
            process_dependencies_and_requirements(Some(&deps), Some(&requirements), "stable"),
            (
                joined(dependency_args(), stable_requirements_args()),
                uses_from_macos_args()
            )
        );
        assert_eq!(
            process_dependencies_and_requirements(Some(&deps), Some(&requirements), "head"),
            (
                joined(dependency_args(), head_requirements_args()),
                uses_from_macos_args()
            )
        );
        assert_eq!(
            process_dependencies_and_requirements(Some(&deps), None, "head"),
            (dependency_args(), uses_from_macos_args())
        );
        assert_eq!(
            process_dependencies_and_requirements(None, Some(&requirements), "stable"),
            (stable_requirements_args(), vec![])
        );
        assert_eq!(
            process_dependencies_and_requirements(None, Some(&requirements), "head"),
            (head_requirements_args(), vec![])
        );
        assert_eq!(
            process_dependencies_and_requirements(None, None, "stable"),
            (vec![], vec![])
        );
    }

    /// formula_struct_generator_spec.rb `::symbolize_dependency_hash`,
    /// `::process_dependencies`, `::process_uses_from_macos`.
    #[test]
    fn dependency_steps_match_brews_spec() {
        assert_eq!(
            symbolize_dependency_hash(&raw_dependency_hash()),
            symbolized_dependency_hash()
        );
        assert_eq!(
            process_dependencies(&symbolized_dependency_hash()),
            dependency_args()
        );
        assert_eq!(
            process_uses_from_macos(&symbolized_dependency_hash()),
            uses_from_macos_args()
        );
    }

    /// What those struct values become in a per-tag file (the spec's
    /// values through deep_stringify_symbols and deep_compact_blank).
    #[test]
    fn spec_dependencies_serialise_with_colon_symbols() {
        let serialised = |items: Vec<RubyValue>| {
            array(items)
                .deep_stringify_symbols()
                .deep_compact_blank()
                .unwrap()
                .to_json()
        };
        assert_eq!(
            serialised(uses_from_macos_args()),
            r#"[["abc"],[{"def":":build",":since":":catalina"}],[{"ghi":[":build",":test"]}],["jkl",{":since":":catalina"}]]"#
        );
        assert_eq!(
            serialised(
                dependency_args()
                    .into_iter()
                    .chain(stable_requirements_args())
                    .collect()
            ),
            concat!(
                r#"["foo",{"bar":":build"},{"baz":[":build",":test"]},{":arch":[":arm64"]},"#,
                r#"{":macos":[":sonoma"]},{":maximum_macos":[":ventura",":build"]},":xcode","#,
                r#"{":xcode":["11.2",":build",":test"]}]"#
            )
        );
    }

    /// formula_struct_generator_spec.rb "::generate_formula_struct_hash
    /// falls back to stable deps when head_dependencies is absent" (that
    /// hash verbatim), and the serialised stable_url_args of brew's
    /// `::deserialize` spec ("formats _url_args into [String, Hash] pairs").
    #[test]
    fn generated_struct_matches_brews_spec() {
        let formula = RubyValue::from_json(
            r#"{"desc": "Test formula", "homepage": "https://example.com", "license": "MIT",
                "ruby_source_checksum": {"sha256": "abc123"}, "versions": {"stable": "1.0.0"},
                "urls": {"stable": {"url": "https://example.com/foo-1.0.tar.gz"}},
                "dependencies": ["foo"], "recommended_dependencies": [], "optional_dependencies": [],
                "uses_from_macos": [], "uses_from_macos_bounds": []}"#,
        )
        .unwrap();
        let generated = generate_formula_struct(&formula);
        let head = generated.get("head_dependencies").unwrap();
        assert!(!head.is_blank());
        assert_eq!(Some(head), generated.get("stable_dependencies"));
        let entry = generated.serialize("arm64_sequoia");
        assert_eq!(
            entry.get_str("stable_url_args"),
            Some(&array([str("https://example.com/foo-1.0.tar.gz")]))
        );
        assert_eq!(entry.get_str("ruby_source_checksum"), Some(&str("abc123")));
        assert_eq!(
            entry.get_str("stable_dependencies"),
            Some(&array([str("foo")]))
        );
        // No bottle: no bottle keys at all.
        assert_eq!(entry.get_str("bottle_checksum"), None);
    }

    /// The `deprecate_args` form of formula_struct_spec.rb's `::deserialize`
    /// spec ("sets predicate _present fields from _args presence"):
    /// `{":date" => "2025-01-01", ":because" => "discontinued"}`: symbol
    /// keys, and a reason that is not a formula reason stays a string.
    #[test]
    fn deprecate_and_disable_args_match_brews_spec() {
        let formula = RubyValue::from_json(
            r#"{"desc": "test formula", "deprecate_args": {"date": "2025-01-01", "because": "discontinued",
                "replacement_formula": null, "replacement_cask": null},
                "disable_args": {"date": "2025-06-01", "because": "unmaintained"}}"#,
        )
        .unwrap();
        let entry = generate_formula_struct(&formula).serialize("arm64_sequoia");
        assert_eq!(
            entry.get_str("deprecate_args").unwrap().to_json(),
            r#"{":date":"2025-01-01",":because":"discontinued"}"#
        );
        assert_eq!(
            entry.get_str("disable_args").unwrap().to_json(),
            r#"{":date":"2025-06-01",":because":":unmaintained"}"#
        );
    }
}
