//! A replay of what brew 6.0 requests from a mirror for `brew install`
//! (shared/reference/homebrew.md, "How clients use a mirror"), since brew
//! itself cannot run here. The client is set up with
//! `HOMEBREW_API_DOMAIN=<base>/api` and `HOMEBREW_BOTTLE_DOMAIN=<base>/bottles`;
//! a [`MirrorReader`] answers its requests by path, from a directory
//! ([`DirectoryMirror`]), an HTTP server ([`HttpMirror`]) or anything else
//! (an S3 prefix) a test implements it for.
//!
//! For one client tag, [`replay_install`]:
//! 1. GETs `/api/internal/packages.<tag>.jws.json` and parses the JWS
//!    payload;
//! 2. computes the runtime closure of the formulae asked for from
//!    `stable_dependencies` (plain strings and types other than build/test);
//! 3. for each formula of the closure with a `bottle_checksum`: HEAD
//!    `/bottles/<percent-encoded flat name>`, a GET whose body is
//!    abandoned, the full GET (its sha256 must be the checksum), and GET
//!    `/bottles/<image>/manifests/<ref>` with brew's `Accept` and
//!    `Authorization: Bearer QQ==` (an entry of `manifests[]` must carry the
//!    checksum as `sh.brew.bottle.digest`).
//!
//! Unlike brew, it does not stop at the first problem: every formula of the
//! closure is checked and the report names each problem.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, image_name};
use crate::manifest::IMAGE_INDEX_MEDIA_TYPE;
use crate::{bottles, index, tags};

/// An answer of the mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorResponse {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    /// Empty for HEAD and for an abandoned GET.
    pub body: Vec<u8>,
}

impl MirrorResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a mirror by request path, as a client on `<base>` would.
#[async_trait]
pub trait MirrorReader: Send + Sync {
    /// `method` is `GET` or `HEAD`; `path` starts with `/api/` or
    /// `/bottles/` and is percent-encoded as brew sends it. An `Err` is a
    /// failure of the reader itself (I/O, connection), not a 404.
    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<MirrorResponse>;

    /// A GET whose body the client abandons once the headers are in (brew's
    /// second request per bottle). By default a full [`request`] with the
    /// body dropped.
    ///
    /// [`request`]: MirrorReader::request
    async fn request_abandoning_body(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<MirrorResponse> {
        let mut response = self.request("GET", path, headers).await?;
        response.body.clear();
        Ok(response)
    }
}

/// Percent-encodes like brew does a bottle's file name: every byte outside
/// `A-Za-z0-9_.-~` becomes `%XX` (`openssl@3` -> `openssl%403`).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; an invalid escape or a result that is not UTF-8
/// is an error naming the text.
pub fn percent_decode(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("{text:?}: invalid percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).with_context(|| format!("{text:?}: not UTF-8 once decoded"))
}

/// The key under the mirror's root a request path names: percent-decoded,
/// without the leading `/` (`/bottles/openssl%403-3.6.0.tahoe.bottle.tar.gz`
/// -> `bottles/openssl@3-3.6.0.tahoe.bottle.tar.gz`). Only `/api/...` and
/// `/bottles/...` are mirror paths; `.`, `..` and empty segments are refused,
/// so a hostile name cannot leave the root.
pub fn mirror_key(path: &str) -> anyhow::Result<String> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode(path)?;
    let key = decoded
        .strip_prefix('/')
        .with_context(|| format!("{path:?}: a request path starts with '/'"))?;
    anyhow::ensure!(
        key.starts_with("api/") || key.starts_with("bottles/"),
        "{path:?}: not under /api/ or /bottles/"
    );
    anyhow::ensure!(
        key.split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
            && !key.contains(['\\', '\0']),
        "{path:?}: refusing a path with an empty, '.' or '..' segment"
    );
    Ok(key.to_string())
}

/// The `Content-Type` a mirror should answer for `key` (see
/// shared/reference/homebrew.md).
fn content_type(key: &str) -> &'static str {
    if key.contains("/manifests/") {
        IMAGE_INDEX_MEDIA_TYPE
    } else if key.ends_with(".tar.gz") {
        "application/gzip"
    } else if key.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// A mirror in a local directory: `/api/...` is `<root>/api/...`,
/// `/bottles/...` is `<root>/bottles/...` (percent-decoded); 404 when the
/// file is missing.
#[derive(Clone, Debug)]
pub struct DirectoryMirror(pub PathBuf);

#[async_trait]
impl MirrorReader for DirectoryMirror {
    async fn request(
        &self,
        method: &str,
        path: &str,
        _headers: &[(&str, &str)],
    ) -> anyhow::Result<MirrorResponse> {
        anyhow::ensure!(
            method == "GET" || method == "HEAD",
            "{method} {path}: only GET and HEAD"
        );
        let key = mirror_key(path)?;
        let file = self.0.join(&key);
        debug_assert!(file.components().all(|c| c != Component::ParentDir));
        let body = match tokio::fs::read(&file).await {
            Ok(body) => body,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::IsADirectory
                        | std::io::ErrorKind::NotADirectory
                ) || file.is_dir() =>
            {
                return Ok(MirrorResponse {
                    status: 404,
                    ..MirrorResponse::default()
                });
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", file.display()));
            }
        };
        Ok(MirrorResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), content_type(&key).into()),
                ("content-length".into(), body.len().to_string()),
            ],
            body: if method == "HEAD" { Vec::new() } else { body },
        })
    }
}

