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
//! 2. reads each entry as brew does (`":name"` strings are symbols) and
//!    computes what brew installs with the formulae asked for
//!    ([`runtime_dependencies`]: `stable_dependencies` but requirements and
//!    build/test/optional ones, `stable_uses_from_macos` on Linux and on
//!    macOS older than their bound, and on Linux `gcc` and `glibc`, see
//!    [`ReplayOptions`]); a disabled formula (`disable_args`) is refused,
//!    like brew does, with nothing requested for it;
//! 3. for each formula of the closure with a `bottle_checksum`: HEAD
//!    `/bottles/<percent-encoded flat name>`, a GET whose body is
//!    abandoned, the full GET (its sha256 must be the checksum), and GET
//!    `/bottles/<image>/manifests/<ref>` with brew's `Accept` and
//!    `Authorization: Bearer QQ==` (an entry of `manifests[]` must carry the
//!    checksum as `sh.brew.bottle.digest`).
//!
//! Unlike brew, it does not stop at the first problem: every formula of the
//! closure is checked and the report names each problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use async_trait::async_trait;
use serde::Deserialize as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, image_name};
use crate::manifest::IMAGE_INDEX_MEDIA_TYPE;
use crate::ruby::{RubyValue, sym};
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

    /// The same with a client of the caller's (e.g. one that trusts a
    /// test certificate).
    pub fn with_client(base: impl Into<String>, client: reqwest::Client) -> anyhow::Result<Self> {
        let base = base.into().trim_end_matches('/').to_string();
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
    /// The entry has a bottle brew cannot read (say a `bottle_tag` that is
    /// not a symbol).
    InvalidEntry { reason: String },
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
            Problem::InvalidEntry { .. } => "invalid API entry",
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
            Problem::InvalidEntry { reason } => write!(f, "{} ({reason})", self.name()),
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
    /// the formula is not in the API file, or brew refuses it.
    pub bottle: Option<BottleRequest>,
    /// Why brew refuses to install it (it is disabled): nothing is
    /// requested for it or its dependencies. Not a problem of the mirror.
    pub refused: Option<String>,
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

    /// The formulae brew refuses to install (disabled), in closure order.
    pub fn refused(&self) -> Vec<&str> {
        self.formulae
            .iter()
            .filter(|f| f.refused.is_some())
            .map(|f| f.name.as_str())
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
        let refused = self.refused();
        let refused = if refused.is_empty() {
            String::new()
        } else {
            format!(", refused {}", refused.join(", "))
        };
        if self.is_complete() {
            return write!(f, "complete ({} formulae{refused})", self.formulae.len());
        }
        let problems: Vec<String> = self
            .formulae
            .iter()
            .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.name)))
            .collect();
        f.write_str(&problems.join("; "))
    }
}

/// What a fresh machine's first `brew` run fetches before anything else
/// (brew's `cmd/vendor-install.sh`, with `HOMEBREW_BOTTLE_DOMAIN` set and no
/// artifact domain): `GET /bottles/portable-ruby-<version>.<tag>.bottle.tar.gz`
/// (`curl -C -`: a plain GET for a first download), its bytes checked against
/// the sha256 brew ships in `vendor/portable-ruby-<arch>-<os>`. `ruby` is
/// that bottle (the stand-in's [`StandIn::expected_portable_ruby`] gives
/// them); `Err` names what went wrong, as brew's "Failed to download" would.
///
/// [`StandIn::expected_portable_ruby`]: crate::StandIn::expected_portable_ruby
pub async fn replay_vendor_install(
    mirror: &dyn MirrorReader,
    ruby: &bottles::BottleInfo,
) -> Result<(), Problem> {
    let path = format!("/bottles/{}", percent_encode(&ruby.mirror_file_name));
    let response = mirror
        .request("GET", &path, &[])
        .await
        .map_err(|_| Problem::Missing { status: 0 })?;
    if response.status != 200 {
        return Err(Problem::Missing {
            status: response.status,
        });
    }
    let actual = hex::encode(Sha256::digest(&response.body));
    if actual != ruby.sha256 {
        return Err(Problem::Sha256Mismatch {
            expected: ruby.sha256.clone(),
            actual,
        });
    }
    Ok(())
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

/// How the replayed client differs from one brew setup to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOptions {
    /// On a Linux tag, every formula also depends on `gcc` and `glibc`
    /// when the API file has them, as brew does on a host whose glibc is
    /// older than 2.39 or whose libstdc++ is older than 6.0.33 (Debian 12,
    /// Ubuntu 22.04): extend/os/linux/formula.rb `add_global_deps_to_spec`,
    /// extend/os/linux/dependency_collector.rb. On by default.
    pub old_linux_host: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            old_linux_host: true,
        }
    }
}

