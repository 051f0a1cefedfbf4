//! Host B: the signed-URL storage the registry redirects to (like
//! `pkg-containers.githubusercontent.com`). It rejects requests that carry
//! an `Authorization` header (the mistake of forwarding registry
//! credentials across the redirect), checks the URL signature and expiry,
//! and streams generated bottle bytes with single-range support and the
//! storage-side faults.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE,
};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::time::{Instant, Sleep};

use crate::content::Pieces;
use crate::server::SharedState;
use crate::stats::{BottleCounters, bump};

pub(crate) fn router() -> Router<Arc<SharedState>> {
    Router::new().route("/blobs/{sha256}", get(blob))
}

/// Signs storage URLs with a per-run secret key.
pub(crate) struct UrlSigner {
    key: [u8; 32],
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl UrlSigner {
    pub fn new() -> Self {
        UrlSigner {
            key: rand::random(),
        }
    }

    /// Hex of a keyed SHA-256 over the sha256 and the expiry.
    fn signature(&self, sha256: &str, expires: u64) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(sha256.as_bytes());
        hasher.update(b":");
        hasher.update(expires.to_string().as_bytes());
        hex::encode(hasher.finalize())
    }

    /// `{origin}/blobs/{sha256}?expires=<unix now + ttl>&sig=<hex>`.
    pub fn signed_url(&self, origin: &str, sha256: &str, ttl_secs: u64) -> String {
        let expires = unix_now() + ttl_secs;
        let sig = self.signature(sha256, expires);
        format!("{origin}/blobs/{sha256}?expires={expires}&sig={sig}")
    }

    /// Why the query does not grant access to `sha256`, if it does not.
    fn refusal(&self, sha256: &str, query: &str) -> Option<&'static str> {
        let mut expires = None;
        let mut sig = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "expires" => expires = value.parse::<u64>().ok(),
                "sig" => sig = Some(value.into_owned()),
                _ => {}
            }
        }
        let (Some(expires), Some(sig)) = (expires, sig) else {
            return Some("Query-string authentication requires the expires and sig parameters");
        };
        if sig != self.signature(sha256, expires) {
            return Some(
                "The request signature we calculated does not match the signature you provided",
            );
        }
        if unix_now() >= expires {
            return Some("Request has expired");
        }
        None
    }
}

/// An S3-style XML error.
fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/xml")],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ),
    )
        .into_response()
}

/// What a `Range` header asks of a body of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeRequest {
    Full,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// Single ranges only (`N-`, `N-M`, `-N`); anything else is ignored and the
/// full body served, as HTTP allows.
fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeRequest::Full;
        };
        if suffix == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Part(size.saturating_sub(suffix), size - 1);
    }
    let Ok(first) = first.parse::<u64>() else {
        return RangeRequest::Full;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(last) if last >= first => last,
            _ => return RangeRequest::Full,
        }
    };
    if first >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part(first, last.min(size - 1))
}

