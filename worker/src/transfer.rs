//! One bottle: stream it from the registry through SHA-256 into the store,
//! and commit only when the digest matches (at its dated key), then put its
//! flat copy under `bottles/`, the object the record names: the transfer
//! succeeds only once both are there. A bottle larger than the segment size comes down in
//! segments over several connections (`segmented`) where the store takes
//! them; otherwise as one stream, resumed with a Range request after a
//! broken connection, hashed on its own thread while the socket is read.
//! A mismatch is never stored and never retried within the run: the
//! registry served the wrong bytes.

use std::time::{Duration, Instant};

use bottlesync_core::brew::publish::put_flat_copy_of;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::{BlobStore, Upload};
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::segments::SegmentPolicy;
use bottlesync_core::{BottleJob, Error, Result, Sha256Digest};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::segmented::{SegmentedEnd, fetch_segmented, joined};

/// No bottle is larger than this; a body that goes on is cut off.
pub const MAX_BOTTLE_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// What a successful transfer did.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub bytes: u64,
    /// Bytes received and thrown away (restarts after a server ignored Range).
    pub wasted_bytes: u64,
    /// Requests made for the bytes (one per attempt of a stream, one per
    /// range of a segmented download).
    pub attempts: u32,
    pub duration: Duration,
    /// Whether the bottle came down in segments.
    pub segmented: bool,
}

/// What a transfer is given besides the bottle.
#[derive(Clone, Copy)]
pub struct TransferSettings<'a> {
    pub retry: &'a RetryPolicy,
    pub segments: &'a SegmentPolicy,
}

/// Fetches `job`, verifies its sha256 and commits it to `store` at `job.key`.
/// `on_bytes` is told about every chunk (discarded bytes are reported in
/// `Transfer::wasted_bytes`). When `cancel` fires, at any point before the
/// commit, the transfer stops, the upload is aborted and the result is
/// `Error::Cancelled`.
pub async fn fetch_verify_store(
    registry: &dyn Registry,
    store: &dyn BlobStore,
    job: &BottleJob,
    settings: TransferSettings<'_>,
    on_bytes: &(dyn Fn(u64) + Sync),
    cancel: &CancellationToken,
) -> Result<Transfer> {
    let started = Instant::now();
    let mut wasted = 0;
    if settings.segments.applies_to(job.size)
        && let Some(parts) = store.begin_parts(&job.key, &job.sha256, job.size).await?
    {
        let end = tokio::select! {
            end = fetch_segmented(registry, parts.as_ref(), job, settings.segments, settings.retry, on_bytes) => end,
            _ = cancel.cancelled() => Err(Error::Cancelled),
        };
        match end {
            Ok(SegmentedEnd::Hashed { digest, requests }) => {
                if digest != job.sha256 {
                    let _ = parts.abort().await;
                    return Err(Error::DigestMismatch {
                        expected: job.sha256.to_string(),
                        actual: digest.to_string(),
                        bytes: job.size,
                    });
                }
                parts.commit().await?;
                put_flat_copy(store, job).await?;
                return Ok(Transfer {
                    bytes: job.size,
                    wasted_bytes: 0,
                    attempts: requests as u32,
                    duration: started.elapsed(),
                    segmented: true,
                });
            }
            Ok(SegmentedEnd::Unsuitable { why, wasted: lost }) => {
                tracing::warn!(bottle = %job.label(), why, wasted_bytes = lost,
                    "cannot download this bottle in segments: fetching it as one stream");
                wasted = lost;
                if let Err(e) = parts.abort().await {
                    tracing::warn!(bottle = %job.label(), error = %e, "could not remove the segmented download's temp object");
                }
            }
            Err(e) => {
                if matches!(e, Error::Cancelled) {
                    tracing::info!(bottle = %job.label(), "cancelled: aborting the segmented upload");
                }
                if let Err(abort) = parts.abort().await {
                    tracing::warn!(bottle = %job.label(), error = %abort, "could not abort the upload (the store's lifecycle rule clears it)");
                }
                return Err(e);
            }
        }
    }
    let mut transfer =
        fetch_as_one_stream(registry, store, job, settings.retry, on_bytes, cancel).await?;
    transfer.wasted_bytes += wasted;
    transfer.duration = started.elapsed();
    Ok(transfer)
}

