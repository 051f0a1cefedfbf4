//! The formula index (`{api}/formula.json`): lenient parsing of what we use,
//! strict validation of everything that reaches a URL or an object key.
//! A bad entry is rejected on its own, with a message; the rest goes on.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use crate::model::digest::Sha256Digest;
use crate::model::naming::{
    checked_mirror_file_name, image_name, pkg_version, validate_formula_name, validate_version,
};
use crate::model::packages::{UsesFromMacos, parse_uses_from_macos};
use crate::model::tag::Tag;

/// The registry Homebrew's bottles live on; always allowed.
pub const DEFAULT_BOTTLE_HOST: &str = "ghcr.io";

/// Which hosts bottle URLs may point at: ghcr.io, the API's own host and any
/// `--allow-host`. Redirects from those hosts are followed wherever they go
/// (that is how the registry serves blobs).
#[derive(Clone, Debug)]
pub struct HostPolicy {
    allowed: Vec<String>,
}

impl HostPolicy {
    pub fn new(api_url: &Url, extra_hosts: &[String]) -> Self {
        let mut allowed = vec![DEFAULT_BOTTLE_HOST.to_string()];
        allowed.extend(api_url.host_str().map(str::to_ascii_lowercase));
        allowed.extend(extra_hosts.iter().map(|h| h.trim().to_ascii_lowercase()));
        allowed.sort();
        allowed.dedup();
        HostPolicy { allowed }
    }

    pub fn allows(&self, url: &Url) -> bool {
        url.host_str()
            .map(|h| self.allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
            .unwrap_or(false)
    }

    pub fn allowed_hosts(&self) -> &[String] {
        &self.allowed
    }
}

/// One bottle file of a formula, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BottleFile {
    pub tag: Tag,
    pub url: Url,
    pub sha256: Sha256Digest,
}

/// A formula entry that passed validation. Bottle files that failed are
/// listed in `invalid_tags` so tag fallback never skips past them silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formula {
    pub name: String,
    pub version: String,
    pub revision: u32,
    pub rebuild: u32,
    pub disabled: bool,
    pub deprecated: bool,
    pub dependencies: Vec<String>,
    /// `uses_from_macos` with its `uses_from_macos_bounds`: installed from
    /// Homebrew on Linux and on macOS below the bound.
    pub uses_from_macos: Vec<UsesFromMacos>,
    pub bottles: Vec<BottleFile>,
    pub invalid_tags: Vec<String>,
}

impl Formula {
    pub fn pkg_version(&self) -> String {
        pkg_version(&self.version, self.revision)
    }

    pub fn tags(&self) -> Vec<Tag> {
        self.bottles.iter().map(|b| b.tag.clone()).collect()
    }

    pub fn bottle(&self, tag: &Tag) -> Option<&BottleFile> {
        self.bottles.iter().find(|b| &b.tag == tag)
    }

    /// The formulae a client on `client` installs with this one.
    pub fn dependencies_on(&self, client: &Tag) -> Vec<String> {
        let mut out = self.dependencies.clone();
        out.extend(
            self.uses_from_macos
                .iter()
                .filter(|u| u.from_homebrew_on(client, None))
                .map(|u| u.name.clone()),
        );
        out
    }
}

pub use crate::model::rejection::Rejection;

/// The validated index.
#[derive(Clone, Debug, Default)]
pub struct FormulaIndex {
    pub formulae: Vec<Formula>,
    pub rejections: Vec<Rejection>,
}

impl FormulaIndex {
    pub fn get(&self, name: &str) -> Option<&Formula> {
        self.formulae.iter().find(|f| f.name == name)
    }
}

#[derive(Deserialize)]
struct RawFormula {
    name: String,
    #[serde(default)]
    versions: RawVersions,
    #[serde(default)]
    revision: u32,
    #[serde(default)]
    dependencies: Vec<String>,
    /// `["zlib", {"libxml2": "build"}]`, and in the same order the bounds
    /// (`[{}, {"since": "sonoma"}]`).
    #[serde(default)]
    uses_from_macos: Vec<serde_json::Value>,
    #[serde(default)]
    uses_from_macos_bounds: Vec<serde_json::Value>,
    #[serde(default)]
    deprecated: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    bottle: RawBottleSection,
}

