//! The per-tag API file brew >= 6 installs from
//! (`{api}/internal/packages.<tag>.jws.json`, homebrew.md "How clients use
//! a mirror"): a signed JWS whose payload names, per formula, exactly the
//! bottle a client on that tag requests. The mirror plans from it and
//! publishes it byte for byte, so the two can never disagree.
//!
//! The payload is `FormulaStruct#serialize(bottle_tag:)` per formula
//! (brew's `Library/Homebrew/api/formula_struct.rb`, written by
//! `dev-cmd/generate-internal-api.rb`), which runs
//! `Utils.deep_stringify_symbols` (`utils.rb`): every Ruby symbol is a
//! string with a leading colon (`":all"`, `{"pkgconf": ":build"}`,
//! `":linux"`), and a real string that begins with `:` or `\` gets a `\`
//! in front. [`Word`] undoes that, as `deep_unstringify_symbols` does; the
//! colon-free form older files (and older stand-ins) wrote is read too.
//!
//! Serialisation also drops blank values and zeros (`deep_compact_blank`):
//! no `revision` means 0, no `bottle_rebuild` means 0, no `bottle_checksum`
//! means no bottle for this tag, `bottle_tag` is there only when the bottle
//! is of another tag (`:all`, or an older macOS), and a disabled formula is
//! marked by the presence of `disable_args` (there is no `disabled` flag).

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::digest::Sha256Digest;
use crate::model::naming::{
    checked_mirror_file_name, pkg_version, validate_formula_name, validate_version, version_rebuild,
};
use crate::model::rejection::Rejection;
use crate::model::tag::{Tag, TagKind, macos_rank};

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
    /// Formulae brew installs with this one on every OS: the plain names of
    /// `stable_dependencies` and the `:recommended` ones (not `:build`,
    /// `:test`, `:optional`, nor requirements such as `:linux`).
    pub dependencies: Vec<String>,
    /// `stable_uses_from_macos`: formulae macOS provides, installed from
    /// Homebrew on Linux and on macOS older than their `:since` bound.
    pub uses_from_macos: Vec<UsesFromMacos>,
    /// `disable_args` is present: brew refuses to install it.
    pub disabled: bool,
}

/// One `stable_uses_from_macos` entry: `["zlib"]`,
/// `["curl", {":since": ":ventura"}]` or
/// `[{"libxml2": ":build", ":since": ":sonoma"}]`
/// (`api/formula/formula_struct_generator.rb` `process_uses_from_macos`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsesFromMacos {
    pub name: String,
    /// The macOS release from which the system's copy is used.
    pub since: Option<String>,
    /// Typed `:build` or `:test`: never installed to run.
    pub build_only: bool,
}

impl UsesFromMacos {
    /// Whether a client on `client` installs it from Homebrew, as
    /// `UsesFromMacOSDependency#use_macos_install?`
    /// (`dependency/uses_from_macos_dependency.rb`) decides: always on
    /// Linux; on macOS only below the `:since` bound (none: never), judged
    /// by the macOS the bottle was built for when it is an older one's
    /// (brew reads that from the bottle's tab), and an unknown bound counts
    /// as the oldest macOS (brew's `Version::NULL`).
    pub fn from_homebrew_on(&self, client: &Tag, bottle: Option<&Tag>) -> bool {
        if self.build_only {
            return false;
        }
        let client_rank = match client.kind() {
            TagKind::MacOs { rank, .. } => rank,
            TagKind::Linux(_) | TagKind::All => return true,
        };
        let Some(since) = &self.since else {
            return false;
        };
        let Some(since_rank) = macos_rank(since) else {
            return false;
        };
        let built_rank = bottle.and_then(|tag| match tag.kind() {
            TagKind::MacOs { rank, .. } => rank,
            _ => None,
        });
        match built_rank.or(client_rank) {
            // Ranks count from the newest release: larger is older.
            Some(rank) => rank > since_rank,
            // A macOS we cannot place: Homebrew's copy is the safe side.
            None => true,
        }
    }
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

