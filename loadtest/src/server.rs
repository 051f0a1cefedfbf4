//! The stand-in itself: binds both hosts, owns the state the handlers
//! share, and exposes the control surface tests use (faults, stats, ground
//! truth, index override).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::TokenStore;
use crate::bottles::{self, BottleInfo, ResolvedCatalog};
use crate::catalog::Catalog;
use crate::connection::{ConnectionReset, ResettableListener};
use crate::content::BottleContent;
use crate::faults::{Fault, FaultTable};
use crate::stats::{BottleCounters, Stats, TotalCounters};
use crate::storage::UrlSigner;
use crate::{api, control, gzip, index, registry, storage, tags};

/// How to start a stand-in.
#[derive(Clone, Debug, Default)]
pub struct StandInConfig {
    pub catalog: Catalog,
    /// Reject the anonymous `QQ==` token too, so clients must follow the
    /// 401 challenge to `/token`.
    pub require_token: bool,
    /// Port of the API + registry host; 0 picks a free one.
    pub api_port: u16,
    /// Port of the signed-URL storage host; 0 picks a free one.
    pub storage_port: u16,
    /// The client tags that have an `internal/packages.<tag>.jws.json`
    /// (others answer 404, like a tag upstream does not publish); `None`:
    /// every client tag, as upstream.
    pub packages_tags: Option<Vec<String>>,
    /// Cap on each storage connection's body rate, bytes per second
    /// (`None`: no cap), like a CDN that limits one stream; changeable at
    /// run time with [`StandIn::set_conn_rate`].
    pub conn_rate_bytes_per_sec: Option<u64>,
}

impl StandInConfig {
    /// `catalog` on random ports, anonymous token accepted.
    pub fn new(catalog: Catalog) -> Self {
        StandInConfig {
            catalog,
            ..StandInConfig::default()
        }
    }
}

/// A content-addressed blob: what both hosts know about one sha256.
pub(crate) struct BlobEntry {
    pub content: BottleContent,
    /// Images whose blob URL may name this sha256 (bottles of identical
    /// content share it, as on a real registry).
    pub images: Vec<String>,
    pub counters: Arc<BottleCounters>,
}

/// `formula.json` and its JWS wrapper, rendered once per change.
#[derive(Clone)]
pub(crate) struct IndexDocs {
    pub json: Bytes,
    pub json_gzip: Bytes,
    pub json_etag: String,
    pub jws: Bytes,
    pub jws_gzip: Bytes,
    pub jws_etag: String,
}

impl IndexDocs {
    fn new(json: String) -> Self {
        let jws = index::render_jws(&json);
        IndexDocs {
            json_etag: etag_of(json.as_bytes()),
            jws_etag: etag_of(jws.as_bytes()),
            json_gzip: Bytes::from(gzip::encode(json.as_bytes())),
            jws_gzip: Bytes::from(gzip::encode(jws.as_bytes())),
            json: Bytes::from(json),
            jws: Bytes::from(jws),
        }
    }
}

/// A strong ETag: the quoted sha256 of the body.
pub(crate) fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

/// What every handler of both hosts shares.
pub(crate) struct SharedState {
    pub catalog: Catalog,
    pub resolved: ResolvedCatalog,
    /// Portable Ruby's versions, apart from the formulae.
    pub portable_ruby: ResolvedCatalog,
    pub blobs: HashMap<String, BlobEntry>,
    /// `(image, version_rebuild)` -> formula index.
    pub manifests: HashMap<(String, String), usize>,
    pub formula_by_name: HashMap<String, usize>,
    pub catalog_index: IndexDocs,
    /// `formula.json` is overridden (`set_index_text`): no per-tag files.
    pub index_overridden: AtomicBool,
    pub index: RwLock<IndexDocs>,
    /// Rendered `internal/packages.<tag>.jws.json` (plain, gzip), by tag.
    pub packages_files: Mutex<HashMap<String, (Bytes, Bytes)>>,
    /// See [`StandInConfig::packages_tags`].
    pub packages_tags: RwLock<Option<Vec<String>>>,
    pub faults: FaultTable,
    pub totals: TotalCounters,
    pub tokens: TokenStore,
    pub url_signer: UrlSigner,
    pub require_token: AtomicBool,
    pub signed_url_ttl_secs: AtomicU64,
    /// See [`StandInConfig::conn_rate_bytes_per_sec`]; 0: no cap.
    pub conn_rate_bytes_per_sec: AtomicU64,
    /// How long the registry takes to answer a manifest request, in
    /// milliseconds (0: at once). See [`StandIn::set_manifest_delay`].
    pub manifest_delay_ms: AtomicU64,
    pub shutting_down: AtomicBool,
    pub api_origin: String,
    pub storage_origin: String,
}