#[derive(Deserialize, Default)]
struct RawVersions {
    stable: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawBottleSection {
    stable: Option<RawBottleSpec>,
}

#[derive(Deserialize)]
struct RawBottleSpec {
    #[serde(default)]
    rebuild: u32,
    #[serde(default)]
    files: BTreeMap<String, RawBottleFile>,
}

#[derive(Deserialize)]
struct RawBottleFile {
    url: String,
    sha256: String,
}

/// Just enough of an entry to name it in a rejection.
#[derive(Deserialize)]
struct NameOnly {
    name: Option<serde_json::Value>,
}

/// The JWS wrapper of `formula.jws.json`.
#[derive(Deserialize)]
struct JwsEnvelope {
    payload: String,
}

/// Parses and validates a formula index. Only a body that is not a JSON
/// array of objects (nor a JWS envelope around one) is an error; individual
/// bad entries become [`Rejection`]s.
pub fn parse_index(text: &[u8], hosts: &HostPolicy) -> Result<FormulaIndex, String> {
    let entries: Vec<&RawValue> = match serde_json::from_slice(text) {
        Ok(entries) => entries,
        Err(array_err) => match serde_json::from_slice::<JwsEnvelope>(text) {
            Ok(envelope) => {
                let entries: Vec<Box<RawValue>> =
                    serde_json::from_str(&envelope.payload).map_err(|e| {
                        format!(
                            "JWS payload is not a JSON array: {}",
                            crate::serde_problem(&e)
                        )
                    })?;
                return Ok(validate_entries(entries.iter().map(|b| &**b), hosts));
            }
            Err(_) => {
                return Err(format!(
                    "not a JSON array of formulae: {}",
                    crate::serde_problem(&array_err)
                ));
            }
        },
    };
    Ok(validate_entries(entries.into_iter(), hosts))
}

fn validate_entries<'a>(
    entries: impl Iterator<Item = &'a RawValue>,
    hosts: &HostPolicy,
) -> FormulaIndex {
    let mut index = FormulaIndex::default();
    let mut seen = HashSet::new();
    for (position, raw) in entries.enumerate() {
        let parsed: RawFormula = match serde_json::from_str(raw.get()) {
            Ok(parsed) => parsed,
            Err(e) => {
                let name = serde_json::from_str::<NameOnly>(raw.get())
                    .ok()
                    .and_then(|n| n.name)
                    .map(|v| match v {
                        serde_json::Value::String(s) => crate::shorten(&s, 80),
                        other => crate::shorten(&other.to_string(), 80),
                    })
                    .unwrap_or_else(|| format!("#{position}"));
                index.rejections.push(Rejection {
                    formula: name,
                    tag: None,
                    problem: format!("malformed entry: {}", crate::serde_problem(&e)),
                });
                continue;
            }
        };
        match validate_formula(parsed, hosts, &mut index.rejections) {
            Ok(formula) => {
                if seen.insert(formula.name.clone()) {
                    index.formulae.push(formula);
                } else {
                    index.rejections.push(Rejection {
                        formula: formula.name,
                        tag: None,
                        problem: "duplicate formula name (first entry kept)".into(),
                    });
                }
            }
            Err(rejection) => index.rejections.push(rejection),
        }
    }
    index
}