    /// The formulae a client on `client` installs with this one: its
    /// runtime dependencies and the `uses_from_macos` ones that client
    /// takes from Homebrew.
    pub fn dependencies_on(&self, client: &Tag) -> Vec<String> {
        let built_for = self.bottle.as_ref().map(|b| &b.tag);
        let mut out = self.dependencies.clone();
        out.extend(
            self.uses_from_macos
                .iter()
                .filter(|u| u.from_homebrew_on(client, built_for))
                .map(|u| u.name.clone()),
        );
        out
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
    stable_uses_from_macos: Vec<serde_json::Value>,
    /// Present (and not blank) exactly for disabled formulae.
    #[serde(default)]
    disable_args: Option<serde_json::Value>,
    /// Files before brew 6 (and older stand-ins) said it with a flag.
    #[serde(default)]
    disabled: bool,
}

/// A string of the per-tag file read back as brew's
/// `Utils.deep_unstringify_symbols` (`utils.rb`) reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word<'a> {
    /// `":build"` is the symbol `build`.
    Symbol(&'a str),
    /// A plain string; `"\\:x"` is the string `:x`.
    Text(&'a str),
}

impl<'a> Word<'a> {
    fn read(text: &'a str) -> Self {
        if let Some(escaped) = text.strip_prefix('\\') {
            Word::Text(escaped)
        } else if let Some(symbol) = text.strip_prefix(':') {
            Word::Symbol(symbol)
        } else {
            Word::Text(text)
        }
    }

    /// The name whatever the form: older files wrote symbols without the
    /// colon (`"build"`, `"all"`).
    fn name(self) -> &'a str {
        match self {
            Word::Symbol(s) | Word::Text(s) => s,
        }
    }
}

/// The dependency types brew does not install to run a bottle
/// (`Dependency#build?`, `#test?`, `#optional?`); `:recommended` and
/// untyped ones it does.
fn is_runtime(types: &serde_json::Value) -> bool {
    let not_to_run = |t: &serde_json::Value| {
        t.as_str()
            .is_some_and(|t| matches!(Word::read(t).name(), "build" | "test" | "optional"))
    };
    match types {
        serde_json::Value::Array(list) => !list.iter().any(not_to_run),
        other => !not_to_run(other),
    }
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

    /// The formulae a client of this file can install, with the closure of
    /// what brew installs with them when `rules.with_deps`: all when
    /// `requested` is empty. Names the closure needs but the file lacks go
    /// to `missing`.
    pub fn closure<'a>(
        &'a self,
        requested: &[String],
        rules: DependencyRules,
        missing: &mut Vec<String>,
    ) -> Vec<&'a PackageEntry> {
        if requested.is_empty() {
            return self.formulae.values().collect();
        }
        dependency_closure(
            &self.closure_roots(requested, rules),
            rules.with_deps,
            |name| self.formulae.get(name),
            |entry| entry.dependencies_on(&self.tag),
            missing,
        )
    }

    /// Where this file's closure of `requested` starts
    /// ([`DependencyRules::roots`]).
    pub fn closure_roots(&self, requested: &[String], rules: DependencyRules) -> Vec<String> {
        rules.roots(requested, &self.tag, |name| {
            self.formulae.contains_key(name)
        })
    }

    /// Entries set aside that a client of `requested` (with `rules`) would
    /// want: all of them for a whole mirror, else those the subset names or
    /// reaches.
    pub fn rejections_in_scope(
        &self,
        requested: &[String],
        rules: DependencyRules,
    ) -> Vec<&Rejection> {
        if requested.is_empty() {
            return self.rejections.iter().collect();
        }
        let mut missing = Vec::new();
        let reached: HashSet<&str> = self
            .closure(requested, rules, &mut missing)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        let roots = self.closure_roots(requested, rules);
        self.rejections
            .iter()
            .filter(|r| {
                let name = r.formula.as_str();
                roots.iter().any(|n| n == name)
                    || missing.iter().any(|n| n == name)
                    || reached.contains(name)
            })
            .collect()
    }
}

/// Formulae brew on Linux installs with everything for older hosts.
pub const LINUX_HOST_FORMULAE: &[&str] = &["glibc", "gcc"];

