//! `bottlesync serve`: the mirror over HTTP as brew clients use it
//! (homebrew.md, "How clients use a mirror"), on axum/hyper. Which object a
//! path names, and the Range and conditional rules, are
//! `bottlesync_core::model::request_path`; this is the I/O around it:
//! - a directory root's files are read by `mirror_dir`: one blocking call
//!   opens, `fstat`s, confines (the real path must stay in the root and out
//!   of `.bottlesync/`, else 403: symlinks) and reads a small file whole;
//!   a big one streams from one reader loop (ETag as `LocalStore::stat`);
//! - an S3 root's objects come through the `BlobStore` port (`stat`, then
//!   a ranged `open_read_range`); with `redirect` it answers a GET with a
//!   307 to a presigned GetObject instead, and a HEAD itself from the
//!   `stat` (a presigned URL is valid for its one method);
//! - registry blobs are looked up in `bottles_hash.json`, read again
//!   whenever its ETag changes;
//! - every request is one access-log line (target `access`) once its body
//!   is sent or dropped: method, path, status, bytes, ms.
//!
//! The `Authorization` header is never looked at.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use super::connections::{self, ConnectionLimits};
use super::mirror_dir::{self, Content, Found, Lookup};
use super::sendfile::FileSends;
use super::tls::ReloadingCert;

use bottlesync_core::mirror_record::read_hash_file;
use bottlesync_core::model::digest::Sha256Digest;
use bottlesync_core::model::hash_file::HASH_FILE_NAME;
use bottlesync_core::model::key::ObjectKey;
use bottlesync_core::model::layout::content_type;
use bottlesync_core::model::request_path::{
    MirrorRequest, RangeAnswer, Refusal, byte_range, not_modified, route,
};
use bottlesync_core::ports::store::{BlobStore, ObjectMeta};
use bottlesync_core::shutdown::Shutdown;
use bottlesync_core::{Error, Result};

/// How long a presigned URL of `--redirect` stays valid.
pub const PRESIGNED_URL_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// What `serve` serves and how.
pub struct MirrorServer {
    store: Arc<dyn BlobStore>,
    /// The canonical root of a directory mirror: every file served must
    /// resolve below it. `None` for S3.
    directory: Option<PathBuf>,
    /// Answer object GETs with a 307 to a presigned URL (S3 only).
    redirect: bool,
    blobs: Mutex<BlobIndex>,
}

/// `bottles_hash.json` as sha256 -> stored bottle, and the ETag it was
/// read at.
#[derive(Default)]
struct BlobIndex {
    etag: Option<String>,
    bottles: HashMap<Sha256Digest, ObjectKey>,
}

impl MirrorServer {
    /// A server of `store`. `directory` is the mirror's directory for a
    /// directory store (resolved here, so it must exist); `redirect` needs
    /// a store that presigns (S3).
    pub fn new(
        store: Arc<dyn BlobStore>,
        directory: Option<PathBuf>,
        redirect: bool,
    ) -> Result<Self> {
        let directory = match directory {
            None => None,
            Some(dir) => Some(std::fs::canonicalize(&dir).map_err(|e| {
                Error::destination(dir.display().to_string(), format!("cannot serve: {e}"))
            })?),
        };
        if redirect && directory.is_some() {
            return Err(Error::destination(
                store.location(),
                "--redirect needs an s3:// root (a directory has no presigned URLs)",
            ));
        }
        Ok(MirrorServer {
            store,
            directory,
            redirect,
            blobs: Mutex::new(BlobIndex::default()),
        })
    }

