//! The connections of `bottlesync serve`, on hyper directly (axum's own
//! `serve` has no timeouts and no cap): the accept loop, TLS, and a
//! watchdog per connection that closes it when a client holds it without
//! using it:
//! - a request header (the first one from accept, TLS handshake included,
//!   or a later one from its first byte) must be complete within
//!   `header_timeout`;
//! - between requests, a connection is kept `idle_timeout` after the last
//!   byte of the last response was written;
//! - while a response is open, some byte must move every `idle_timeout`,
//!   and when `min_send_rate` is set, each `idle_timeout` window must send
//!   at least that many bytes a second;
//! - at most `max_connections` at once: the accept loop refuses (closes)
//!   the ones over it, with a warning at most every few seconds.
//!
//! A plain connection speaks HTTP/1.1 (and its response bodies of a
//! directory's files go out with `sendfile`: [`ConnectionIo`]); a TLS
//! connection HTTP/2 or HTTP/1.1, as ALPN chose.

use std::convert::Infallible;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use super::sendfile::{self, FileSends};
use super::tls::ReloadingCert;
use bottlesync_core::shutdown::Shutdown;

/// How long connections may be held, and how many.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Bytes a second a client must take while a response is open; 0: any.
    pub min_send_rate: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            min_send_rate: 1024,
        }
    }
}

/// A warning that may come thousands of times a second (a flood of
/// connections): logged at once the first time, then at most every
/// [`Self::EVERY`] with how many happened since.
pub(crate) struct RateLimitedWarning {
    message: &'static str,
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl RateLimitedWarning {
    const EVERY: Duration = Duration::from_secs(5);

    pub(crate) const fn new(message: &'static str) -> Self {
        RateLimitedWarning {
            message,
            count: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// One more; `detail` says which limit (logged with the line).
    pub(crate) fn note(&self, detail: &dyn std::fmt::Display) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < Self::EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let count = self.count.swap(0, Ordering::Relaxed);
        tracing::warn!(count, "{}: {detail}", self.message);
    }
}

static REFUSED: RateLimitedWarning = RateLimitedWarning::new("refusing connections");
static TIMED_OUT: RateLimitedWarning = RateLimitedWarning::new("closing connections");
static ACCEPT_FAILED: RateLimitedWarning = RateLimitedWarning::new("accepting a connection failed");
static HANDSHAKE_FAILED: RateLimitedWarning =
    RateLimitedWarning::new("TLS handshakes failed (the connections are closed)");

/// Accepts on `listener` until `shutdown` stops it, then lets every
/// connection finish its response in flight (closing idle ones at once);
/// on `cancel`, returns at once. `false`: cancelled.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ReloadingCert>>,
    limits: ConnectionLimits,
    shutdown: Shutdown,
) -> bool {
    let acceptor = tls.map(|cert| TlsAcceptor::from(cert.server_config()));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut stop = shutdown.clone();
    let mut cancel = shutdown.clone();
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: retrying at once would spin.
                    ACCEPT_FAILED.note(&format_args!("{e}; retrying in 50 ms"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.recv() => break,
            _ = cancel.cancelled() => return false,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            REFUSED.note(&format_args!(
                "{} open (--max-connections)",
                limits.max_connections
            ));
            drop(tcp);
            continue;
        };
        // Headers and body go out in separate writes: without TCP_NODELAY
        // Nagle holds the second until the client's delayed ACK (~40 ms a
        // small response; `loadtest/bench/serve.sh`, part b).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        let connection = Connection {
            router: router.clone(),
            limits,
            activity: Arc::new(Activity::new()),
            stop: shutdown.clone(),
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            connection.run(tcp, acceptor).await;
            drop(slot);
        });
    }
    tracing::info!("stopping: no new connections, finishing the responses in flight");
    drop(listener);
    // Every connection holds a slot until it ends: all slots back, all done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => true,
        _ = cancel.cancelled() => false,
    }
}

struct Connection {
    router: Router,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    stop: Shutdown,
}