/// A mirror served over HTTP at `base` (`http://127.0.0.1:P`, no trailing
/// `/`): a request for `/api/...` goes to `<base>/api/...`. Redirects are
/// followed, like brew's curl.
#[derive(Clone, Debug)]
pub struct HttpMirror {
    base: String,
    client: reqwest::Client,
}

impl HttpMirror {
    pub fn new(base: impl Into<String>) -> anyhow::Result<Self> {
        let base = base.into().trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(HttpMirror { base, client })
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        let method = match method {
            "GET" => reqwest::Method::GET,
            "HEAD" => reqwest::Method::HEAD,
            other => anyhow::bail!("{other} {path}: only GET and HEAD"),
        };
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))
    }
}

fn headers_of(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[async_trait]
impl MirrorReader for HttpMirror {
    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<MirrorResponse> {
        let response = self.send(method, path, headers).await?;
        let status = response.status().as_u16();
        let headers = headers_of(&response);
        let body = response
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading the body"))?
            .to_vec();
        Ok(MirrorResponse {
            status,
            headers,
            body,
        })
    }

    async fn request_abandoning_body(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<MirrorResponse> {
        let response = self.send("GET", path, headers).await?;
        // Dropping the response hangs up mid-body.
        Ok(MirrorResponse {
            status: response.status().as_u16(),
            headers: headers_of(&response),
            body: Vec::new(),
        })
    }
}

/// One request of the replay and the status it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// What would make brew leave the mirror for ghcr.io (or fail offline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The formula (asked for, or a dependency) is not in the API file.
    NotInApiFile,
    /// The bottle's HEAD or GET did not answer 200.
    Missing { status: u16 },
    /// The bottle's bytes do not have the API file's `bottle_checksum`.
    Sha256Mismatch { expected: String, actual: String },
    /// The manifest did not answer 200 with an OCI image index.
    ManifestMissing { status: u16 },
    /// The manifest has no `manifests[]` entry whose
    /// `sh.brew.bottle.digest` is the bottle's checksum.
    ManifestLacksDigest,
}

impl Problem {
    /// `"not in API file"`, `"missing"`, `"sha256 mismatch"`,
    /// `"manifest missing"` or `"manifest lacks digest"`.
    pub fn name(&self) -> &'static str {
        match self {
            Problem::NotInApiFile => "not in API file",
            Problem::Missing { .. } => "missing",
            Problem::Sha256Mismatch { .. } => "sha256 mismatch",
            Problem::ManifestMissing { .. } => "manifest missing",
            Problem::ManifestLacksDigest => "manifest lacks digest",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { status } | Problem::ManifestMissing { status } => {
                write!(f, "{} (HTTP {status})", self.name())
            }
            Problem::Sha256Mismatch { expected, actual } => {
                write!(f, "{} (expected {expected}, got {actual})", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// The bottle a client on the replayed tag installs for one formula.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BottleRequest {
    /// The bottle's tag: the client's, `all` or an older macOS.
    pub tag: String,
    /// `bottle_checksum`.
    pub sha256: String,
    /// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`, literal.
    pub file_name: String,
    /// `/bottles/<percent-encoded file_name>`.
    pub path: String,
    /// `/bottles/<image>/manifests/<pkg_version[-rebuild]>`.
    pub manifest_path: String,
}

/// One formula of the closure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormulaReport {
    pub name: String,
    /// `None`: no `bottle_checksum` for this tag (brew builds from source),
    /// or the formula is not in the API file.
    pub bottle: Option<BottleRequest>,
    pub requests: Vec<RequestRecord>,
    pub problems: Vec<Problem>,
}

/// The outcome of one replayed `brew install`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallReport {
    pub client_tag: String,
    /// `/api/internal/packages.<tag>.jws.json`.
    pub api_path: String,
    pub api_status: u16,
    /// The API file's raw bytes (when it answered 200), to compare with
    /// upstream's.
    pub api_file: Option<Vec<u8>>,
    /// Why the API file is unusable (brew would go to formulae.brew.sh):
    /// missing, not a JWS, payload not the expected JSON.
    pub api_problem: Option<String>,
    /// The closure, dependencies before their dependents; empty when the
    /// API file is unusable.
    pub formulae: Vec<FormulaReport>,
}

impl InstallReport {
    /// Whether brew would install everything from the mirror alone.
    pub fn is_complete(&self) -> bool {
        self.api_problem.is_none() && self.formulae.iter().all(|f| f.problems.is_empty())
    }

    /// `(formula, problem name)` for every problem, in closure order.
    pub fn problems(&self) -> Vec<(String, &'static str)> {
        self.formulae
            .iter()
            .flat_map(|f| f.problems.iter().map(|p| (f.name.clone(), p.name())))
            .collect()
    }

    /// The report of formula `name`, if it is in the closure.
    pub fn formula(&self, name: &str) -> Option<&FormulaReport> {
        self.formulae.iter().find(|f| f.name == name)
    }

    /// Every request made, in order (the API file first).
    pub fn requests(&self) -> Vec<RequestRecord> {
        let api = RequestRecord {
            method: "GET".into(),
            path: self.api_path.clone(),
            status: self.api_status,
        };
        std::iter::once(api)
            .chain(self.formulae.iter().flat_map(|f| f.requests.clone()))
            .collect()
    }
}

impl fmt::Display for InstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "brew install on {}: ", self.client_tag)?;
        if let Some(problem) = &self.api_problem {
            return write!(f, "{}: {problem}", self.api_path);
        }
        if self.is_complete() {
            return write!(f, "complete ({} formulae)", self.formulae.len());
        }
        let problems: Vec<String> = self
            .formulae
            .iter()
            .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.name)))
            .collect();
        f.write_str(&problems.join("; "))
    }
}