    /// The router: every path goes through [`route`].
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .fallback(answer)
            .layer(middleware::from_fn(access_log))
            .with_state(self)
    }

    /// Serves on `listener` (over TLS with `tls`) within `limits` until
    /// `shutdown` stops it: then new connections are refused, idle
    /// keep-alive connections closed, and the responses in flight finish
    /// (on `cancel`, they are abandoned at once).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<ReloadingCert>>,
        limits: ConnectionLimits,
        shutdown: Shutdown,
    ) -> Result<()> {
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let location = self.store.location();
        connections::raise_open_file_limit(limits.max_connections);
        tracing::info!(
            %address,
            root = %location,
            redirect = self.redirect,
            tls = tls.is_some(),
            header_timeout_s = limits.header_timeout.as_secs_f64(),
            idle_timeout_s = limits.idle_timeout.as_secs_f64(),
            max_connections = limits.max_connections,
            min_send_rate = limits.min_send_rate,
            "serving the mirror"
        );
        if connections::serve_connections(listener, self.router(), tls, limits, shutdown).await {
            tracing::info!("every response finished; stopped");
        } else {
            tracing::warn!("abandoning the responses in flight");
        }
        Ok(())
    }

    /// Answers one GET or HEAD of an object.
    /// `sends`: the connection sends file bodies with `sendfile` (plain
    /// HTTP/1.1).
    async fn object(
        &self,
        method: &Method,
        headers: &HeaderMap,
        key: &ObjectKey,
        sends: Option<&FileSends>,
    ) -> Response {
        let (meta, content) = match &self.directory {
            Some(root) => match mirror_dir::lookup(root, key, method == Method::GET).await {
                Lookup::Found(Found { meta, content }) => (meta, Some(content)),
                Lookup::Missing => return plain(StatusCode::NOT_FOUND, "not found\n"),
                Lookup::Refused => {
                    tracing::warn!(key = %key, "refusing a file that resolves outside the mirror");
                    return plain(StatusCode::FORBIDDEN, "forbidden\n");
                }
                Lookup::Failed(problem) => {
                    return unavailable(key, Error::store(self.store.location(), problem));
                }
            },
            None => match self.store.stat(key).await {
                Ok(Some(meta)) => (meta, None),
                Ok(None) => return plain(StatusCode::NOT_FOUND, "not found\n"),
                Err(e) => return unavailable(key, e),
            },
        };
        let mut response = Response::builder()
            .header(header::CONTENT_TYPE, content_type(key))
            .header(header::ACCEPT_RANGES, "bytes");
        if let Some(modified) = meta.last_modified {
            response = response.header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified));
        }
        if let Some(etag) = &meta.etag {
            response = response.header(header::ETAG, etag);
        }
        if not_modified(
            text(headers, header::IF_NONE_MATCH),
            text(headers, header::IF_MODIFIED_SINCE)
                .and_then(|t| httpdate::parse_http_date(t).ok()),
            meta.etag.as_deref(),
            meta.last_modified,
        ) {
            return response
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .expect("valid response");
        }
        // A URL is presigned for one method (SigV4 signs it): a HEAD is
        // answered here from the metadata just read, never sent to a URL
        // presigned for GET (real S3 would answer it 403).
        if self.redirect && method == Method::GET {
            return match self.store.presigned_get(key, PRESIGNED_URL_VALIDITY).await {
                Ok(Some(url)) => Response::builder()
                    .status(StatusCode::TEMPORARY_REDIRECT)
                    .header(header::LOCATION, url)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(Body::from("redirecting to the bucket\n"))
                    .expect("valid response"),
                Ok(None) => plain(StatusCode::NOT_IMPLEMENTED, "no presigned URLs here\n"),
                Err(e) => unavailable(key, e),
            };
        }
        let range = match text(headers, header::RANGE) {
            Some(value) if if_range_holds(headers, &meta) => byte_range(value, meta.size),
            _ => RangeAnswer::Whole,
        };
        let (status, part, len) = match range {
            RangeAnswer::Whole => (StatusCode::OK, None, meta.size),
            RangeAnswer::Part { first, last } => {
                response = response.header(
                    header::CONTENT_RANGE,
                    format!("bytes {first}-{last}/{}", meta.size),
                );
                (
                    StatusCode::PARTIAL_CONTENT,
                    Some((first, last)),
                    last - first + 1,
                )
            }
            RangeAnswer::Unsatisfiable => {
                return response
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", meta.size))
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(Body::from("range not satisfiable\n"))
                    .expect("valid response");
            }
        };
        let response = response.status(status).header(header::CONTENT_LENGTH, len);
        if method == Method::HEAD {
            return response.body(Body::empty()).expect("valid response");
        }
        let (first, last) = part.unwrap_or((0, meta.size.saturating_sub(1)));
        let body = match content {
            Some(Content::Whole(whole)) => {
                if whole.len() as u64 != meta.size {
                    // Truncated between fstat and read: the headers would lie.
                    return plain(StatusCode::SERVICE_UNAVAILABLE, "changing; retry\n");
                }
                if len == 0 {
                    Body::empty()
                } else {
                    Body::from(whole.slice(first as usize..=last as usize))
                }
            }
            Some(Content::Open(file)) if let Some(sends) = sends => {
                Body::from_stream(sends.body(file, first, len, key.to_string()))
            }
            Some(Content::Open(file)) => {
                let shown = key.to_string();
                let stream = mirror_dir::body(file, first, len, shown.clone()).map(move |chunk| {
                    chunk.inspect_err(|e| {
                        tracing::warn!(key = %shown, error = %e, "reading failed mid-response: the client gets a short body");
                    })
                });
                Body::from_stream(stream)
            }
            None => match self.store_body(key, part, len).await {
                Ok(body) => body,
                Err(refused) => return refused,
            },
        };
        response.body(body).expect("valid response")
    }

    /// A body through the `BlobStore` port (the S3 root).
    async fn store_body(
        &self,
        key: &ObjectKey,
        part: Option<(u64, u64)>,
        len: u64,
    ) -> std::result::Result<Body, Response> {
        let read = match self.store.open_read_range(key, part).await {
            Ok(Some(read)) => read,
            Ok(None) => return Err(plain(StatusCode::NOT_FOUND, "not found\n")),
            Err(e) => return Err(unavailable(key, e)),
        };
        if read.size != len {
            // Replaced between stat and open: the headers would lie.
            return Err(plain(StatusCode::SERVICE_UNAVAILABLE, "changing; retry\n"));
        }
        let shown = key.to_string();
        let body = read.body.map(move |chunk| {
            chunk.map_err(|e| {
                tracing::warn!(key = %shown, error = %e, "reading failed mid-response: the client gets a short body");
                std::io::Error::other(e.to_string())
            })
        });
        Ok(Body::from_stream(body))
    }

    /// The stored bottle `bottles_hash.json` lists for `sha256` (its flat
    /// key: an older record's dated key may have expired), reading the file
    /// again when it changed since the last look.
    async fn blob_key(&self, sha256: &Sha256Digest) -> Result<Option<ObjectKey>> {
        let hash_key = ObjectKey::parse(HASH_FILE_NAME)?;
        let etag = self.store.stat(&hash_key).await?.and_then(|meta| meta.etag);
        let mut blobs = self.blobs.lock().await;
        if etag.is_none() || blobs.etag != etag {
            let record = read_hash_file(self.store.as_ref()).await?;
            tracing::info!(
                bottles = record.bottles.len(),
                "read {HASH_FILE_NAME} for registry blobs"
            );
            blobs.bottles = record
                .bottles
                .into_iter()
                .map(|(sha, bottle)| (sha, bottle.flat_key()))
                .collect();
            blobs.etag = etag;
        }
        Ok(blobs.bottles.get(sha256).cloned())
    }
}

