//! One bottle: stream it from the registry through SHA-256 into the store,
//! resuming with a Range request after a broken connection, and commit only
//! when the digest matches, then put its flat copy under `bottles/`. A
//! mismatch is never stored and never retried within the run: the
//! registry served the wrong bytes.

use std::time::{Duration, Instant};

use bottlesync_core::brew::publish::put_flat_copy_of;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::{BlobStore, Upload};
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::{BottleJob, Error, Result, Sha256Digest};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// No bottle is larger than this; a body that goes on is cut off.
pub const MAX_BOTTLE_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// What a successful transfer did.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub bytes: u64,
    /// Bytes received and thrown away (restarts after a server ignored Range).
    pub wasted_bytes: u64,
    pub attempts: u32,
    pub duration: Duration,
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
    retry: &RetryPolicy,
    on_bytes: &(dyn Fn(u64) + Sync),
    cancel: &CancellationToken,
) -> Result<Transfer> {
    let started = Instant::now();
    let mut upload = store.begin(&job.key, &job.sha256, job.size).await?;
    let mut hasher = Sha256::new();
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
    let actual = Sha256Digest::from_bytes(&hasher.finalize());
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
    put_flat_copy(store, job).await;
    Ok(Transfer {
        bytes,
        wasted_bytes: wasted,
        attempts,
        duration: started.elapsed(),
    })
}

/// The committed bottle's flat copy under `bottles/`, the name brew
/// requests. Not making it fails nothing: the bottle is stored and
/// recorded, and the publication before the API files makes every missing
/// flat copy (and names any it could not).
async fn put_flat_copy(store: &dyn BlobStore, job: &BottleJob) {
    if let Err(e) = put_flat_copy_of(store, &job.key).await {
        tracing::warn!(key = %job.key, error = %e, "stored, but the flat copy under bottles/ failed: the publication makes it before the API files are written");
    }
}

/// One attempt: from `upload.written()` to the end of the body.
async fn receive(
    registry: &dyn Registry,
    job: &BottleJob,
    upload: &mut dyn Upload,
    hasher: &mut Sha256,
    wasted: &mut u64,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let mut body = registry.open_blob(&job.url, upload.written()).await?;
    if body.offset != upload.written() {
        // The server sent the whole bottle again: start over.
        *wasted += upload.written();
        upload.restart().await?;
        *hasher = Sha256::new();
    }
    while let Some(chunk) = body.chunk().await? {
        if upload.written() + chunk.len() as u64 > MAX_BOTTLE_BYTES {
            return Err(Error::permanent_fetch(
                body.url.as_str(),
                format!("body exceeds {MAX_BOTTLE_BYTES} bytes"),
            ));
        }
        hasher.update(&chunk);
        upload.write(&chunk).await?;
        on_bytes(chunk.len() as u64);
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