impl SharedState {
    pub fn registry_root(&self) -> String {
        format!("{}/v2/homebrew/core", self.api_origin)
    }

    pub fn stats(&self) -> Stats {
        self.totals.snapshot(
            self.blobs
                .iter()
                .map(|(sha, entry)| (sha.as_str(), entry.counters.as_ref())),
        )
    }

    pub fn reset_stats(&self) {
        self.totals.reset();
        for entry in self.blobs.values() {
            entry.counters.reset();
        }
    }

    pub fn set_index_text(&self, text: String) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = IndexDocs::new(text);
        self.index_overridden.store(true, Ordering::Relaxed);
    }

    pub fn clear_index_override(&self) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = self.catalog_index.clone();
        self.index_overridden.store(false, Ordering::Relaxed);
    }

    /// Whether a client on `tag` gets a per-tag API file.
    pub fn has_packages_file(&self, tag: &str) -> bool {
        // Per-tag files are rendered from the catalog; an index override
        // replaces the catalog's API, so they are gone with it.
        !self.index_overridden.load(Ordering::Relaxed)
            && tags::client_tags().iter().any(|t| t == tag)
            && self
                .packages_tags
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_none_or(|tags| tags.iter().any(|t| t == tag))
    }

    /// `internal/packages.<tag>.jws.json` (plain, gzip), rendered once.
    pub fn packages_file(&self, tag: &str) -> (Bytes, Bytes) {
        let mut cache = self
            .packages_files
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .entry(tag.to_string())
            .or_insert_with(|| {
                let jws = index::render_packages_file(&self.resolved, tag);
                let gzipped = Bytes::from(gzip::encode(jws.as_bytes()));
                (Bytes::from(jws), gzipped)
            })
            .clone()
    }

    pub fn index_docs(&self) -> IndexDocs {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The per-connection cap of storage bodies, bytes per second.
    pub fn conn_rate(&self) -> Option<u64> {
        Some(self.conn_rate_bytes_per_sec.load(Ordering::Relaxed)).filter(|&rate| rate > 0)
    }

    pub fn set_conn_rate(&self, bytes_per_sec: Option<u64>) {
        self.conn_rate_bytes_per_sec
            .store(bytes_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// A signed storage URL for `sha256`, valid for the configured TTL.
    pub fn signed_url(&self, sha256: &str) -> String {
        let ttl = self.signed_url_ttl_secs.load(Ordering::Relaxed);
        self.url_signer
            .signed_url(&self.storage_origin, sha256, ttl)
    }
}

/// A running Homebrew stand-in: host A serves the formula API
/// (`/api/...`), the token endpoint and the registry (`/v2/...`), plus the
/// `/__standin/...` control endpoints; host B (another port, so another
/// origin) serves the signed bottle URLs the registry redirects to.
///
/// Dropping it (or [`StandIn::shutdown`]) stops both servers.
pub struct StandIn {
    pub(crate) state: Arc<SharedState>,
    api_addr: SocketAddr,
    storage_addr: SocketAddr,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

impl StandIn {
    /// Binds both hosts on 127.0.0.1, hashes every bottle, and starts
    /// serving on the current tokio runtime. Returns once listening.
    pub async fn start(config: StandInConfig) -> anyhow::Result<StandIn> {
        config.catalog.validate()?;
        let api_listener = TcpListener::bind(("127.0.0.1", config.api_port))
            .await
            .with_context(|| format!("binding the API port {}", config.api_port))?;
        let storage_listener = TcpListener::bind(("127.0.0.1", config.storage_port))
            .await
            .with_context(|| format!("binding the storage port {}", config.storage_port))?;
        let api_addr = api_listener.local_addr()?;
        let storage_addr = storage_listener.local_addr()?;
        let api_origin = format!("http://{api_addr}");
        let storage_origin = format!("http://{storage_addr}");

        let registry_root = format!("{api_origin}/v2/homebrew/core");
        let catalog = config.catalog.clone();
        let resolved =
            tokio::task::spawn_blocking(move || bottles::resolve(&catalog, &registry_root))
                .await
                .context("hashing the bottles")?;
        let state = Arc::new(build_state(config, resolved, api_origin, storage_origin));

        let (stop, _) = watch::channel(false);
        let stopped = |stop: &watch::Sender<bool>| {
            let mut rx = stop.subscribe();
            async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            }
        };

        let api_app = api::router()
            .merge(registry::router())
            .merge(control::router())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                count_request_path,
            ))
            .with_state(state.clone())
            .into_make_service_with_connect_info::<ConnectionReset>();
        let api_server = axum::serve(ResettableListener::new(api_listener), api_app)
            .with_graceful_shutdown(stopped(&stop));
        let storage_app = storage::router().with_state(state.clone());
        let storage_server = axum::serve(ResettableListener::new(storage_listener), storage_app)
            .with_graceful_shutdown(stopped(&stop));
        let servers = vec![
            tokio::spawn(async move {
                let _ = api_server.await;
            }),
            tokio::spawn(async move {
                let _ = storage_server.await;
            }),
        ];
        tracing::info!(
            api = %api_addr,
            storage = %storage_addr,
            formulae = state.resolved.formulae.len(),
            bottles = state.resolved.bottles.len(),
            "stand-in listening"
        );
        Ok(StandIn {
            state,
            api_addr,
            storage_addr,
            stop,
            servers,
        })
    }

    /// `http://127.0.0.1:P1/api`: what `HOMEBREW_API_DOMAIN` would be.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.state.api_origin)
    }

    /// `http://127.0.0.1:P1`: host A (API, token endpoint, registry, control).
    pub fn api_origin(&self) -> String {
        self.state.api_origin.clone()
    }

    /// `http://127.0.0.1:P1/v2/homebrew/core`: the bottles' `root_url`.
    pub fn registry_root(&self) -> String {
        self.state.registry_root()
    }

    /// `http://127.0.0.1:P2`: host B, the signed-URL storage.
    pub fn storage_origin(&self) -> String {
        self.state.storage_origin.clone()
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn storage_addr(&self) -> SocketAddr {
        self.storage_addr
    }

    /// The catalog being served.
    pub fn catalog(&self) -> &Catalog {
        &self.state.catalog
    }

    /// Ground truth: every bottle, formula by formula, in catalog order.
    pub fn bottles(&self) -> Vec<BottleInfo> {
        self.state.resolved.bottles.clone()
    }

    /// The bottles a mirror for `client_tags` must hold, by sha256: per
    /// formula, the bottle each client tag would install (brew's fallback
    /// rule, [`installable_tag`](crate::installable_tag)). Disabled formulae
    /// only with `include_disabled`.
    pub fn expected_mirror(
        &self,
        client_tags: &[&str],
        include_disabled: bool,
    ) -> BTreeMap<String, BottleInfo> {
        let mut by_formula: BTreeMap<&str, Vec<&BottleInfo>> = BTreeMap::new();
        for bottle in &self.state.resolved.bottles {
            by_formula.entry(&bottle.name).or_default().push(bottle);
        }
        let mut expected = BTreeMap::new();
        for bottles in by_formula.values() {
            if bottles[0].disabled && !include_disabled {
                continue;
            }
            let tags: Vec<&str> = bottles.iter().map(|b| b.tag.as_str()).collect();
            for client in client_tags {
                if let Some(tag) = crate::installable_tag(&tags, client)
                    && let Some(bottle) = bottles.iter().find(|b| b.tag == tag)
                {
                    expected.insert(bottle.sha256.clone(), (*bottle).clone());
                }
            }
        }
        expected
    }

    /// The bottle of formula `name` for `tag`, if the catalog has it.
    pub fn bottle(&self, name: &str, tag: &str) -> Option<BottleInfo> {
        self.state
            .resolved
            .bottles
            .iter()
            .find(|b| b.name == name && b.tag == tag)
            .cloned()
    }

    /// The content of a bottle, to stream or hash without holding it.
    pub fn bottle_content(&self, sha256: &str) -> Option<BottleContent> {
        self.state.blobs.get(sha256).map(|b| b.content)
    }

    /// The bytes of a bottle (small bottles only: it is all in memory).
    pub fn bottle_bytes(&self, sha256: &str) -> Option<Vec<u8>> {
        self.bottle_content(sha256).map(|c| c.to_vec())
    }

    /// A valid signed storage URL for `sha256`, as the registry would
    /// redirect to (for tests of host B alone).
    pub fn signed_url(&self, sha256: &str) -> String {
        self.state.signed_url(sha256)
    }

    /// Sets the fault of a bottle (replacing any earlier one). Faults of
    /// unknown sha256s are kept but never apply.
    pub fn set_fault(&self, sha256: &str, fault: Fault) {
        self.state.faults.set(sha256, fault);
    }

    pub fn clear_fault(&self, sha256: &str) {
        self.state.faults.clear(sha256);
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear_all();
    }

    /// The active faults (the remaining uses of counted ones).
    pub fn faults(&self) -> Vec<(String, Fault)> {
        self.state.faults.list()
    }

    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// Makes `formula.json` (and the payload of `formula.jws.json`) serve
    /// `value` instead of the catalog. Blobs, manifests and the ground truth
    /// stay those of the catalog.
    pub fn set_index_json(&self, value: serde_json::Value) {
        self.state.set_index_text(value.to_string());
    }

    /// Like [`StandIn::set_index_json`] with any text, e.g. truncated JSON.
    pub fn set_index_text(&self, text: impl Into<String>) {
        self.state.set_index_text(text.into());
    }

    /// Serves the catalog's own index again.
    pub fn clear_index_override(&self) {
        self.state.clear_index_override();
    }

    /// Which client tags get an `internal/packages.<tag>.jws.json` from now
    /// on (others: 404); `None`: every client tag, as upstream.
    pub fn set_packages_tags(&self, tags: Option<Vec<String>>) {
        *self
            .state
            .packages_tags
            .write()
            .unwrap_or_else(|e| e.into_inner()) = tags;
    }

    /// Serves `payload` (the JWS payload's text) as tag `tag`'s per-tag file
    /// from now on, e.g. the catalog's with an entry a mirror must set
    /// aside ([`StandIn::packages_payload`] gives the text to start from).
    pub fn set_packages_payload(&self, tag: &str, payload: &str) {
        let jws = index::render_jws(payload);
        let gzipped = Bytes::from(gzip::encode(jws.as_bytes()));
        self.state
            .packages_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag.to_string(), (Bytes::from(jws), gzipped));
    }

    /// The payload text of tag `tag`'s per-tag file as served now.
    pub fn packages_payload(&self, tag: &str) -> String {
        let (jws, _) = self.state.packages_file(tag);
        let envelope: serde_json::Value =
            serde_json::from_slice(&jws).expect("the stand-in serves JSON");
        envelope["payload"]
            .as_str()
            .expect("a JWS has a payload")
            .to_string()
    }

    /// The bytes this stand-in serves (uncompressed) as
    /// `/api/internal/packages.<tag>.jws.json`, or `None` where it answers
    /// 404: what a mirror must publish byte for byte.
    pub fn packages_file(&self, tag: &str) -> Option<Vec<u8>> {
        self.state
            .has_packages_file(tag)
            .then(|| self.state.packages_file(tag).0.to_vec())
    }

    /// The OCI image index served at `<image>/manifests/<reference>`, if
    /// there is one.
    pub fn image_index(&self, image: &str, reference: &str) -> Option<Vec<u8>> {
        let &i = self
            .state
            .manifests
            .get(&(image.to_string(), reference.to_string()))?;
        Some(self.state.resolved.image_index(i).into_bytes())
    }

    /// Whether the anonymous `QQ==` token is rejected (changeable at run time).
    pub fn set_require_token(&self, require: bool) {
        self.state.require_token.store(require, Ordering::Relaxed);
    }

    /// Makes registry tokens expire after `uses` authorised requests each
    /// (`None`: never), like tokens whose lifetime ends mid-run.
    pub fn set_token_max_uses(&self, uses: Option<u32>) {
        self.state.tokens.set_max_uses(uses);
    }

    /// Expires every registry token issued so far.
    pub fn expire_tokens(&self) {
        self.state.tokens.expire_all();
    }

    /// How long signed storage URLs stay valid (default 300 s; zero makes
    /// them expire at once).
    pub fn set_signed_url_ttl(&self, ttl: Duration) {
        self.state
            .signed_url_ttl_secs
            .store(ttl.as_secs(), Ordering::Relaxed);
    }

    /// Caps the body rate of each storage connection at `bytes_per_sec`
    /// from the next GET on (`None` or `Some(0)`: no cap). A bottle's
    /// `slow` fault still applies where it is slower.
    pub fn set_conn_rate(&self, bytes_per_sec: Option<u64>) {
        self.state.set_conn_rate(bytes_per_sec);
    }

    /// The per-connection cap of storage bodies, bytes per second.
    pub fn conn_rate(&self) -> Option<u64> {
        self.state.conn_rate()
    }

    /// Every manifest (image index) request is answered after `delay`: a
    /// slow registry, which makes a plan's sizing (one manifest per formula
    /// version) take as long as a full mirror's does against GitHub's.
    pub fn set_manifest_delay(&self, delay: std::time::Duration) {
        self.state
            .manifest_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Stops both servers: no new connections, bodies in flight are cut.
    /// Waits (at most a few seconds) for them to finish.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        for server in std::mem::take(&mut self.servers) {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn signal_stop(&self) {
        self.state.shutting_down.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("api", &self.api_addr)
            .field("storage", &self.storage_addr)
            .field("bottles", &self.state.resolved.bottles.len())
            .finish()
    }
}