/// The one handler.
async fn answer(
    State(server): State<Arc<MirrorServer>>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let sends = request.extensions().get::<FileSends>();
    match route(request.uri().path()) {
        Ok(MirrorRequest::Health) => plain(StatusCode::OK, "ok"),
        Ok(MirrorRequest::Object(key)) => server.object(&method, &headers, &key, sends).await,
        Ok(MirrorRequest::Blob { sha256, .. }) => match server.blob_key(&sha256).await {
            Ok(Some(key)) => server.object(&method, &headers, &key, sends).await,
            Ok(None) => plain(StatusCode::NOT_FOUND, "no such blob in this mirror\n"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read {HASH_FILE_NAME} for a registry blob");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "mirror index unavailable\n",
                )
            }
        },
        Err(refusal) => refused(&refusal),
    }
}

fn refused(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    plain(status, refusal.message())
}

/// A short plain-text answer.
fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.into()))
        .expect("valid response")
}

fn unavailable(key: &ObjectKey, e: Error) -> Response {
    tracing::warn!(key = %key, error = %e, "the mirror's store failed: answering 503");
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "mirror storage unavailable\n",
    )
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `If-Range`: the Range applies only while the object is the one named
/// (by ETag, or by a date no older than its time).
fn if_range_holds(headers: &HeaderMap, meta: &ObjectMeta) -> bool {
    let Some(value) = text(headers, header::IF_RANGE) else {
        return true;
    };
    if value.starts_with('"') || value.starts_with("W/") {
        return meta.etag.as_deref() == Some(value);
    }
    match (httpdate::parse_http_date(value), meta.last_modified) {
        (Ok(date), Some(modified)) => seconds(modified) <= seconds(date),
        _ => false,
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One line per request, logged when its body has been sent or dropped.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let mut line = AccessLine {
        method,
        path,
        status: response.status().as_u16(),
        bytes: 0,
        started,
    };
    let (mut parts, body) = response.into_parts();
    // The stream below has no size of its own: keep a known one.
    if let Some(size) = HttpBody::size_hint(&body).exact()
        && !parts.headers.contains_key(header::CONTENT_LENGTH)
        && method_has_body(&line.method)
        && line.status != 304
    {
        parts.headers.insert(header::CONTENT_LENGTH, size.into());
    }
    let body = body.into_data_stream().map(move |chunk| {
        // The whole line moves into the stream (not just its counter): it
        // logs when the stream is dropped.
        let line = &mut line;
        if let Ok(chunk) = &chunk {
            line.bytes += chunk.len() as u64;
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

fn method_has_body(method: &Method) -> bool {
    method != Method::HEAD
}

struct AccessLine {
    method: Method,
    path: String,
    status: u16,
    bytes: u64,
    started: Instant,
}

impl Drop for AccessLine {
    fn drop(&mut self) {
        tracing::info!(
            target: "access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            ms = self.started.elapsed().as_millis() as u64,
            "request"
        );
    }
}