/// `GET|HEAD /blobs/<sha256>?expires=..&sig=..`.
async fn blob(
    State(state): State<Arc<SharedState>>,
    method: Method,
    Path(sha256): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let head = method == Method::HEAD;
    let entry = state.blobs.get(&sha256);
    if head {
        bump(&state.totals.head_requests);
    } else {
        bump(&state.totals.storage_gets);
    }
    if let Some(entry) = entry {
        bump(if head {
            &entry.counters.storage_head_requests
        } else {
            &entry.counters.storage_gets
        });
    }
    if headers.contains_key(AUTHORIZATION) {
        bump(&state.totals.storage_auth_rejections);
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        );
    }
    if let Some(reason) = state
        .url_signer
        .refusal(&sha256, query.as_deref().unwrap_or(""))
    {
        bump(&state.totals.storage_signature_rejections);
        return xml_error(StatusCode::FORBIDDEN, "AccessDenied", reason);
    }
    let Some(entry) = entry else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let size = entry.content.size;
    let etag = format!("\"{sha256}\"");
    if head {
        return (
            [
                (CONTENT_LENGTH, size.to_string()),
                (CONTENT_TYPE, "application/octet-stream".into()),
                (ACCEPT_RANGES, "bytes".into()),
                (ETAG, etag),
            ],
            Body::empty(),
        )
            .into_response();
    }

    let range_header = headers.get(RANGE).and_then(|v| v.to_str().ok());
    if range_header.is_some() {
        bump(&state.totals.range_requests);
        bump(&entry.counters.range_requests);
    }
    let ignore_range = range_header.is_some() && state.faults.ignores_range(&sha256);
    let requested = if ignore_range {
        bump(&state.totals.faults_injected);
        tracing::debug!(sha256, "storage fault: Range ignored");
        RangeRequest::Full
    } else {
        parse_range(range_header, size)
    };
    let (status, first, last) = match requested {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Part(first, last) => (StatusCode::PARTIAL_CONTENT, first, last + 1),
        RangeRequest::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response();
        }
    };
    let range_start = (status == StatusCode::PARTIAL_CONTENT).then_some(first);
    let faults = state.faults.take_storage(&sha256, range_start);
    if faults != Default::default() {
        bump(&state.totals.faults_injected);
        tracing::debug!(sha256, ?faults, "storage fault");
    }
    if let Some(code) = faults.status {
        return fault_status(code);
    }
    let len = last - first;
    let stream = BlobStream {
        counters: entry.counters.clone(),
        pieces: entry.content.pieces(first..last),
        pending: None,
        pos: first,
        sent: 0,
        truncate_after: faults.truncate.then_some(len / 2),
        closing: None,
        corrupt_at: faults.corrupt.then_some(size / 2),
        throttle: pace(faults.bytes_per_sec, state.conn_rate()).map(Throttle::new),
        state: state.clone(),
    };
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_LENGTH, len.into());
    h.insert(
        CONTENT_TYPE,
        "application/octet-stream".parse().expect("valid"),
    );
    h.insert(ACCEPT_RANGES, "bytes".parse().expect("valid"));
    h.insert(ETAG, etag.parse().expect("valid"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            CONTENT_RANGE,
            format!("bytes {first}-{}/{size}", last - 1)
                .parse()
                .expect("valid"),
        );
    }
    response
}

/// The S3-style answer of a `storage_status` fault.
fn fault_status(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let error_code = match status {
        StatusCode::INTERNAL_SERVER_ERROR => "InternalError",
        StatusCode::SERVICE_UNAVAILABLE => "SlowDown",
        StatusCode::FORBIDDEN => "AccessDenied",
        _ => "ServiceUnavailable",
    };
    let message = format!(
        "{} (injected fault)",
        status.canonical_reason().unwrap_or("error")
    );
    xml_error(status, error_code, &message)
}

