//! A 500 MB index (`formula.jws.json`) is refused at the 256 MiB cap with bounded
//! memory, whether the server announces its size or streams without one.
//! The body is zeros generated on the fly: nothing holds 500 MB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bottlesync_adapters::http::registry::RegistryClient;
use bottlesync_core::model::index::HostPolicy;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_planner::index_source::{MAX_INDEX_BYTES, fetch_index};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

const BODY_BYTES: u64 = 500 * 1000 * 1000;

/// Serves one response of `BODY_BYTES` zeros per connection, with or
/// without a Content-Length; counts the bytes the client took.
async fn serve_zeros(announce_length: bool) -> (Url, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Url::parse(&format!("http://{}/api", listener.local_addr().unwrap())).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = if announce_length {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 1 << 20];
                let mut left = BODY_BYTES;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return; // the client gave up, as it should
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    left -= n as u64;
                }
            });
        }
    });
    (api, sent)
}

async fn fetch(api: &Url) -> String {
    let registry = RegistryClient::new(&Default::default()).unwrap();
    let hosts = HostPolicy::new(api, &[]);
    fetch_index(&registry, &RetryPolicy::default(), api, &hosts)
        .await
        .expect_err("a 500 MB index is refused")
        .to_string()
}

#[tokio::test]
async fn an_announced_500_mb_index_is_refused_before_reading() {
    let (api, sent) = serve_zeros(true).await;
    let error = fetch(&api).await;
    assert!(
        error.starts_with(&format!("formula index {api}/formula.jws.json: "))
            && error.contains(&format!(
                "response is {BODY_BYTES} bytes, more than the {MAX_INDEX_BYTES} allowed"
            )),
        "{error}"
    );
    // Refused on the header: at most what sat in socket buffers was sent.
    assert!(
        sent.load(Ordering::Relaxed) < 64 << 20,
        "{sent:?} bytes sent"
    );
}

#[tokio::test]
async fn an_unannounced_500_mb_index_is_cut_at_the_cap() {
    let (api, sent) = serve_zeros(false).await;
    let error = fetch(&api).await;
    assert!(
        error.starts_with(&format!("formula index {api}/formula.jws.json: "))
            && error.contains(&format!(
                "response is more than the {MAX_INDEX_BYTES} bytes allowed"
            )),
        "{error}"
    );
    // Read up to the cap and no further (plus what was in flight).
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        (MAX_INDEX_BYTES..MAX_INDEX_BYTES + (64 << 20)).contains(&sent),
        "{sent} bytes sent"
    );
}