/// The bottle in order over one connection at a time.
async fn fetch_as_one_stream(
    registry: &dyn Registry,
    store: &dyn BlobStore,
    job: &BottleJob,
    retry: &RetryPolicy,
    on_bytes: &(dyn Fn(u64) + Sync),
    cancel: &CancellationToken,
) -> Result<Transfer> {
    let started = Instant::now();
    let mut upload = store.begin(&job.key, &job.sha256, job.size).await?;
    let mut hasher = InOrderHash::new(job.size);
    let mut delays = retry.delays();
    let mut attempts = 0u32;
    let mut wasted = 0u64;
    loop {
        attempts += 1;
        let before = upload.written();
        // Cancellation reaches the body itself: a 20 GB download stops
        // within a chunk, not at its end.
        let result = tokio::select! {
            result = receive(
                registry,
                job,
                upload.as_mut(),
                &mut hasher,
                &mut wasted,
                on_bytes,
            ) => result,
            _ = cancel.cancelled() => Err(Error::Cancelled),
        };
        match result {
            Err(Error::Cancelled) => {
                tracing::info!(bottle = %job.label(), at_byte = upload.written(), "cancelled: aborting the upload");
                if let Err(e) = upload.abort().await {
                    tracing::warn!(bottle = %job.label(), error = %e, "could not abort the upload (the store's lifecycle rule clears it)");
                }
                return Err(Error::Cancelled);
            }
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                if upload.written() > before {
                    // Progress was made: this is a new failure, not a repeat.
                    delays = retry.delays();
                }
                let Some(delay) = delays.next() else {
                    tracing::warn!(bottle = %job.label(), error = %e, "failed too often: aborting the upload");
                    let _ = upload.abort().await;
                    return Err(e);
                };
                let wait = retry.wait_for(&e, delay);
                tracing::info!(bottle = %job.label(), error = %e, at_byte = upload.written(),
                    wait_ms = wait.as_millis() as u64, "transient failure, resuming");
                tokio::select! {
                    _ = cancel.cancelled() => {
                        let _ = upload.abort().await;
                        return Err(Error::Cancelled);
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                let _ = upload.abort().await;
                return Err(e);
            }
        }
    }
    let actual = match hasher.finish().await {
        Ok(actual) => actual,
        Err(e) => {
            let _ = upload.abort().await;
            return Err(e);
        }
    };
    let bytes = upload.written();
    if actual != job.sha256 {
        let _ = upload.abort().await;
        return Err(Error::DigestMismatch {
            expected: job.sha256.to_string(),
            actual: actual.to_string(),
            bytes,
        });
    }
    upload.commit().await?;
    put_flat_copy(store, job).await?;
    Ok(Transfer {
        bytes,
        wasted_bytes: wasted,
        attempts,
        duration: started.elapsed(),
        segmented: false,
    })
}

/// Bottles from this size on are hashed on their own thread while the
/// socket is read; smaller ones inline (a thread would cost more).
const HASH_THREAD_FROM: u64 = 4 * 1024 * 1024;
/// Chunks queued for the hashing thread. A chunk may keep the larger read
/// buffer it was cut from alive, so the queue stays short.
const HASH_QUEUE: usize = 16;

/// SHA-256 of a stream's bytes, in order: inline, or on the blocking pool
/// fed through a bounded queue (the chunks themselves, not copies).
enum InOrderHash {
    Inline(Sha256),
    Thread {
        chunks: mpsc::Sender<Option<Bytes>>,
        done: tokio::task::JoinHandle<Sha256Digest>,
    },
}

impl InOrderHash {
    fn new(size: u64) -> Self {
        if size < HASH_THREAD_FROM {
            return InOrderHash::Inline(Sha256::new());
        }
        let (chunks, mut queue) = mpsc::channel::<Option<Bytes>>(HASH_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            while let Some(next) = queue.blocking_recv() {
                match next {
                    Some(chunk) => hasher.update(&chunk),
                    // The source starts again from byte 0.
                    None => hasher = Sha256::new(),
                }
            }
            Sha256Digest::from_bytes(&hasher.finalize())
        });
        InOrderHash::Thread { chunks, done }
    }

    async fn update(&mut self, chunk: Bytes) -> Result<()> {
        match self {
            InOrderHash::Inline(hasher) => {
                hasher.update(&chunk);
                Ok(())
            }
            InOrderHash::Thread { chunks, .. } => {
                chunks.send(Some(chunk)).await.map_err(|_| Error::Cancelled)
            }
        }
    }

    async fn reset(&mut self) -> Result<()> {
        match self {
            InOrderHash::Inline(hasher) => {
                *hasher = Sha256::new();
                Ok(())
            }
            InOrderHash::Thread { chunks, .. } => {
                chunks.send(None).await.map_err(|_| Error::Cancelled)
            }
        }
    }

    async fn finish(self) -> Result<Sha256Digest> {
        match self {
            InOrderHash::Inline(hasher) => Ok(Sha256Digest::from_bytes(&hasher.finalize())),
            InOrderHash::Thread { chunks, done } => {
                drop(chunks);
                joined(done).await
            }
        }
    }
}

/// The committed bottle's flat copy under `bottles/`: the name brew
/// requests and the object `bottles_hash.json` names, so it must exist
/// before the bottle is recorded. A copy that fails (after the store's own
/// retries) fails the transfer: the bottle is not recorded, and the retry
/// (the next receive, or the next `sync`) downloads it again. The dated
/// object it leaves is archive, expired with the others.
async fn put_flat_copy(store: &dyn BlobStore, job: &BottleJob) -> Result<()> {
    put_flat_copy_of(store, &job.key).await.map_err(|e| {
        tracing::warn!(key = %job.key, flat = %job.flat_key(), error = %e,
            "committed, but its flat copy under bottles/ failed: not recorded, to be retried");
        e
    })
}

/// One attempt: from `upload.written()` to the end of the body.
async fn receive(
    registry: &dyn Registry,
    job: &BottleJob,
    upload: &mut dyn Upload,
    hasher: &mut InOrderHash,
    wasted: &mut u64,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let mut body = registry.open_blob(&job.url, upload.written()).await?;
    if body.offset != upload.written() {
        // The server sent the whole bottle again: start over.
        tracing::info!(bottle = %job.label(), at_byte = upload.written(),
            "the server ignored the Range request: starting the bottle again from byte 0");
        *wasted += upload.written();
        upload.restart().await?;
        hasher.reset().await?;
    }
    while let Some(chunk) = body.chunk().await? {
        if upload.written() + chunk.len() as u64 > MAX_BOTTLE_BYTES {
            return Err(Error::permanent_fetch(
                body.url.as_str(),
                format!("body exceeds {MAX_BOTTLE_BYTES} bytes"),
            ));
        }
        let len = chunk.len() as u64;
        hasher.update(chunk.clone()).await?;
        upload.write(chunk).await?;
        on_bytes(len);
    }
    if let Some(total) = body.total
        && upload.written() < total
    {
        return Err(Error::transient_fetch(
            body.url.as_str(),
            format!("body ended at byte {} of {total}", upload.written()),
        ));
    }
    Ok(())
}