impl Connection {
    async fn run(self, tcp: TcpStream, acceptor: Option<TlsAcceptor>) {
        let Some(acceptor) = acceptor else {
            let sends = sendfile::SUPPORTED.then(FileSends::default);
            let io = ConnectionIo::new(tcp, self.activity.clone(), sends.clone());
            let service = counted_service(self.router.clone(), self.activity.clone(), sends);
            let conn = http1::Builder::new()
                // Body chunks stay separate buffers (never copied into one):
                // `ConnectionIo` recognises the chunks it sends from a file.
                .writev(true)
                .serve_connection(TokioIo::new(io), service);
            return self.drive(conn, |c| c.graceful_shutdown()).await;
        };
        let io = ConnectionIo::new(tcp, self.activity.clone(), None);
        let mut stop = self.stop.clone();
        let handshake = tokio::select! {
            done = acceptor.accept(io) => done,
            _ = self.watchdog() => return,
            _ = stop.recv() => return,
        };
        let tls = match handshake {
            Ok(tls) => tls,
            Err(e) => {
                // A client that does not trust the certificate, or no TLS
                // at all: worth seeing, not once per connection.
                HANDSHAKE_FAILED.note(&e);
                return;
            }
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let service = counted_service(self.router.clone(), self.activity.clone(), None);
        if h2 {
            self.activity.http2.store(true, Ordering::Release);
            let conn = http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service);
            self.drive(conn, |c| c.graceful_shutdown()).await
        } else {
            let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), service);
            self.drive(conn, |c| c.graceful_shutdown()).await
        }
    }

    /// Runs `conn` until it ends, the watchdog closes it (dropped: the
    /// socket closes), or the stop asks it to finish what it has.
    async fn drive<C>(&self, conn: C, graceful_shutdown: fn(Pin<&mut C>))
    where
        C: Future<Output = hyper::Result<()>>,
    {
        let mut conn = std::pin::pin!(conn);
        let mut stop = self.stop.clone();
        let mut stopping = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.watchdog() => return,
                _ = stop.recv(), if !stopping => {
                    stopping = true;
                    graceful_shutdown(conn.as_mut());
                }
            }
        }
    }

    /// Returns when the connection is to be closed (and says why, rate
    /// limited).
    async fn watchdog(&self) {
        loop {
            match self.activity.verdict(&self.limits) {
                Verdict::KeepUntil(deadline) => tokio::time::sleep_until(deadline.into()).await,
                Verdict::Close(why) => {
                    TIMED_OUT.note(&why);
                    return;
                }
            }
        }
    }
}

/// Each request through the router, counted open until its response body
/// is done or dropped; `sends` goes with it (plain HTTP/1.1).
fn counted_service(
    router: Router,
    activity: Arc<Activity>,
    sends: Option<FileSends>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future: Send + 'static,
> {
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let open = OpenRequest::new(activity.clone());
        let mut request = request.map(Body::new);
        if let Some(sends) = &sends {
            request.extensions_mut().insert(sends.clone());
        }
        let mut router = router.clone();
        async move {
            let response = router.call(request).await?;
            Ok(response.map(|body| Body::new(CountedBody { body, _open: open })))
        }
    })
}

/// What a connection has been doing, as the watchdog reads it. Times are
/// milliseconds since `started`.
struct Activity {
    started: Instant,
    /// HTTP/2: bytes read between requests are pings and settings, not
    /// the start of a header; only the idle timeout applies then.
    http2: AtomicBool,
    open_requests: AtomicUsize,
    /// When the connection last went idle (no request open), or accept.
    idle_since: AtomicU64,
    /// The first byte of a request header not yet complete ([`NONE`]: none
    /// is being read). A new connection is reading its first from accept.
    header_began: AtomicU64,
    last_write: AtomicU64,
    sent: AtomicU64,
    /// The current window of the minimum rate: its start and `sent` then.
    window_began: AtomicU64,
    window_sent: AtomicU64,
}

const NONE: u64 = u64::MAX;