fn validate_formula(
    raw: RawFormula,
    hosts: &HostPolicy,
    rejections: &mut Vec<Rejection>,
) -> Result<Formula, Rejection> {
    let shown = crate::shorten(&raw.name, 80);
    let reject = |problem: String| Rejection {
        formula: shown.clone(),
        tag: None,
        problem,
    };
    validate_formula_name(&raw.name).map_err(reject)?;
    let spec = raw.bottle.stable;
    let version = match (raw.versions.stable, &spec) {
        (Some(v), _) => v,
        // A formula without a stable version has nothing to mirror.
        (None, None) => String::new(),
        (None, Some(_)) => return Err(reject("has bottles but no stable version".into())),
    };
    if spec.is_some() {
        validate_version(&version).map_err(reject)?;
    }
    let image = image_name(&raw.name);
    let mut formula = Formula {
        name: raw.name,
        version,
        revision: raw.revision,
        rebuild: spec.as_ref().map(|s| s.rebuild).unwrap_or(0),
        disabled: raw.disabled,
        deprecated: raw.deprecated,
        dependencies: raw.dependencies,
        uses_from_macos: parse_uses_from_macos(
            &raw.uses_from_macos
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    let bounds = raw.uses_from_macos_bounds.get(i).cloned();
                    serde_json::Value::Array(std::iter::once(entry.clone()).chain(bounds).collect())
                })
                .collect::<Vec<_>>(),
        ),
        bottles: Vec::new(),
        invalid_tags: Vec::new(),
    };
    let pkg = formula.pkg_version();
    for (tag_text, file) in spec.map(|s| s.files).unwrap_or_default() {
        let checked = validate_bottle_file(&tag_text, &file, &image, hosts).and_then(|bottle| {
            checked_mirror_file_name(&formula.name, &pkg, bottle.tag.as_str(), formula.rebuild)
                .map(|_| bottle)
        });
        match checked {
            Ok(bottle) => formula.bottles.push(bottle),
            Err(problem) => {
                rejections.push(Rejection {
                    formula: formula.name.clone(),
                    tag: Some(crate::shorten(&tag_text, 80)),
                    problem,
                });
                formula.invalid_tags.push(crate::shorten(&tag_text, 80));
            }
        }
    }
    Ok(formula)
}

fn validate_bottle_file(
    tag: &str,
    file: &RawBottleFile,
    image: &str,
    hosts: &HostPolicy,
) -> Result<BottleFile, String> {
    let tag = Tag::parse(tag)?;
    let sha256 = Sha256Digest::parse(&file.sha256)?;
    let url = Url::parse(&file.url)
        .map_err(|e| format!("url {:?} is not a URL: {e}", crate::shorten(&file.url, 120)))?;
    check_bottle_url(&url, image, &sha256, hosts)?;
    Ok(BottleFile { tag, url, sha256 })
}