/// Counts GETs and HEADs per path on the API host ([`Stats::paths`]), but
/// not the control endpoints' own traffic.
async fn count_request_path(
    axum::extract::State(state): axum::extract::State<Arc<SharedState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method();
    if (method == axum::http::Method::GET || method == axum::http::Method::HEAD)
        && !request.uri().path().starts_with("/__standin/")
    {
        state.totals.count_path(request.uri().path());
    }
    next.run(request).await
}

fn build_state(
    config: StandInConfig,
    resolved: ResolvedCatalog,
    api_origin: String,
    storage_origin: String,
) -> SharedState {
    let mut blobs: HashMap<String, BlobEntry> = HashMap::with_capacity(resolved.bottles.len());
    for (bottle, content) in resolved.bottles.iter().zip(&resolved.contents) {
        let entry = blobs
            .entry(bottle.sha256.clone())
            .or_insert_with(|| BlobEntry {
                content: *content,
                images: Vec::new(),
                counters: Arc::default(),
            });
        if !entry.images.contains(&bottle.image) {
            entry.images.push(bottle.image.clone());
        }
    }
    let mut manifests = HashMap::new();
    let mut formula_by_name = HashMap::new();
    for (i, formula) in resolved.formulae.iter().enumerate() {
        manifests.insert((formula.image(), formula.version_rebuild()), i);
        formula_by_name.insert(formula.name.clone(), i);
    }
    let registry_root = format!("{api_origin}/v2/homebrew/core");
    let catalog_index = IndexDocs::new(index::render_formula_json(&resolved, &registry_root));
    let portable_ruby = crate::portable_ruby::resolve(&config.catalog, &registry_root);
    for (bottle, content) in portable_ruby.bottles.iter().zip(&portable_ruby.contents) {
        blobs
            .entry(bottle.sha256.clone())
            .or_insert_with(|| BlobEntry {
                content: *content,
                images: vec![bottle.image.clone()],
                counters: Arc::default(),
            });
    }
    SharedState {
        portable_ruby,
        catalog: config.catalog,
        resolved,
        blobs,
        manifests,
        formula_by_name,
        index: RwLock::new(catalog_index.clone()),
        catalog_index,
        index_overridden: AtomicBool::new(false),
        packages_files: Mutex::default(),
        packages_tags: RwLock::new(config.packages_tags),
        faults: FaultTable::default(),
        totals: TotalCounters::default(),
        tokens: TokenStore::default(),
        url_signer: UrlSigner::new(),
        require_token: AtomicBool::new(config.require_token),
        signed_url_ttl_secs: AtomicU64::new(300),
        conn_rate_bytes_per_sec: AtomicU64::new(config.conn_rate_bytes_per_sec.unwrap_or(0)),
        manifest_delay_ms: AtomicU64::new(0),
        shutting_down: AtomicBool::new(false),
        api_origin,
        storage_origin,
    }
}