/// `/api/internal/packages.<tag>.jws.json`.
pub fn packages_path(client_tag: &str) -> String {
    format!("/api/internal/packages.{client_tag}.jws.json")
}

/// The `Accept` and `Authorization` brew sends for a manifest.
pub const MANIFEST_HEADERS: [(&str, &str); 2] = [
    ("Accept", IMAGE_INDEX_MEDIA_TYPE),
    ("Authorization", "Bearer QQ=="),
];

/// Replays `brew install <formulae...>` on `client_tag` against `mirror`.
/// An `Err` only when the reader itself fails; everything the mirror gets
/// wrong is in the report.
pub async fn replay_install(
    mirror: &dyn MirrorReader,
    client_tag: &str,
    formulae: &[&str],
) -> anyhow::Result<InstallReport> {
    let api_path = packages_path(client_tag);
    let api = mirror.request("GET", &api_path, &[]).await?;
    let mut report = InstallReport {
        client_tag: client_tag.to_string(),
        api_path,
        api_status: api.status,
        api_file: None,
        api_problem: None,
        formulae: Vec::new(),
    };
    if api.status != 200 {
        report.api_problem = Some(format!("missing (HTTP {})", api.status));
        return Ok(report);
    }
    report.api_file = Some(api.body);
    let payload = match parse_packages_file(report.api_file.as_deref().unwrap_or_default()) {
        Ok(payload) => payload,
        Err(e) => {
            report.api_problem = Some(format!("{e:#}"));
            return Ok(report);
        }
    };
    let entries = &payload["formulae"];
    for name in runtime_closure(entries, formulae) {
        let Some(entry) = entries.get(&name) else {
            report.formulae.push(FormulaReport {
                name,
                bottle: None,
                requests: Vec::new(),
                problems: vec![Problem::NotInApiFile],
            });
            continue;
        };
        let formula = check_formula(mirror, &name, entry, client_tag).await?;
        report.formulae.push(formula);
    }
    Ok(report)
}