/// The checks every bottle URL passes before anything fetches it, whether
/// it came from the index or from a queue message: http(s), no credentials,
/// an allowed host, and the registry shape naming exactly this blob.
pub fn check_bottle_url(
    url: &Url,
    image: &str,
    sha256: &Sha256Digest,
    hosts: &HostPolicy,
) -> Result<(), String> {
    let shown = crate::shorten(url.as_str(), 200);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url {shown} is not http(s)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url carries credentials".into());
    }
    if !hosts.allows(url) {
        return Err(format!(
            "url host {:?} is not allowed (allowed: {}; add --allow-host)",
            crate::shorten(url.host_str().unwrap_or(""), 80),
            hosts.allowed_hosts().join(", ")
        ));
    }
    let expected_tail = format!("/{image}/blobs/sha256:{sha256}");
    if !url.path().ends_with(&expected_tail) || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "url {shown} does not have the registry shape .../{image}/blobs/sha256:<its sha256>"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostPolicy {
        HostPolicy::new(&Url::parse("https://formulae.brew.sh/api").unwrap(), &[])
    }

    fn entry(name: &str, url: &str, sha: &str) -> String {
        format!(
            r#"{{"name":{name},"versions":{{"stable":"1.0"}},"revision":0,"bottle":{{"stable":{{"rebuild":0,"files":{{"arm64_tahoe":{{"cellar":":any","url":{url},"sha256":{sha}}}}}}}}},"new_field":[1,2]}}"#,
            name = serde_json::to_string(name).unwrap(),
            url = serde_json::to_string(url).unwrap(),
            sha = serde_json::to_string(sha).unwrap()
        )
    }

    #[test]
    fn accepts_real_shape_and_ignores_unknown_fields() {
        let sha = "ab".repeat(32);
        let url = format!("https://ghcr.io/v2/homebrew/core/openssl/3/blobs/sha256:{sha}");
        let text = format!("[{}]", entry("openssl@3", &url, &sha));
        let index = parse_index(text.as_bytes(), &policy()).unwrap();
        assert!(index.rejections.is_empty(), "{:?}", index.rejections);
        let f = &index.formulae[0];
        assert_eq!(f.name, "openssl@3");
        assert_eq!(f.bottles[0].tag.as_str(), "arm64_tahoe");
    }

    /// formula.json keeps `uses_from_macos` and its bounds in two lists
    /// of the same order (formula.rb `dependencies_hash`).
    #[test]
    fn uses_from_macos_is_read_with_its_bounds() {
        let text = r#"[{"name": "curl", "versions": {"stable": "8.0"},
            "uses_from_macos": ["zlib", {"libxml2": "build"}, "expat"],
            "uses_from_macos_bounds": [{}, {"since": "sonoma"}, {"since": "sequoia"}]}]"#;
        let index = parse_index(text.as_bytes(), &policy()).unwrap();
        let uses: Vec<(&str, Option<&str>, bool)> = index.formulae[0]
            .uses_from_macos
            .iter()
            .map(|u| (u.name.as_str(), u.since.as_deref(), u.build_only))
            .collect();
        assert_eq!(
            uses,
            [
                ("zlib", None, false),
                ("libxml2", Some("sonoma"), true),
                ("expat", Some("sequoia"), false)
            ]
        );
    }

    #[test]
    fn rejects_hostile_entries_one_by_one() {
        let sha = "ab".repeat(32);
        let good = format!("https://ghcr.io/v2/homebrew/core/ok/blobs/sha256:{sha}");
        let entries = [
            entry("ok", &good, &sha),
            entry("../../etc", &good, &sha),
            entry("a/b", &good, &sha),
            entry(
                "evil",
                &format!("https://evil.example/v2/homebrew/core/evil/blobs/sha256:{sha}"),
                &sha,
            ),
            entry("baddigest", &good.replace("/ok/", "/baddigest/"), "xyz"),
            entry(
                "wrongpath",
                &format!("https://ghcr.io/other/blobs/sha256:{sha}"),
                &sha,
            ),
            entry(
                "ftp",
                &format!("ftp://ghcr.io/v2/homebrew/core/ftp/blobs/sha256:{sha}"),
                &sha,
            ),
            r#"{"name": 5}"#.to_string(),
            r#""not an object""#.to_string(),
        ];
        let text = format!("[{}]", entries.join(","));
        let index = parse_index(text.as_bytes(), &policy()).unwrap();
        let names: Vec<&str> = index.formulae.iter().map(|f| f.name.as_str()).collect();
        // Entries with a bad bottle keep their name but lose that bottle.
        assert_eq!(names, ["ok", "evil", "baddigest", "wrongpath", "ftp"]);
        assert!(index.formulae[1..].iter().all(|f| f.bottles.is_empty()));
        assert_eq!(index.rejections.len(), 8, "{:#?}", index.rejections);
        let all = index
            .rejections
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            all.contains("\"../../etc\" rejected: formula name"),
            "{all}"
        );
        assert!(
            all.contains("host \"evil.example\" is not allowed"),
            "{all}"
        );
        assert!(all.contains("is not a sha256"), "{all}");
        assert!(all.contains("registry shape"), "{all}");
        assert!(all.contains("not http(s)"), "{all}");
    }

    #[test]
    fn top_level_must_be_an_array() {
        assert!(parse_index(b"{\"a\":1}", &policy()).is_err());
        assert!(parse_index(b"not json", &policy()).is_err());
        let sha = "ab".repeat(32);
        let url = format!("https://ghcr.io/v2/homebrew/core/ok/blobs/sha256:{sha}");
        let payload = format!("[{}]", entry("ok", &url, &sha));
        let jws = serde_json::json!({"payload": payload, "signatures": []}).to_string();
        assert_eq!(
            parse_index(jws.as_bytes(), &policy())
                .unwrap()
                .formulae
                .len(),
            1
        );
    }
}