/// How far a formula subset reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DependencyRules {
    /// Add what brew installs with the requested formulae, recursively.
    pub with_deps: bool,
    /// Linux tags: with the dependencies, also [`LINUX_HOST_FORMULAE`].
    pub linux_host_formulae: bool,
}

impl DependencyRules {
    /// `requested`, plus on a Linux `client` (with the rule on) `glibc` and
    /// `gcc` where `known` has them: brew adds both to every install on
    /// hosts with glibc < 2.39 or libstdc++ < 6.0.33 (Debian 12, Ubuntu
    /// 22.04), when the API has them (`extend/os/linux/dependency_collector.rb`).
    pub fn roots(
        &self,
        requested: &[String],
        client: &Tag,
        known: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut roots = requested.to_vec();
        if self.with_deps && self.linux_host_formulae && matches!(client.kind(), TagKind::Linux(_))
        {
            for host in LINUX_HOST_FORMULAE {
                if known(host) && !roots.iter().any(|r| r == host) {
                    roots.push(host.to_string());
                }
            }
        }
        roots
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
                // `":all"`, `":arm64_sequoia"`: a symbol (or, in older
                // files, the bare tag).
                Some(text) => Tag::parse(Word::read(&text).name())
                    .map_err(|p| (Some(crate::shorten(&text, 64)), format!("bottle_tag: {p}")))?,
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
        uses_from_macos: parse_uses_from_macos(&raw.stable_uses_from_macos),
        disabled: raw.disabled || raw.disable_args.as_ref().is_some_and(is_present),
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

/// Not blank in the sense of brew's `deep_compact_blank` (which would have
/// dropped it).
fn is_present(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null | serde_json::Value::Bool(false) => false,
        serde_json::Value::String(s) => !s.trim().is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
        serde_json::Value::Bool(true) | serde_json::Value::Number(_) => true,
    }
}

/// `stable_dependencies` holds plain names (runtime), `{name: type}` or
/// `{name: [types]}` objects, and requirements: symbols (`":linux"`) and
/// objects keyed by a symbol (`{":macos": [":sonoma", ":build"]}`), which
/// are not formulae (`FormulaStruct::DependsOnArgs`).
fn runtime_dependencies(listed: &[serde_json::Value]) -> Vec<String> {
    let mut out = Vec::new();
    for dependency in listed {
        match dependency {
            serde_json::Value::String(text) => {
                if let Word::Text(name) = Word::read(text) {
                    out.push(name.to_string());
                }
            }
            serde_json::Value::Object(map) => {
                for (key, types) in map {
                    if let Word::Text(name) = Word::read(key)
                        && is_runtime(types)
                    {
                        out.push(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `stable_uses_from_macos`: `[name, bounds]` pairs with blank parts
/// dropped (see [`UsesFromMacos`]); shapes brew does not write are
/// ignored, as unknown fields are.
pub(crate) fn parse_uses_from_macos(listed: &[serde_json::Value]) -> Vec<UsesFromMacos> {
    let since_of = |map: &serde_json::Map<String, serde_json::Value>| {
        map.iter()
            .find(|(k, _)| Word::read(k).name() == "since")
            .and_then(|(_, v)| v.as_str())
            .map(|v| Word::read(v).name().to_string())
    };
    let mut out = Vec::new();
    for pair in listed {
        let (first, bounds) = match pair {
            serde_json::Value::Array(parts) if !parts.is_empty() => (&parts[0], parts.get(1)),
            // A bare name: no bounds.
            serde_json::Value::String(_) => (pair, None),
            _ => continue,
        };
        let bound = bounds.and_then(|b| b.as_object()).and_then(since_of);
        match first {
            serde_json::Value::String(text) => {
                if let Word::Text(name) = Word::read(text) {
                    out.push(UsesFromMacos {
                        name: name.to_string(),
                        since: bound,
                        build_only: false,
                    });
                }
            }
            // `{"libxml2": ":build", ":since": ":sonoma"}`: the name is the
            // one key that is not a symbol.
            serde_json::Value::Object(map) => {
                let Some((name, types)) = map
                    .iter()
                    .find(|(k, _)| matches!(Word::read(k), Word::Text(n) if n != "since"))
                else {
                    continue;
                };
                out.push(UsesFromMacos {
                    name: Word::read(name).name().to_string(),
                    since: since_of(map).or(bound),
                    build_only: !is_runtime(types),
                });
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

    /// An entry as brew 6.0.18's `FormulaStruct#serialize` writes it
    /// (formula_struct.rb, `Utils.deep_stringify_symbols`): symbols with a
    /// leading colon, blanks and zeros dropped.
    #[test]
    fn entries_follow_brews_serialisation() {
        let bytes = jws(&serde_json::json!({
            "metadata": {"homebrew_version": "6.0.18", "bottle_tag": "arm64_tahoe", "generated_at": 1},
            "formulae": {
                "wget": {"desc": "d", "homepage": "https://www.gnu.org/software/wget/",
                         "license": "GPL-3.0-or-later", "ruby_source_checksum": sha('f'),
                         "stable_version": "1.25.0",
                         "stable_url_args": ["https://ftp.gnu.org/gnu/wget/wget-1.25.0.tar.gz"],
                         "revision": 1, "bottle_rebuild": 2,
                         "stable_dependencies": ["libidn2", "openssl@3", {"pkgconf": ":build"},
                                                 {"gettext": ":recommended"}, {"doxygen": [":build", ":test"]},
                                                 {"gpgme": ":optional"}, ":linux",
                                                 {":macos": [":sonoma", ":build"]}],
                         "stable_uses_from_macos": [["zlib"], [{"libxml2": ":build", ":since": ":sonoma"}],
                                                    ["curl", {":since": ":ventura"}]],
                         "bottle_tag": ":arm64_sequoia", "bottle_cellar": ":any",
                         "bottle_checksum": sha('a')},
                "ca-certificates": {"stable_version": "2025-09-09", "bottle_tag": ":all",
                                    "bottle_checksum": sha('c')},
                "openssl@3": {"stable_version": "3.4.0", "bottle_cellar": "/opt/homebrew/Cellar",
                              "bottle_checksum": sha('b')},
                "gone": {"stable_version": "1.0", "bottle_checksum": sha('d'),
                         "disable_args": {"date": "2025-01-01", "because": ":unmaintained"}},
                "old": {"stable_version": "1.0", "bottle_checksum": sha('e'),
                        "deprecate_args": {"date": "2025-01-01", "because": ":unmaintained"}},
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
        let uses: Vec<(&str, Option<&str>, bool)> = wget
            .uses_from_macos
            .iter()
            .map(|u| (u.name.as_str(), u.since.as_deref(), u.build_only))
            .collect();
        assert_eq!(
            uses,
            [
                ("zlib", None, false),
                ("libxml2", Some("sonoma"), true),
                ("curl", Some("ventura"), false)
            ]
        );
        let ca = &file.formulae["ca-certificates"];
        assert_eq!(ca.bottle.as_ref().unwrap().tag.as_str(), "all");
        assert_eq!(
            ca.file_name(ca.bottle.as_ref().unwrap()),
            "ca-certificates-2025-09-09.all.bottle.tar.gz"
        );
        let openssl = &file.formulae["openssl@3"];
        assert_eq!((openssl.revision, openssl.rebuild), (0, 0));
        assert_eq!(openssl.bottle.as_ref().unwrap().tag, tahoe());
        assert!(file.formulae["gone"].disabled, "disable_args marks it");
        assert!(!file.formulae["old"].disabled, "deprecated is not disabled");
        assert_eq!(file.formulae["linux-only"].bottle, None);
    }

    /// Files written before brew 6 (and by older stand-ins) had bare tags,
    /// bare dependency types and a `disabled` flag.
    #[test]
    fn the_colon_free_form_of_older_files_reads_the_same() {
        let bytes = jws(&serde_json::json!({
            "formulae": {
                "wget": {"stable_version": "1.25.0", "bottle_checksum": sha('a'), "bottle_tag": "all",
                         "stable_dependencies": ["openssl@3", {"pkgconf": "build"}]},
                "gone": {"stable_version": "1.0", "bottle_checksum": sha('b'), "disabled": true}
            }
        }));
        let file = PackagesFile::parse(&tahoe(), bytes).unwrap();
        let wget = &file.formulae["wget"];
        assert_eq!(wget.bottle.as_ref().unwrap().tag.as_str(), "all");
        assert_eq!(wget.dependencies, ["openssl@3"]);
        assert!(file.formulae["gone"].disabled);
    }

    /// `deep_stringify_symbols` escapes a real string that begins with `:`
    /// as `"\\:..."`: it is a name, not a symbol, and no valid tag.
    #[test]
    fn an_escaped_string_is_not_a_symbol() {
        let bytes = jws(&serde_json::json!({
            "formulae": {
                "odd": {"stable_version": "1.0", "bottle_checksum": sha('a'), "bottle_tag": "\\:all"},
                "dep": {"stable_version": "1.0", "stable_dependencies": ["\\:linux"]}
            }
        }));
        let file = PackagesFile::parse(&tahoe(), bytes).unwrap();
        assert_eq!(file.rejections.len(), 1, "{:?}", file.rejections);
        assert!(file.rejections[0].problem.contains("bottle_tag"));
        assert_eq!(file.formulae["dep"].dependencies, [":linux"]);
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

    fn rules(with_deps: bool, linux_host_formulae: bool) -> DependencyRules {
        DependencyRules {
            with_deps,
            linux_host_formulae,
        }
    }

    fn closure_names(
        file: &PackagesFile,
        requested: &[&str],
        rules: DependencyRules,
    ) -> Vec<String> {
        let requested: Vec<String> = requested.iter().map(|s| s.to_string()).collect();
        file.closure(&requested, rules, &mut vec![])
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    #[test]
    fn the_closure_follows_runtime_dependencies_and_names_what_is_missing() {
        let bytes = jws(&serde_json::json!({
            "formulae": {
                "gtk+3": {"stable_version": "3.24", "bottle_checksum": sha('a'),
                          "stable_dependencies": ["openssl@3", {"meson": ":build"}, "nowhere", ":linux",
                                                  {":macos": [":sonoma", ":build"]}]},
                "openssl@3": {"stable_version": "3.4.0", "bottle_checksum": sha('b')},
                "meson": {"stable_version": "1.0", "bottle_checksum": sha('c')}
            }
        }));
        let file = PackagesFile::parse(&tahoe(), bytes).unwrap();
        let mut missing = vec![];
        let names: Vec<&str> = file
            .closure(&["gtk+3".into()], rules(true, true), &mut missing)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["gtk+3", "openssl@3"]);
        assert_eq!(missing, ["nowhere"], "requirements are not formulae");
        assert_eq!(file.closure(&[], rules(false, true), &mut missing).len(), 3);
    }

    /// `uses_from_macos` as `use_macos_install?` decides it
    /// (dependency/uses_from_macos_dependency.rb).
    #[test]
    fn uses_from_macos_is_installed_on_linux_and_below_its_bound() {
        let file_for = |tag: &str, bottle_tag: Option<&str>| {
            let mut curl = serde_json::json!({
                "stable_version": "8.0", "bottle_checksum": sha('a'),
                "stable_uses_from_macos": [["zlib"], [{"libxml2": ":build", ":since": ":sonoma"}],
                                           ["expat", {":since": ":sequoia"}], ["krb5", {":since": ":nosuchos"}]]
            });
            if let Some(t) = bottle_tag {
                curl["bottle_tag"] = serde_json::json!(t);
            }
            let formulae = serde_json::json!({
                "curl": curl,
                "zlib": {"stable_version": "1.3", "bottle_checksum": sha('b')},
                "libxml2": {"stable_version": "2.0", "bottle_checksum": sha('c')},
                "expat": {"stable_version": "2.6", "bottle_checksum": sha('d')},
                "krb5": {"stable_version": "1.21", "bottle_checksum": sha('e')}
            });
            let tag = Tag::parse(tag).unwrap();
            PackagesFile::parse(&tag, jws(&serde_json::json!({"formulae": formulae}))).unwrap()
        };
        let on = |tag, bottle_tag| {
            closure_names(&file_for(tag, bottle_tag), &["curl"], rules(true, false))
        };
        assert_eq!(
            on("x86_64_linux", None),
            ["curl", "zlib", "expat", "krb5"],
            "Linux: all but build-only"
        );
        assert_eq!(
            on("arm64_tahoe", None),
            ["curl"],
            "tahoe is past every bound"
        );
        assert_eq!(
            on("arm64_sonoma", None),
            ["curl", "expat"],
            "sonoma is older than sequoia"
        );
        assert_eq!(
            on("arm64_tahoe", Some(":arm64_sonoma")),
            ["curl", "expat"],
            "a bottle built for sonoma is judged by sonoma"
        );
        assert_eq!(
            closure_names(
                &file_for("x86_64_linux", None),
                &["curl"],
                rules(false, false)
            ),
            ["curl"]
        );
    }

    /// brew on Linux adds glibc and gcc for older hosts
    /// (extend/os/linux/dependency_collector.rb), when the API has them.
    #[test]
    fn linux_closures_take_glibc_and_gcc_when_asked_and_present() {
        let formulae = serde_json::json!({
            "jq": {"stable_version": "1.7", "bottle_checksum": sha('a')},
            "glibc": {"stable_version": "2.39", "bottle_checksum": sha('b')},
            "gcc": {"stable_version": "15.1", "bottle_checksum": sha('c'), "stable_dependencies": ["glibc"]}
        });
        let linux = Tag::parse("x86_64_linux").unwrap();
        let file = PackagesFile::parse(
            &linux,
            jws(&serde_json::json!({"formulae": formulae.clone()})),
        )
        .unwrap();
        assert_eq!(
            closure_names(&file, &["jq"], rules(true, true)),
            ["jq", "glibc", "gcc"]
        );
        assert_eq!(closure_names(&file, &["jq"], rules(true, false)), ["jq"]);
        assert_eq!(
            closure_names(&file, &["jq"], rules(false, true)),
            ["jq"],
            "no deps asked"
        );
        let mac =
            PackagesFile::parse(&tahoe(), jws(&serde_json::json!({"formulae": formulae}))).unwrap();
        assert_eq!(closure_names(&mac, &["jq"], rules(true, true)), ["jq"]);
        let without = PackagesFile::parse(
            &linux,
            jws(&serde_json::json!({"formulae": {"jq": {"stable_version": "1.7", "bottle_checksum": sha('a')}}})),
        )
        .unwrap();
        let mut missing = vec![];
        without.closure(&["jq".into()], rules(true, true), &mut missing);
        assert!(
            missing.is_empty(),
            "absent host formulae are not missing: {missing:?}"
        );
    }

    #[test]
    fn rejections_in_scope_are_those_the_subset_reaches() {
        let bytes = jws(&serde_json::json!({
            "formulae": {
                "wget": {"stable_version": "1.0", "bottle_checksum": sha('a'), "stable_dependencies": ["broken"]},
                "broken": {"stable_version": "1.0", "bottle_checksum": sha('b'), "bottle_tag": ":../x"},
                "elsewhere": {"stable_version": "1.0", "bottle_checksum": "nope"}
            }
        }));
        let file = PackagesFile::parse(&tahoe(), bytes).unwrap();
        let names = |requested: &[&str], with_deps| -> Vec<String> {
            let requested: Vec<String> = requested.iter().map(|s| s.to_string()).collect();
            let mut names: Vec<String> = file
                .rejections_in_scope(&requested, rules(with_deps, true))
                .iter()
                .map(|r| r.formula.clone())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&[], false), ["broken", "elsewhere"]);
        assert_eq!(names(&["wget"], true), ["broken"]);
        assert!(names(&["wget"], false).is_empty());
        assert_eq!(names(&["elsewhere"], false), ["elsewhere"]);
    }
}