enum Verdict {
    KeepUntil(Instant),
    Close(String),
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            http2: AtomicBool::new(false),
            open_requests: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            header_began: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            window_began: AtomicU64::new(0),
            window_sent: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    fn read(&self, bytes: usize) {
        if bytes > 0
            && !self.http2.load(Ordering::Acquire)
            && self.open_requests.load(Ordering::Acquire) == 0
            && self.header_began.load(Ordering::Acquire) == NONE
        {
            self.header_began.store(self.now(), Ordering::Release);
        }
    }

    fn wrote(&self, bytes: usize) {
        if bytes > 0 {
            self.last_write.store(self.now(), Ordering::Release);
            self.sent.fetch_add(bytes as u64, Ordering::AcqRel);
        }
    }

    fn request_opened(&self) {
        self.header_began.store(NONE, Ordering::Release);
        if self.open_requests.fetch_add(1, Ordering::AcqRel) == 0 {
            self.window_began.store(self.now(), Ordering::Release);
            self.window_sent
                .store(self.sent.load(Ordering::Acquire), Ordering::Release);
        }
    }

    fn request_closed(&self) {
        if self.open_requests.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now(), Ordering::Release);
        }
    }

    /// Whether the connection is still used as the limits ask, and until
    /// when that holds at least.
    fn verdict(&self, limits: &ConnectionLimits) -> Verdict {
        let now = self.now();
        let (header, idle) = (
            limits.header_timeout.as_millis() as u64,
            limits.idle_timeout.as_millis() as u64,
        );
        let last_write = self.last_write.load(Ordering::Acquire);
        if self.open_requests.load(Ordering::Acquire) == 0 {
            let began = self.header_began.load(Ordering::Acquire);
            if began != NONE && now >= began + header {
                return Verdict::Close(format!(
                    "no complete request header within {:?} (--header-timeout)",
                    limits.header_timeout
                ));
            }
            // Idle from the end of the last response, which may still
            // have been flushing to the socket then.
            let idle_since = self.idle_since.load(Ordering::Acquire).max(last_write);
            let idle_ends = idle_since + idle;
            if began == NONE && now >= idle_ends {
                return Verdict::Close(format!(
                    "idle for {:?} between requests (--idle-timeout)",
                    limits.idle_timeout
                ));
            }
            let until = if began == NONE {
                idle_ends
            } else {
                began + header
            };
            return Verdict::KeepUntil(self.at(until));
        }
        let stalled_at = last_write.max(self.window_began.load(Ordering::Acquire)) + idle;
        if now >= stalled_at {
            return Verdict::Close(format!(
                "nothing sent for {:?} with a response open (--idle-timeout)",
                limits.idle_timeout
            ));
        }
        let mut until = stalled_at;
        if limits.min_send_rate > 0 {
            let window_began = self.window_began.load(Ordering::Acquire);
            let window_ends = window_began + idle;
            if now >= window_ends {
                let sent = self.sent.load(Ordering::Acquire);
                let in_window = sent - self.window_sent.load(Ordering::Acquire);
                let needed = limits.min_send_rate * (now - window_began) / 1000;
                if in_window < needed {
                    return Verdict::Close(format!(
                        "{in_window} bytes sent in {} ms, under {} bytes/s (--min-send-rate)",
                        now - window_began,
                        limits.min_send_rate
                    ));
                }
                self.window_began.store(now, Ordering::Release);
                self.window_sent.store(sent, Ordering::Release);
                until = until.min(now + idle);
            } else {
                until = until.min(window_ends);
            }
        }
        Verdict::KeepUntil(self.at(until))
    }
}

/// A request counted open from its header until its response body is done.
struct OpenRequest(Arc<Activity>);

impl OpenRequest {
    fn new(activity: Arc<Activity>) -> Self {
        activity.request_opened();
        OpenRequest(activity)
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.request_closed();
    }
}

/// A response body that keeps its request counted open.
struct CountedBody {
    body: Body,
    _open: OpenRequest,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket of one connection: counts what moves for the watchdog, and
/// on a plain connection sends the body chunks that stand for a file's
/// bytes ([`FileSends`]) with `sendfile`.
pub(crate) struct ConnectionIo {
    tcp: TcpStream,
    activity: Arc<Activity>,
    sends: Option<FileSends>,
}

impl ConnectionIo {
    fn new(tcp: TcpStream, activity: Arc<Activity>, sends: Option<FileSends>) -> Self {
        ConnectionIo {
            tcp,
            activity,
            sends,
        }
    }