/// The pace of one body: the slower of the bottle's `slow` fault and the
/// per-connection cap. HTTP/1.1 sends one response at a time per
/// connection, so pacing each body caps each connection (a new body
/// starts its pacing afresh, which lets at most one 50 ms frame through
/// early).
fn pace(slow_fault: Option<u64>, conn_rate: Option<u64>) -> Option<u64> {
    match (slow_fault, conn_rate) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How far a paced body may fall behind its pace and still catch up.
const MAX_BURST: Duration = Duration::from_millis(50);

/// Paces a body to about `bytes_per_sec`.
struct Throttle {
    bytes_per_sec: u64,
    /// Largest frame: 50 ms worth of bytes.
    frame_len: usize,
    next_at: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Throttle {
    fn new(bytes_per_sec: u64) -> Self {
        let now = Instant::now();
        Throttle {
            bytes_per_sec,
            frame_len: (bytes_per_sec / 20).clamp(1, 64 * 1024) as usize,
            next_at: now,
            sleep: Box::pin(tokio::time::sleep_until(now)),
        }
    }
}

/// The body of one storage GET: zero-copy pieces of the bottle, with the
/// storage faults applied and the bytes counted as they are handed over.
struct BlobStream {
    state: Arc<SharedState>,
    counters: Arc<BottleCounters>,
    pieces: Pieces,
    /// The rest of a piece cut short by a frame limit.
    pending: Option<Bytes>,
    /// Bottle offset of the next byte.
    pos: u64,
    /// Body bytes handed over so far.
    sent: u64,
    truncate_after: Option<u64>,
    /// A short pause before failing a truncated body, so hyper flushes what
    /// it has and the client gets about half the body.
    closing: Option<Pin<Box<Sleep>>>,
    corrupt_at: Option<u64>,
    throttle: Option<Throttle>,
}

impl Stream for BlobStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.state.shutting_down.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(io::Error::other("stand-in shutting down"))));
        }
        if let Some(limit) = this.truncate_after
            && this.sent >= limit
        {
            let pause = this
                .closing
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(30))));
            ready!(pause.as_mut().poll(cx));
            return Poll::Ready(Some(Err(io::Error::other(
                "body truncated by fault injection",
            ))));
        }
        if let Some(throttle) = &mut this.throttle
            && Instant::now() < throttle.next_at
        {
            throttle.sleep.as_mut().reset(throttle.next_at);
            ready!(throttle.sleep.as_mut().poll(cx));
        }
        let Some(mut piece) = this.pending.take().or_else(|| this.pieces.next()) else {
            return Poll::Ready(None);
        };
        let mut max = piece.len();
        if let Some(limit) = this.truncate_after {
            max = max.min((limit - this.sent) as usize);
        }
        if let Some(throttle) = &this.throttle {
            max = max.min(throttle.frame_len);
        }
        if piece.len() > max {
            this.pending = Some(piece.split_off(max));
        }
        let len = piece.len() as u64;
        if let Some(at) = this.corrupt_at
            && (this.pos..this.pos + len).contains(&at)
        {
            let mut changed = BytesMut::from(&piece[..]);
            changed[(at - this.pos) as usize] ^= 0xff;
            piece = changed.freeze();
        }
        this.pos += len;
        this.sent += len;
        this.counters.bytes_served.fetch_add(len, Ordering::Relaxed);
        this.state
            .totals
            .bytes_served
            .fetch_add(len, Ordering::Relaxed);
        if let Some(throttle) = &mut this.throttle {
            let pace = Duration::from_secs_f64(len as f64 / throttle.bytes_per_sec as f64);
            // Timer wake-ups come late (~1 ms ticks, a busy runtime): keep
            // the debt so the average holds at high rates (one 64 KiB frame
            // at 50 MB/s is 1.3 ms), but let no more than MAX_BURST of idle
            // time (a slow reader) turn into a burst.
            let now = Instant::now();
            let base = if now > throttle.next_at + MAX_BURST {
                now
            } else {
                throttle.next_at
            };
            throttle.next_at = base + pace;
        }
        Poll::Ready(Some(Ok(piece)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-"), 10), Part(0, 9));
        assert_eq!(parse_range(Some("bytes=3-5"), 10), Part(3, 5));
        assert_eq!(parse_range(Some("bytes=3-50"), 10), Part(3, 9));
        assert_eq!(parse_range(Some("bytes=-4"), 10), Part(6, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-3"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
    }

    #[test]
    fn pace_is_the_slower_of_fault_and_cap() {
        assert_eq!(pace(None, None), None);
        assert_eq!(pace(Some(5), None), Some(5));
        assert_eq!(pace(None, Some(7)), Some(7));
        assert_eq!(pace(Some(5), Some(7)), Some(5));
        assert_eq!(pace(Some(9), Some(7)), Some(7));
    }

    #[test]
    fn fault_status_is_an_s3_error() {
        let response = fault_status(503);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/xml");
        assert_eq!(
            fault_status(500).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(fault_status(1).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn signatures() {
        let signer = UrlSigner::new();
        let sha = "ab".repeat(32);
        let url = signer.signed_url("http://x", &sha, 300);
        let query = url.split_once('?').unwrap().1;
        assert_eq!(signer.refusal(&sha, query), None);
        assert!(signer.refusal(&"cd".repeat(32), query).is_some());
        assert!(signer.refusal(&sha, "expires=1&sig=00").is_some());
        let expired = signer.signed_url("http://x", &sha, 0);
        assert!(
            signer
                .refusal(&sha, expired.split_once('?').unwrap().1)
                .is_some()
        );
    }
}