/// The JWS's payload, parsed; an error says what is wrong.
pub fn parse_packages_file(bytes: &[u8]) -> anyhow::Result<Value> {
    let jws: Value = serde_json::from_slice(bytes).context("API file is not JSON")?;
    let payload = jws["payload"]
        .as_str()
        .context("API file is not a JWS (no string \"payload\")")?;
    let payload: Value = serde_json::from_str(payload).context("the JWS payload is not JSON")?;
    anyhow::ensure!(
        payload["formulae"].is_object(),
        "the JWS payload has no \"formulae\" object"
    );
    Ok(payload)
}

/// The runtime dependencies in an entry's `stable_dependencies`: plain
/// strings, and `{name: type}` objects whose type (a string or a list) is
/// neither build nor test.
pub fn runtime_dependencies(entry: &Value) -> Vec<String> {
    let Some(dependencies) = entry["stable_dependencies"].as_array() else {
        return Vec::new();
    };
    let not_runtime = |t: &Value| matches!(t.as_str(), Some("build" | "test"));
    let mut out = Vec::new();
    for dependency in dependencies {
        match dependency {
            Value::String(name) => out.push(name.clone()),
            Value::Object(map) => {
                for (name, kind) in map {
                    let skip = match kind {
                        Value::Array(kinds) => kinds.iter().any(not_runtime),
                        kind => not_runtime(kind),
                    };
                    if !skip {
                        out.push(name.clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `roots` and their runtime dependencies, each once, dependencies first.
fn runtime_closure(entries: &Value, roots: &[&str]) -> Vec<String> {
    fn visit(entries: &Value, name: &str, seen: &mut Vec<String>, out: &mut Vec<String>) {
        if seen.iter().any(|s| s == name) {
            return;
        }
        seen.push(name.to_string());
        if let Some(entry) = entries.get(name) {
            for dependency in runtime_dependencies(entry) {
                visit(entries, &dependency, seen, out);
            }
        }
        out.push(name.to_string());
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for root in roots {
        visit(entries, root, &mut seen, &mut out);
    }
    out
}

/// The bottle a client on `client_tag` requests for formula `name` of the
/// API file, `None` without a `bottle_checksum`.
pub fn bottle_request(name: &str, entry: &Value, client_tag: &str) -> Option<BottleRequest> {
    let sha256 = entry["bottle_checksum"].as_str()?.to_string();
    let version = entry["stable_version"].as_str().unwrap_or_default();
    let revision = entry["revision"].as_u64().unwrap_or(0);
    let rebuild = entry["bottle_rebuild"].as_u64().unwrap_or(0);
    let tag = entry["bottle_tag"]
        .as_str()
        .unwrap_or(client_tag)
        .to_string();
    let pkg_version = if revision > 0 {
        format!("{version}_{revision}")
    } else {
        version.to_string()
    };
    let (file_rebuild, reference) = if rebuild > 0 {
        (format!(".{rebuild}"), format!("{pkg_version}-{rebuild}"))
    } else {
        (String::new(), pkg_version.clone())
    };
    let file_name = format!("{name}-{pkg_version}.{tag}.bottle{file_rebuild}.tar.gz");
    Some(BottleRequest {
        path: format!("/bottles/{}", percent_encode(&file_name)),
        manifest_path: format!("/bottles/{}/manifests/{reference}", image_name(name)),
        tag,
        sha256,
        file_name,
    })
}

async fn check_formula(
    mirror: &dyn MirrorReader,
    name: &str,
    entry: &Value,
    client_tag: &str,
) -> anyhow::Result<FormulaReport> {
    let mut report = FormulaReport {
        name: name.to_string(),
        bottle: bottle_request(name, entry, client_tag),
        requests: Vec::new(),
        problems: Vec::new(),
    };
    let Some(bottle) = report.bottle.clone() else {
        return Ok(report);
    };
    let mut record = |method: &str, path: &str, status: u16| {
        report.requests.push(RequestRecord {
            method: method.into(),
            path: path.into(),
            status,
        });
    };

    let head = mirror.request("HEAD", &bottle.path, &[]).await?;
    record("HEAD", &bottle.path, head.status);
    let mut problems = Vec::new();
    if head.status != 200 {
        problems.push(Problem::Missing {
            status: head.status,
        });
    } else {
        let abandoned = mirror.request_abandoning_body(&bottle.path, &[]).await?;
        record("GET", &bottle.path, abandoned.status);
        let full = mirror.request("GET", &bottle.path, &[]).await?;
        record("GET", &bottle.path, full.status);
        if full.status != 200 {
            problems.push(Problem::Missing {
                status: full.status,
            });
        } else {
            let actual = hex::encode(Sha256::digest(&full.body));
            if actual != bottle.sha256 {
                problems.push(Problem::Sha256Mismatch {
                    expected: bottle.sha256.clone(),
                    actual,
                });
            }
        }
    }

    // Asked even when the bottle is missing, so the report names every
    // problem (brew would ask ghcr.io for both then).
    let manifest = mirror
        .request("GET", &bottle.manifest_path, &MANIFEST_HEADERS)
        .await?;
    record("GET", &bottle.manifest_path, manifest.status);
    let index: Option<Value> = (manifest.status == 200)
        .then(|| serde_json::from_slice(&manifest.body).ok())
        .flatten()
        .filter(|index: &Value| index["manifests"].is_array());
    match index {
        None => problems.push(Problem::ManifestMissing {
            status: manifest.status,
        }),
        Some(index) => {
            let has_digest = index["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["annotations"]["sh.brew.bottle.digest"].as_str()
                        == Some(bottle.sha256.as_str())
                });
            if !has_digest {
                problems.push(Problem::ManifestLacksDigest);
            }
        }
    }
    report.problems = problems;
    Ok(report)
}

/// Writes the brew-usable mirror of `catalog` for `client_tags` under
/// `root`, as bottlesync should: `api/internal/packages.<tag>.jws.json`
/// (the stand-in's bytes), every bottle those files name under
/// `bottles/<flat name>` (disabled formulae too), and each bottled
/// formula's image index under `bottles/<image>/manifests/<ref>` (the
/// stand-in's bytes). For tests of readers and of `verify`.
pub fn write_reference_mirror(
    catalog: &Catalog,
    client_tags: &[&str],
    root: &Path,
) -> anyhow::Result<()> {
    catalog.validate()?;
    let resolved = bottles::resolve(catalog, "http://stand-in.invalid/v2/homebrew/core");
    let write = |key: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = root.join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    for client_tag in client_tags {
        anyhow::ensure!(
            tags::parse_tag(client_tag).is_some_and(|t| t != tags::TagPlatform::All),
            "{client_tag}: not a client tag"
        );
        write(
            &format!("api/internal/packages.{client_tag}.jws.json"),
            index::render_packages_file(&resolved, client_tag).as_bytes(),
        )?;
        for (i, formula) in resolved.formulae.iter().enumerate() {
            let bottles = resolved.bottles_of(i);
            let available: Vec<&str> = bottles.iter().map(|b| b.tag.as_str()).collect();
            let Some(k) = tags::installable_tag(&available, client_tag)
                .and_then(|t| bottles.iter().position(|b| b.tag == t))
            else {
                continue;
            };
            let bottle = &bottles[k];
            let content = resolved.contents[resolved.formula_bottles[i].start + k];
            write(
                &format!("bottles/{}", bottle.mirror_file_name),
                &content.to_vec(),
            )?;
            write(
                &format!(
                    "bottles/{}/manifests/{}",
                    formula.image(),
                    formula.version_rebuild()
                ),
                resolved.image_index(i).as_bytes(),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BREW_MIRROR_TAGS;

    #[test]
    fn percent_coding_matches_brew() {
        assert_eq!(
            percent_encode("gtk+3-3.24.51.tahoe.bottle.tar.gz"),
            "gtk%2B3-3.24.51.tahoe.bottle.tar.gz"
        );
        assert_eq!(percent_encode("openssl@3 ~x"), "openssl%403%20~x");
        assert_eq!(percent_decode("openssl%403").unwrap(), "openssl@3");
        assert!(percent_decode("bad%4").is_err());
        assert_eq!(
            mirror_key("/bottles/libsigc%2B%2B-3.6.0_2.tahoe.bottle.1.tar.gz").unwrap(),
            "bottles/libsigc++-3.6.0_2.tahoe.bottle.1.tar.gz"
        );
        for bad in [
            "/bottles/../secret",
            "/bottles/%2E%2E/secret",
            "/api/internal/..%2F..%2Fx",
            "/etc/passwd",
            "bottles/x",
            "/bottles//x",
        ] {
            assert!(mirror_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn runtime_dependencies_skip_build_and_test() {
        let entry: Value = serde_json::json!({"stable_dependencies": [
            "a", {"b": "build"}, {"c": "recommended"}, {"d": ["build", "test"]}, {"e": "test"}
        ]});
        assert_eq!(runtime_dependencies(&entry), ["a", "c"]);
    }

    fn mirror_of(catalog: &Catalog) -> (tempfile::TempDir, DirectoryMirror) {
        let dir = tempfile::tempdir().unwrap();
        write_reference_mirror(catalog, &BREW_MIRROR_TAGS, dir.path()).unwrap();
        let mirror = DirectoryMirror(dir.path().to_path_buf());
        (dir, mirror)
    }

    async fn install(mirror: &DirectoryMirror, tag: &str, formulae: &[&str]) -> InstallReport {
        replay_install(mirror, tag, formulae).await.unwrap()
    }

    #[tokio::test]
    async fn a_good_mirror_installs_the_closure() {
        let (dir, mirror) = mirror_of(&Catalog::brew_mirror());
        let report = install(&mirror, "tahoe", &["gtk+3", "wget"]).await;
        assert!(report.is_complete(), "{report}");
        let names: Vec<&str> = report.formulae.iter().map(|f| f.name.as_str()).collect();
        // Dependencies first; the build-only pkgconf is not installed.
        assert_eq!(
            names,
            [
                "libsigc++",
                "ca-certificates",
                "openssl@3",
                "gtk+3",
                "old-tool",
                "wget"
            ]
        );
        let gtk = report.formula("gtk+3").unwrap();
        let bottle = gtk.bottle.as_ref().unwrap();
        assert_eq!(bottle.path, "/bottles/gtk%2B3-3.24.51.tahoe.bottle.tar.gz");
        assert_eq!(bottle.manifest_path, "/bottles/gtkx3/manifests/3.24.51");
        let methods: Vec<&str> = gtk.requests.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["HEAD", "GET", "GET", "GET"]);
        let sigc = report.formula("libsigc++").unwrap().bottle.clone().unwrap();
        assert_eq!(
            sigc.path,
            "/bottles/libsigc%2B%2B-3.6.0_2.tahoe.bottle.1.tar.gz"
        );
        assert_eq!(sigc.manifest_path, "/bottles/libsigcxx/manifests/3.6.0_2-1");
        let old = report.formula("old-tool").unwrap().bottle.clone().unwrap();
        assert_eq!(old.tag, "sequoia");
        assert_eq!(old.file_name, "old-tool-1.0.sequoia.bottle.tar.gz");
        let ca = report.formula("ca-certificates").unwrap();
        assert_eq!(ca.bottle.as_ref().unwrap().tag, "all");
        let api = std::fs::read(dir.path().join("api/internal/packages.tahoe.jws.json")).unwrap();
        assert_eq!(report.api_file.as_deref(), Some(&api[..]));
        assert_eq!(report.requests().len(), 1 + 6 * 4);

        // No bottle on macOS: brew builds from source, nothing requested.
        let linux = install(&mirror, "arm64_tahoe", &["linux-only"]).await;
        assert!(linux.is_complete(), "{linux}");
        assert_eq!(linux.formulae[0].bottle, None);
        assert!(linux.formulae[0].requests.is_empty());
        let linux = install(&mirror, "x86_64_linux", &["linux-only"]).await;
        assert!(linux.formulae[0].bottle.is_some() && linux.is_complete());
    }

    #[tokio::test]
    async fn each_defect_is_named() {
        let catalog = Catalog::brew_mirror();
        let (dir, mirror) = mirror_of(&catalog);
        let root = dir.path();
        std::fs::remove_file(root.join("bottles/openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz"))
            .unwrap();
        let sigc = root.join("bottles/libsigc++-3.6.0_2.arm64_tahoe.bottle.1.tar.gz");
        let mut bytes = std::fs::read(&sigc).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&sigc, bytes).unwrap();
        std::fs::remove_file(root.join("bottles/ca-certificates/manifests/2025-09-09")).unwrap();
        let gtk_manifest = root.join("bottles/gtkx3/manifests/3.24.51");
        let text = std::fs::read_to_string(&gtk_manifest).unwrap();
        let gtk_sha = {
            let api =
                std::fs::read(root.join("api/internal/packages.arm64_tahoe.jws.json")).unwrap();
            parse_packages_file(&api).unwrap()["formulae"]["gtk+3"]["bottle_checksum"]
                .as_str()
                .unwrap()
                .to_string()
        };
        std::fs::write(&gtk_manifest, text.replace(&gtk_sha, &"0".repeat(64))).unwrap();

        let report = install(&mirror, "arm64_tahoe", &["gtk+3"]).await;
        assert!(!report.is_complete());
        assert_eq!(
            report.problems(),
            [
                ("libsigc++".to_string(), "sha256 mismatch"),
                ("ca-certificates".to_string(), "manifest missing"),
                ("openssl@3".to_string(), "missing"),
                ("gtk+3".to_string(), "manifest lacks digest"),
            ]
        );
        // A missing bottle gets only its HEAD (brew leaves for ghcr.io then)
        // and the manifest request.
        let openssl = report.formula("openssl@3").unwrap();
        assert_eq!(openssl.requests.len(), 2);
        assert_eq!(openssl.requests[0].status, 404);
        // Other tags share only the (missing) ca-certificates manifest.
        let tahoe = install(&mirror, "tahoe", &["gtk+3"]).await;
        assert_eq!(
            tahoe.problems(),
            [("ca-certificates".to_string(), "manifest missing")]
        );

        // No API file for a tag: nothing else is asked.
        std::fs::remove_file(root.join("api/internal/packages.sequoia.jws.json")).unwrap();
        let report = install(&mirror, "sequoia", &["gtk+3"]).await;
        assert_eq!(report.api_status, 404);
        assert_eq!(report.api_problem.as_deref(), Some("missing (HTTP 404)"));
        assert!(report.formulae.is_empty() && report.api_file.is_none());
        // A formula the API file does not list.
        let report = install(&mirror, "tahoe", &["nope"]).await;
        assert_eq!(report.problems(), [("nope".to_string(), "not in API file")]);
    }

    #[tokio::test]
    async fn directory_mirror_answers_like_a_server() {
        let (_dir, mirror) = mirror_of(&Catalog::brew_mirror());
        let head = mirror
            .request(
                "HEAD",
                "/bottles/openssl%403-3.6.0.tahoe.bottle.tar.gz",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("Content-Type"), Some("application/gzip"));
        let missing = mirror
            .request("GET", "/bottles/openssl%403-9.tahoe.bottle.tar.gz", &[])
            .await
            .unwrap();
        assert_eq!(missing.status, 404);
        let directory = mirror.request("GET", "/bottles/gtkx3", &[]).await.unwrap();
        assert_eq!(directory.status, 404);
        assert!(
            mirror
                .request("GET", "/bottles/%2E%2E/%2E%2E/etc/passwd", &[])
                .await
                .is_err()
        );
    }
}