    /// Writes `slices` up to the first that stands for a file, or sends
    /// (part of) that file chunk when it comes first.
    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = match &self.sends {
            Some(sends) => match slices.iter().position(|s| sends.stands_for_file(s)) {
                Some(0) => ready!(sends.poll_send(&self.tcp, cx, slices[0].len())),
                Some(memory) => {
                    ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &slices[..memory]))
                }
                None => ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, slices)),
            },
            None => ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, slices)),
        };
        if let Ok(n) = &written {
            self.activity.wrote(*n);
        }
        Poll::Ready(written)
    }
}

impl AsyncRead for ConnectionIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.tcp).poll_read(cx, buf))?;
        self.activity.read(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ConnectionIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, slices)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Raises this process's open-file limit to its hard limit (each
/// connection is a descriptor, a file being sent another), and warns when
/// even that is below `max_connections`.
pub(crate) fn raise_open_file_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot read the open-file limit; keeping it"
            );
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            } else {
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    "cannot raise the open-file limit to its maximum; keeping it"
                );
            }
        }
    }
    // One descriptor a connection (one more while it sends a file), and
    // some to spare.
    let needed = max_connections as u64 + 64;
    if limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            "the open-file limit is below what --max-connections needs: accepting will fail before the cap (raise `ulimit -n`)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(min_send_rate: u64) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(200),
            max_connections: 1,
            min_send_rate,
        }
    }

    fn closed_because(activity: &Activity, limits: &ConnectionLimits) -> Option<String> {
        match activity.verdict(limits) {
            Verdict::Close(why) => Some(why),
            Verdict::KeepUntil(_) => None,
        }
    }

    #[test]
    fn a_header_must_come_within_its_timeout_and_idle_ends_after_its_own() {
        let limits = limits(0);
        let fresh = Activity::new();
        assert_eq!(closed_because(&fresh, &limits), None);
        std::thread::sleep(Duration::from_millis(60));
        let why = closed_because(&fresh, &limits).unwrap();
        assert!(why.contains("--header-timeout"), "{why}");

        // Answered, then idle: the header timeout no longer applies...
        let kept = Activity::new();
        kept.request_opened();
        kept.wrote(100);
        kept.request_closed();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(closed_because(&kept, &limits), None);
        // ...until a next header begins and stalls.
        kept.read(10);
        std::thread::sleep(Duration::from_millis(60));
        let why = closed_because(&kept, &limits).unwrap();
        assert!(why.contains("--header-timeout"), "{why}");
    }

    #[test]
    fn between_http2_requests_reads_do_not_start_a_header() {
        let limits = limits(0);
        let h2 = Activity::new();
        h2.http2.store(true, Ordering::Release);
        h2.request_opened();
        h2.request_closed();
        h2.read(17); // a PING
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(closed_because(&h2, &limits), None);
        std::thread::sleep(Duration::from_millis(200));
        let why = closed_because(&h2, &limits).unwrap();
        assert!(why.contains("--idle-timeout"), "{why}");
    }

    #[test]
    fn a_response_taken_under_the_minimum_rate_is_closed_and_one_above_it_kept() {
        let (slow, fast) = (Activity::new(), Activity::new());
        slow.request_opened();
        fast.request_opened();
        for _ in 0..25 {
            std::thread::sleep(Duration::from_millis(10));
            slow.wrote(10);
            fast.wrote(100_000);
        }
        // 250 bytes in 250 ms or more, 2.5 MB in the same time.
        let why = closed_because(&slow, &limits(100_000)).unwrap();
        assert!(why.contains("--min-send-rate"), "{why}");
        assert_eq!(closed_because(&fast, &limits(100_000)), None);
        assert_eq!(closed_because(&slow, &limits(0)), None);
    }
}
