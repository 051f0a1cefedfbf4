//! A large bottle as byte ranges over several connections at once
//! (`SegmentPolicy`): each connection takes the next segment, writes its
//! bytes at their place (`PartsUpload::write_at`), and a failed range is
//! resumed alone from where it stopped. The digest is computed in order
//! from byte 0 as far as bytes are written, by reading them back (the head
//! segment is hashed while it downloads); the caller commits only when it
//! matched.
//!
//! Memory: each connection holds at most one write batch
//! ([`WRITE_BATCH`] bytes) and the hashing one [`HASH_PIECE`]; a store that
//! keeps segments in memory until they are read back (S3) is bounded by
//! the window: at most `2 x connections` segments are started ahead of the
//! hashing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use url::Url;

use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::PartsUpload;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::segments::{Segment, SegmentBook, SegmentPolicy};
use bottlesync_core::{BottleJob, Error, Result, Sha256Digest};

/// Bytes a connection gathers before one `write_at`.
pub const WRITE_BATCH: usize = 1024 * 1024;
/// Bytes read back (and hashed) at once: at most this many, and at least
/// [`MIN_HASH_PIECE`] unless a segment or the bottle ends there.
pub const HASH_PIECE: usize = 4 * 1024 * 1024;
pub const MIN_HASH_PIECE: usize = 1024 * 1024;

/// How a segmented download ended (short of an error).
pub enum SegmentedEnd {
    /// Every byte written and hashed: the digest of the whole bottle.
    Hashed { digest: Sha256Digest, requests: u64 },
    /// The server does not serve ranges of this bottle (or its size is not
    /// the planned one): fetch it as one stream instead. `wasted` bytes
    /// were received for nothing.
    Unsuitable { why: String, wasted: u64 },
}

/// What the connections and the hashing share.
struct Shared<'a> {
    registry: &'a dyn Registry,
    upload: &'a dyn PartsUpload,
    job: &'a BottleJob,
    retry: &'a RetryPolicy,
    on_bytes: &'a (dyn Fn(u64) + Sync),
    segments: Vec<Segment>,
    window: usize,
    book: Mutex<SegmentBook>,
    /// Bumped whenever a segment completes or is hashed.
    progress: watch::Sender<u64>,
    next: AtomicUsize,
    /// The signed storage URL the last answer came from, reused for the
    /// next ranges while the storage accepts it.
    storage: Mutex<Option<Url>>,
    received: AtomicU64,
    requests: AtomicU64,
}

/// Why a segment stopped short of an error the caller should see.
enum SegmentStop {
    Failed(Error),
    /// The answer started at byte 0 instead of the asked offset, or the
    /// server's size is not the planned one.
    Unsuitable(String),
}

impl From<Error> for SegmentStop {
    fn from(e: Error) -> Self {
        SegmentStop::Failed(e)
    }
}