/// Replays `brew install <formulae...>` on `client_tag` against `mirror`
/// with the default [`ReplayOptions`]. An `Err` only when the reader itself
/// fails; everything the mirror gets wrong is in the report.
pub async fn replay_install(
    mirror: &dyn MirrorReader,
    client_tag: &str,
    formulae: &[&str],
) -> anyhow::Result<InstallReport> {
    replay_install_with(mirror, client_tag, formulae, &ReplayOptions::default()).await
}

/// [`replay_install`] with explicit options.
pub async fn replay_install_with(
    mirror: &dyn MirrorReader,
    client_tag: &str,
    formulae: &[&str],
    options: &ReplayOptions,
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
    let entries = read_entries(&payload["formulae"]);
    for name in install_closure(&entries, client_tag, formulae, options) {
        let Some(entry) = entries.get(&name) else {
            report.formulae.push(FormulaReport {
                name,
                bottle: None,
                refused: None,
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

/// The JWS's payload, parsed (symbols still `":name"` strings); an error
/// says what is wrong.
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

/// One entry of the API file as brew reads it: `deep_unstringify_symbols`
/// (api/formula_struct.rb `deserialize`), so `":all"` is the symbol `:all`
/// and `"\\:x"` the string `":x"`.
pub fn read_entry(entry: &Value) -> RubyValue {
    RubyValue::deserialize(entry)
        .unwrap_or(RubyValue::Nil)
        .deep_unstringify_symbols()
}

/// Every entry of the `formulae` object, read by [`read_entry`].
fn read_entries(formulae: &Value) -> BTreeMap<String, RubyValue> {
    formulae
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, entry)| (name.clone(), read_entry(entry)))
        .collect()
}

/// The dependency types brew does not install with a bottle: build and
/// test dependencies, and optional ones (not asked for with `--with-...`).
/// A `:recommended` dependency is installed.
const NOT_INSTALLED_TYPES: [&str; 3] = ["build", "test", "optional"];

/// Whether a dependency typed `types` (a symbol or an array of symbols) is
/// installed. brew compares symbols: a colon-less `"build"` is no type.
fn installed_type(types: &RubyValue) -> bool {
    let is_not_installed =
        |t: &RubyValue| t.as_sym().is_some_and(|t| NOT_INSTALLED_TYPES.contains(&t));
    match types {
        RubyValue::Array(list) => !list.iter().any(is_not_installed),
        single => !is_not_installed(single),
    }
}

/// The macOS release a client on `tag` runs (an index into
/// [`tags::MACOS_NEWEST_FIRST`], smaller is newer); `None` off macOS.
fn macos_release(tag: &str) -> Option<usize> {
    match tags::parse_tag(tag) {
        Some(tags::TagPlatform::MacOs { release, .. }) => Some(release),
        _ => None,
    }
}

/// The runtime dependencies of one API entry for a client on `client_tag`,
/// in order:
/// - from `stable_dependencies`: plain names, and `{name => type(s)}` whose
///   types are none of build, test, optional; symbols and symbol keys
///   (`:linux`, `{macos: [...]}`) are requirements, not formulae;
/// - from `stable_uses_from_macos` (`[name, {since:}]` or
///   `[{name => type, since:}, {}]`): every installed-type entry on Linux;
///   on macOS only those with a `since` bound newer than the macOS the
///   formula's bottle was built for (the client's own, or the older macOS
///   of a fallback bottle): dependency/uses_from_macos_dependency.rb
///   `use_macos_install?`, dependencies.rb `dup_without_system_deps`.
pub fn runtime_dependencies(entry: &Value, client_tag: &str) -> Vec<String> {
    entry_runtime_dependencies(&read_entry(entry), client_tag)
}

fn entry_runtime_dependencies(entry: &RubyValue, client_tag: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    let list = |key: &str| {
        entry
            .get_str(key)
            .and_then(RubyValue::as_array)
            .unwrap_or_default()
            .to_vec()
    };
    for dependency in list("stable_dependencies") {
        match &dependency {
            RubyValue::Str(name) => push(name),
            RubyValue::Hash(pairs) => {
                for (name, types) in pairs {
                    if let Some(name) = name.as_str().filter(|_| installed_type(types)) {
                        push(name);
                    }
                }
            }
            // A requirement (`:linux`).
            _ => {}
        }
    }

    // The macOS the dependent's bottle was built on decides
    // (`bottle_os_version`): a fallback bottle's older macOS.
    let effective_macos = entry
        .get_str("bottle_tag")
        .and_then(RubyValue::as_sym)
        .and_then(macos_release)
        .or_else(|| macos_release(client_tag));
    let on_linux = matches!(
        tags::parse_tag(client_tag),
        Some(tags::TagPlatform::Linux { .. })
    );
    for uses in list("stable_uses_from_macos") {
        let pair = uses.as_array().unwrap_or_default();
        let (first, bounds) = (pair.first(), pair.get(1));
        let since_key = sym("since");
        let (name, types, since) = match first {
            Some(RubyValue::Str(name)) => (
                name.as_str(),
                RubyValue::Nil,
                bounds.and_then(|b| b.get(&since_key)),
            ),
            Some(RubyValue::Hash(pairs)) => {
                let Some((name, types)) = pairs.iter().find(|(k, _)| k.as_str().is_some()) else {
                    continue;
                };
                (
                    name.as_str().unwrap_or_default(),
                    types.clone(),
                    first.and_then(|f| f.get(&since_key)),
                )
            }
            _ => continue,
        };
        if !installed_type(&types) {
            continue;
        }
        let needed = if on_linux {
            true
        } else {
            // No bound: every macOS provides it. An unknown bound counts as
            // the oldest macOS (MacOSVersion::Error -> Version::NULL).
            let since = since.and_then(RubyValue::as_sym).map(|s| {
                tags::MACOS_NEWEST_FIRST
                    .iter()
                    .position(|(name, _)| *name == s)
                    .unwrap_or(usize::MAX)
            });
            match (since, effective_macos) {
                (Some(since), Some(running)) => running > since,
                _ => false,
            }
        };
        if needed {
            push(name);
        }
    }
    out
}

/// Why brew refuses to install an entry: it has `disable_args`
/// (formula_installer.rb `prelude_fetch` raises CannotInstallFormulaError
/// for a disabled formula before fetching anything).
fn refusal(entry: &RubyValue) -> Option<String> {
    let args = entry.get_str("disable_args").filter(|a| !a.is_blank())?;
    let field = |key: &str| match args.get(&sym(key)).or_else(|| args.get_str(key)) {
        Some(RubyValue::Str(s) | RubyValue::Sym(s)) => s.clone(),
        _ => "?".to_string(),
    };
    Some(format!(
        "disabled on {} because {}",
        field("date"),
        field("because")
    ))
}

const GCC: &str = "gcc";
const GLIBC: &str = "glibc";

/// Everything `name` depends on as brew's `global_deps_for` sees it (all
/// dependencies but test-only ones, recursively, without gcc and glibc).
fn global_dependencies(entries: &BTreeMap<String, RubyValue>, name: &str) -> BTreeSet<String> {
    fn visit(entries: &BTreeMap<String, RubyValue>, name: &str, out: &mut BTreeSet<String>) {
        let Some(entry) = entries.get(name) else {
            return;
        };
        let listed = entry
            .get_str("stable_dependencies")
            .and_then(RubyValue::as_array);
        for dependency in listed.unwrap_or_default() {
            let names: Vec<&str> = match dependency {
                RubyValue::Str(n) => vec![n.as_str()],
                RubyValue::Hash(pairs) => pairs
                    .iter()
                    .filter(|(_, types)| {
                        let types = types.as_array().map_or(vec![types], |t| t.iter().collect());
                        let test = types.iter().any(|t| t.as_sym() == Some("test"));
                        let build = types.iter().any(|t| t.as_sym() == Some("build"));
                        !test || build
                    })
                    .filter_map(|(n, _)| n.as_str())
                    .collect(),
                _ => Vec::new(),
            };
            for n in names {
                if n != GCC && n != GLIBC && out.insert(n.to_string()) {
                    visit(entries, n, out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    visit(entries, name, &mut out);
    out
}

/// The dependencies brew adds to `name` on an old Linux host: `gcc` unless
/// it is gcc or in gcc's dependency tree, `glibc` unless it is glibc or in
/// glibc's tree; each only when the API file has it (`formula_for`).
fn implicit_linux_dependencies(entries: &BTreeMap<String, RubyValue>, name: &str) -> Vec<String> {
    let glibc_tree = global_dependencies(entries, GLIBC);
    let mut gcc_tree = global_dependencies(entries, GCC);
    // "gcc depends on glibc"
    gcc_tree.insert(GLIBC.to_string());
    gcc_tree.extend(glibc_tree.iter().cloned());
    let mut out = Vec::new();
    if name != GCC && !gcc_tree.contains(name) && entries.contains_key(GCC) {
        out.push(GCC.to_string());
    }
    if name != GLIBC && !glibc_tree.contains(name) && entries.contains_key(GLIBC) {
        out.push(GLIBC.to_string());
    }
    out
}

/// `roots` and what brew installs with them on `client_tag`, each once,
/// dependencies first. A refused (disabled) formula is listed, but brew
/// stops before its dependencies.
fn install_closure(
    entries: &BTreeMap<String, RubyValue>,
    client_tag: &str,
    roots: &[&str],
    options: &ReplayOptions,
) -> Vec<String> {
    let on_linux = matches!(
        tags::parse_tag(client_tag),
        Some(tags::TagPlatform::Linux { .. })
    );
    let dependencies_of = |name: &str| -> Vec<String> {
        let Some(entry) = entries.get(name) else {
            return Vec::new();
        };
        if refusal(entry).is_some() {
            return Vec::new();
        }
        let mut out = entry_runtime_dependencies(entry, client_tag);
        if on_linux && options.old_linux_host {
            for implicit in implicit_linux_dependencies(entries, name) {
                if !out.contains(&implicit) {
                    out.push(implicit);
                }
            }
        }
        out
    };
    fn visit(
        name: &str,
        dependencies_of: &dyn Fn(&str) -> Vec<String>,
        seen: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        if seen.iter().any(|s| s == name) {
            return;
        }
        seen.push(name.to_string());
        for dependency in dependencies_of(name) {
            visit(&dependency, dependencies_of, seen, out);
        }
        out.push(name.to_string());
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for root in roots {
        visit(root, &dependencies_of, &mut seen, &mut out);
    }
    out
}

/// The bottle a client on `client_tag` requests for formula `name` of the
/// API file, `None` without a `bottle_checksum` (or without
/// `stable_url_args`: brew loads no stable spec, so no bottle). An error
/// when the entry has a bottle brew cannot read (a `bottle_tag` that is not
/// a symbol: brew 6 writes `":all"`, never `"all"`).
pub fn bottle_request(
    name: &str,
    entry: &Value,
    client_tag: &str,
) -> anyhow::Result<Option<BottleRequest>> {
    entry_bottle_request(name, &read_entry(entry), client_tag)
}

fn entry_bottle_request(
    name: &str,
    entry: &RubyValue,
    client_tag: &str,
) -> anyhow::Result<Option<BottleRequest>> {
    let Some(sha256) = entry.get_str("bottle_checksum") else {
        return Ok(None);
    };
    let sha256 = sha256
        .as_str()
        .with_context(|| format!("bottle_checksum {sha256:?} is not a string"))?
        .to_string();
    if entry.get_str("stable_url_args").is_none() {
        return Ok(None);
    }
    let tag = match entry.get_str("bottle_tag") {
        None => client_tag.to_string(),
        Some(RubyValue::Sym(tag)) if tags::parse_tag(tag).is_some() => tag.clone(),
        Some(other) => anyhow::bail!(
            "bottle_tag {:?} is not a bottle tag symbol",
            other.to_json()
        ),
    };
    let version = entry
        .get_str("stable_version")
        .and_then(RubyValue::as_str)
        .context("no stable_version")?;
    let number = |key: &str| -> anyhow::Result<i64> {
        match entry.get_str(key) {
            None => Ok(0),
            Some(value) => value
                .as_int()
                .filter(|n| *n >= 0)
                .with_context(|| format!("{key} {} is not a count", value.to_json())),
        }
    };
    let revision = number("revision")?;
    let rebuild = number("bottle_rebuild")?;
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
    Ok(Some(BottleRequest {
        path: format!("/bottles/{}", percent_encode(&file_name)),
        manifest_path: format!("/bottles/{}/manifests/{reference}", image_name(name)),
        tag,
        sha256,
        file_name,
    }))
}

async fn check_formula(
    mirror: &dyn MirrorReader,
    name: &str,
    entry: &RubyValue,
    client_tag: &str,
) -> anyhow::Result<FormulaReport> {
    let mut report = FormulaReport {
        name: name.to_string(),
        bottle: None,
        refused: refusal(entry),
        requests: Vec::new(),
        problems: Vec::new(),
    };
    if report.refused.is_some() {
        return Ok(report);
    }
    match entry_bottle_request(name, entry, client_tag) {
        Ok(bottle) => report.bottle = bottle,
        Err(e) => {
            report.problems.push(Problem::InvalidEntry {
                reason: format!("{e:#}"),
            });
            return Ok(report);
        }
    }
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
            "a", {"b": ":build"}, {"c": ":recommended"}, {"d": [":build", ":test"]}, {"e": ":test"},
            {"f": ":optional"}, {"g": [":recommended", ":build"]}
        ]});
        assert_eq!(runtime_dependencies(&entry, "arm64_tahoe"), ["a", "c"]);
        // brew compares symbols: a colon-less type is no type at all.
        let colonless: Value = serde_json::json!({"stable_dependencies": [{"b": "build"}]});
        assert_eq!(runtime_dependencies(&colonless, "arm64_tahoe"), ["b"]);
    }

    #[test]
    fn requirements_are_not_formulae() {
        let entry: Value = serde_json::json!({"stable_dependencies": [
            "a", ":linux", {":macos": [":sonoma", ":build"]}, {":arch": [":arm64"]},
            {":xcode": ["11.2", ":build"]}, "\\:odd-name"
        ]});
        // "\\:odd-name" is the string ":odd-name" (an escaped look-alike).
        assert_eq!(
            runtime_dependencies(&entry, "x86_64_linux"),
            ["a", ":odd-name"]
        );
    }

    #[test]
    fn uses_from_macos_is_a_dependency_on_linux_and_on_older_macos() {
        let entry: Value = serde_json::json!({"stable_uses_from_macos": [
            ["zlib"],
            [{"libxml2": ":build", ":since": ":sonoma"}],
            ["curl", {":since": ":sequoia"}],
            [{"krb5": ":test"}],
            ["expat", {":since": ":no_such_macos"}]
        ]});
        assert_eq!(
            runtime_dependencies(&entry, "x86_64_linux"),
            ["zlib", "curl", "expat"]
        );
        assert_eq!(
            runtime_dependencies(&entry, "arm64_linux"),
            ["zlib", "curl", "expat"]
        );
        // macOS provides zlib everywhere and curl from sequoia on; an
        // unknown bound counts as the oldest macOS.
        assert!(runtime_dependencies(&entry, "arm64_tahoe").is_empty());
        assert!(runtime_dependencies(&entry, "sequoia").is_empty());
        assert_eq!(runtime_dependencies(&entry, "arm64_sonoma"), ["curl"]);
        // A fallback bottle built for sonoma needs what sonoma lacks, even
        // on tahoe.
        let fallback: Value = serde_json::json!({
            "bottle_tag": ":arm64_sonoma",
            "stable_uses_from_macos": [["curl", {":since": ":sequoia"}]]
        });
        assert_eq!(runtime_dependencies(&fallback, "arm64_tahoe"), ["curl"]);
        // A bound on the newest macOS (no Intel tag of that name) is known.
        let newest: Value = serde_json::json!({
            "stable_uses_from_macos": [["curl", {":since": ":golden_gate"}]]
        });
        assert_eq!(runtime_dependencies(&newest, "arm64_tahoe"), ["curl"]);
        assert!(runtime_dependencies(&newest, "arm64_golden_gate").is_empty());
    }

    #[test]
    fn bottle_tags_are_symbols() {
        let entry = |tag: Value| {
            let mut entry = serde_json::json!({
                "stable_version": "1.0", "stable_url_args": ["https://x.invalid/a-1.0.tar.gz"],
                "revision": 1, "bottle_rebuild": 2, "bottle_checksum": "ab"
            });
            if !tag.is_null() {
                entry["bottle_tag"] = tag;
            }
            entry
        };
        let all = bottle_request("a@1", &entry(":all".into()), "tahoe")
            .unwrap()
            .unwrap();
        assert_eq!(all.tag, "all");
        assert_eq!(all.file_name, "a@1-1.0_1.all.bottle.2.tar.gz");
        assert_eq!(all.path, "/bottles/a%401-1.0_1.all.bottle.2.tar.gz");
        assert_eq!(all.manifest_path, "/bottles/a/1/manifests/1.0_1-2");
        let fallback = bottle_request("a", &entry(":arm64_sequoia".into()), "arm64_tahoe");
        assert_eq!(fallback.unwrap().unwrap().tag, "arm64_sequoia");
        let own = bottle_request("a", &entry(Value::Null), "arm64_tahoe");
        assert_eq!(own.unwrap().unwrap().tag, "arm64_tahoe");
        // The colon-less form (what the stand-in wrote before issue 17) and
        // unknown tags are not brew's.
        for bad in ["all", ":nonsense", "\\:all"] {
            let err = bottle_request("a", &entry(bad.into()), "tahoe").unwrap_err();
            assert!(format!("{err:#}").contains("bottle_tag"), "{bad}: {err:#}");
        }
        // Without stable_url_args brew loads no bottle.
        let mut no_url = entry(":all".into());
        no_url.as_object_mut().unwrap().remove("stable_url_args");
        assert_eq!(bottle_request("a", &no_url, "tahoe").unwrap(), None);
    }

    #[test]
    fn gcc_and_glibc_join_every_linux_closure_when_asked() {
        let entries = read_entries(&serde_json::json!({
            "a": {"stable_dependencies": ["b"]},
            "b": {},
            "gcc": {"stable_dependencies": ["gmp"]},
            "gmp": {},
            "glibc": {},
        }));
        let closure = |tag: &str, old_linux_host: bool| {
            install_closure(&entries, tag, &["a"], &ReplayOptions { old_linux_host })
        };
        // gcc gets glibc; gmp, in gcc's tree, gets only glibc; glibc nothing.
        assert_eq!(
            closure("x86_64_linux", true),
            ["glibc", "gmp", "gcc", "b", "a"]
        );
        assert_eq!(closure("x86_64_linux", false), ["b", "a"]);
        assert_eq!(closure("arm64_tahoe", true), ["b", "a"]);
        // Only when the API file has them.
        let without = read_entries(&serde_json::json!({"a": {}}));
        let options = ReplayOptions::default();
        assert_eq!(
            install_closure(&without, "x86_64_linux", &["a"], &options),
            ["a"]
        );
    }

    #[test]
    fn disabled_formulae_are_refused_without_their_dependencies() {
        let entries = read_entries(&serde_json::json!({
            "a": {"stable_dependencies": ["gone"]},
            "gone": {"stable_dependencies": ["b"],
                     "disable_args": {":date": "2025-06-01", ":because": ":no_license"}},
            "b": {},
            "old": {"deprecate_args": {":date": "2025-01-01", ":because": ":unmaintained"}},
        }));
        let options = ReplayOptions::default();
        assert_eq!(
            install_closure(&entries, "tahoe", &["a", "old"], &options),
            ["gone", "a", "old"]
        );
        assert_eq!(
            refusal(&entries["gone"]).as_deref(),
            Some("disabled on 2025-06-01 because no_license")
        );
        // Deprecated formulae install (brew only warns).
        assert_eq!(refusal(&entries["old"]), None);
        assert_eq!(refusal(&entries["a"]), None);
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
        assert!(linux.is_complete(), "{linux}");
        let linux_only = linux.formula("linux-only").unwrap();
        assert_eq!(linux_only.bottle.as_ref().unwrap().tag, "x86_64_linux");
    }

    /// The brew-mirror catalog through the replay: what each client tag
    /// installs for curl, wget and the disabled gone.
    #[tokio::test]
    async fn closures_follow_uses_from_macos_implicit_linux_deps_and_refusals() {
        let (_dir, mirror) = mirror_of(&Catalog::brew_mirror());
        let names = |report: &InstallReport| -> Vec<String> {
            report.formulae.iter().map(|f| f.name.clone()).collect()
        };
        // tahoe provides zlib and libxml2 (since tahoe); the recommended
        // ca-certificates is installed, build/test/optional ones and the
        // :macos requirement are not.
        let tahoe = install(&mirror, "arm64_tahoe", &["curl"]).await;
        assert!(tahoe.is_complete(), "{tahoe}");
        assert_eq!(names(&tahoe), ["ca-certificates", "openssl@3", "curl"]);
        // sequoia is older than libxml2's bound.
        let sequoia = install(&mirror, "sequoia", &["curl"]).await;
        assert!(sequoia.is_complete(), "{sequoia}");
        assert_eq!(
            names(&sequoia),
            ["ca-certificates", "openssl@3", "libxml2", "curl"]
        );
        // Linux: every uses_from_macos but the build-only one, and gcc and
        // glibc for everything but themselves (gcc gets glibc).
        let linux = install(&mirror, "x86_64_linux", &["curl"]).await;
        assert!(linux.is_complete(), "{linux}");
        assert_eq!(
            names(&linux),
            [
                "glibc",
                "gcc",
                "ca-certificates",
                "openssl@3",
                "zlib",
                "libxml2",
                "curl"
            ]
        );
        // No implicit dependencies for a new enough Linux host.
        let options = ReplayOptions {
            old_linux_host: false,
        };
        let new_host = replay_install_with(&mirror, "x86_64_linux", &["curl"], &options)
            .await
            .unwrap();
        assert_eq!(
            names(&new_host),
            ["ca-certificates", "openssl@3", "zlib", "libxml2", "curl"]
        );
        let zlib = linux.formula("zlib").unwrap().bottle.clone().unwrap();
        assert_eq!(zlib.path, "/bottles/zlib-1.3.1.x86_64_linux.bottle.tar.gz");

        // A disabled formula is refused: nothing requested, not a problem.
        let gone = install(&mirror, "x86_64_linux", &["gone", "wget"]).await;
        assert!(gone.is_complete(), "{gone}");
        assert_eq!(gone.refused(), ["gone"]);
        let refused = gone.formula("gone").unwrap();
        assert!(refused.requests.is_empty() && refused.bottle.is_none());
        assert_eq!(
            refused.refused.as_deref(),
            Some("disabled on 2025-06-01 because no_license")
        );
        assert!(gone.to_string().contains("refused gone"), "{gone}");
        // wget on Linux needs zlib; old-tool has no Linux bottle.
        assert_eq!(
            names(&gone),
            [
                "gone",
                "glibc",
                "gcc",
                "ca-certificates",
                "openssl@3",
                "old-tool",
                "zlib",
                "wget"
            ]
        );
        assert_eq!(gone.formula("old-tool").unwrap().bottle, None);
    }

    /// An API file in the colon-less form (the stand-in's before issue 17)
    /// is not what brew reads: its `bottle_tag`s are refused by name.
    #[tokio::test]
    async fn a_colonless_api_file_is_named() {
        let (dir, mirror) = mirror_of(&Catalog::brew_mirror());
        let file = dir.path().join("api/internal/packages.tahoe.jws.json");
        let mut payload = parse_packages_file(&std::fs::read(&file).unwrap()).unwrap();
        payload["formulae"]["old-tool"]["bottle_tag"] = "sequoia".into();
        std::fs::write(&file, index::render_jws(&payload.to_string())).unwrap();
        let report = install(&mirror, "tahoe", &["old-tool"]).await;
        assert_eq!(
            report.problems(),
            [("old-tool".to_string(), "invalid API entry")]
        );
        assert!(report.to_string().contains("bottle_tag"), "{report}");
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