/// Downloads `job` in segments into `upload` and hashes it in order.
pub async fn fetch_segmented(
    registry: &dyn Registry,
    upload: &dyn PartsUpload,
    job: &BottleJob,
    policy: &SegmentPolicy,
    retry: &RetryPolicy,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<SegmentedEnd> {
    let segments = policy.segments(job.size, upload.max_segment());
    let connections = policy.connections.min(segments.len()).max(1);
    tracing::info!(bottle = %job.label(), bytes = job.size, segments = segments.len(), connections,
        "downloading in segments");
    let shared = Shared {
        registry,
        upload,
        job,
        retry,
        on_bytes,
        book: Mutex::new(SegmentBook::new(segments.clone())),
        window: 2 * connections,
        segments,
        progress: watch::channel(0).0,
        next: AtomicUsize::new(0),
        storage: Mutex::new(None),
        received: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    };
    let downloads = futures::future::try_join_all((0..connections).map(|_| shared.connection()));
    let result = tokio::try_join!(async { downloads.await.map(|_| ()) }, async {
        shared.hash_in_order().await.map_err(SegmentStop::Failed)
    });
    let requests = shared.requests.load(Ordering::Relaxed);
    match result {
        Ok(((), digest)) => Ok(SegmentedEnd::Hashed { digest, requests }),
        Err(SegmentStop::Failed(e)) => Err(e),
        Err(SegmentStop::Unsuitable(why)) => Ok(SegmentedEnd::Unsuitable {
            why,
            wasted: shared.received.load(Ordering::Relaxed),
        }),
    }
}

impl Shared<'_> {
    /// One connection: takes the next segment within the window until none
    /// is left.
    async fn connection(&self) -> std::result::Result<(), SegmentStop> {
        loop {
            let mut changed = self.progress.subscribe();
            let index = self.next.load(Ordering::SeqCst);
            if index >= self.segments.len() {
                return Ok(());
            }
            let may_start = self
                .book
                .lock()
                .expect("segment book")
                .may_start(index, self.window);
            if !may_start {
                // Wait for the hashing to move the window on.
                let _ = changed.changed().await;
                continue;
            }
            if self
                .next
                .compare_exchange(index, index + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            self.fetch_segment(self.segments[index]).await?;
        }
    }

    /// One segment, resumed from where it stopped after a transient
    /// failure, each resume logged.
    async fn fetch_segment(&self, segment: Segment) -> std::result::Result<(), SegmentStop> {
        let mut got = 0u64;
        let mut delays = self.retry.delays();
        loop {
            let before = got;
            let error = match self.receive(segment, &mut got).await {
                Ok(()) => return Ok(()),
                Err(SegmentStop::Failed(e)) if e.is_transient() => e,
                Err(stop) => return Err(stop),
            };
            if got > before {
                delays = self.retry.delays();
            }
            let Some(delay) = delays.next() else {
                tracing::warn!(bottle = %self.job.label(), segment = segment.index, error = %error,
                    "segment failed too often: the bottle fails");
                return Err(SegmentStop::Failed(error));
            };
            let wait = self.retry.wait_for(&error, delay);
            tracing::info!(bottle = %self.job.label(), segment = segment.index,
                at_byte = segment.first + got, error = %error, wait_ms = wait.as_millis() as u64,
                "segment interrupted: resuming its range alone");
            tokio::time::sleep(wait).await;
        }
    }

    /// One request for the rest of `segment` (from `*got`), written as it
    /// arrives.
    async fn receive(
        &self,
        segment: Segment,
        got: &mut u64,
    ) -> std::result::Result<(), SegmentStop> {
        let first = segment.first + *got;
        let storage = self.storage.lock().expect("storage url").clone();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut body = self
            .registry
            .open_blob_part(&self.job.url, storage.as_ref(), first, segment.last)
            .await?;
        if body.offset != first {
            return Err(SegmentStop::Unsuitable(format!(
                "asked for bytes from {first}, the server sent the bottle from byte {}",
                body.offset
            )));
        }
        if let Some(total) = body.total
            && total != self.job.size
        {
            return Err(SegmentStop::Unsuitable(format!(
                "the server says the bottle has {total} bytes, the plan says {}",
                self.job.size
            )));
        }
        if body.url != self.job.url {
            *self.storage.lock().expect("storage url") = Some(body.url.clone());
        }
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        let mut left = segment.len() - *got;
        let outcome = loop {
            if left == 0 {
                break Ok(());
            }
            let chunk = match body.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    break Err(Error::transient_fetch(
                        body.url.as_str(),
                        format!(
                            "range ended {left} bytes short of byte {} (segment {})",
                            segment.last, segment.index
                        ),
                    ));
                }
                Err(e) => break Err(e),
            };
            let take = (chunk.len() as u64).min(left) as usize;
            let chunk: Bytes = chunk.slice(..take);
            self.received.fetch_add(take as u64, Ordering::Relaxed);
            left -= take as u64;
            batch_bytes += take;
            batch.push(chunk);
            if batch_bytes >= WRITE_BATCH {
                self.write(segment, got, &mut batch, &mut batch_bytes)
                    .await?;
            }
        };
        // What arrived before a failure is kept: the resume starts after it.
        self.write(segment, got, &mut batch, &mut batch_bytes)
            .await?;
        outcome.map_err(SegmentStop::Failed)
    }

    async fn write(
        &self,
        segment: Segment,
        got: &mut u64,
        batch: &mut Vec<Bytes>,
        batch_bytes: &mut usize,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(batch);
        let bytes = *batch_bytes as u64;
        self.upload.write_at(segment.first + *got, chunks).await?;
        *got += bytes;
        *batch_bytes = 0;
        (self.on_bytes)(bytes);
        self.book
            .lock()
            .expect("segment book")
            .record_written(segment.index, bytes);
        self.progress.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Reads the written bytes back in order, from byte 0, as far as they
    /// are written, and hashes them off the runtime's threads.
    async fn hash_in_order(&self) -> Result<Sha256Digest> {
        let mut hasher = Sha256::new();
        loop {
            let mut changed = self.progress.subscribe();
            let next = self
                .book
                .lock()
                .expect("segment book")
                .next_to_hash(MIN_HASH_PIECE as u64, HASH_PIECE as u64);
            let Some((offset, len)) = next else {
                if self.book.lock().expect("segment book").all_hashed() {
                    return Ok(Sha256Digest::from_bytes(&hasher.finalize()));
                }
                if changed.changed().await.is_err() {
                    return Err(Error::Cancelled);
                }
                continue;
            };
            let bytes = self.upload.read_back(offset, len as usize).await?;
            hasher = off_the_runtime(move || {
                hasher.update(&bytes);
                hasher
            })
            .await?;
            self.book.lock().expect("segment book").mark_hashed(len);
            // The window may have moved on.
            self.progress.send_modify(|n| *n += 1);
        }
    }
}

/// Runs CPU work (hashing) on the blocking pool. A panic there is passed
/// on; a task the runtime dropped (shutting down) is `Cancelled`.
pub(crate) async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    joined(tokio::task::spawn_blocking(work)).await
}

/// A blocking task's result; its panic is passed on.
pub(crate) async fn joined<T>(task: tokio::task::JoinHandle<T>) -> Result<T> {
    match task.await {
        Ok(value) => Ok(value),
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::Cancelled),
        },
    }
}
