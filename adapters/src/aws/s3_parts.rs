//! A segmented download into S3: each multipart part is filled by the
//! segments that cover it (in any order), sent with `UploadPart` as soon as
//! it is complete (several parts in flight at once), and kept in memory
//! only until the in-order verification has read it back. That read is also
//! where the whole object's CRC64NVME (`FULL_OBJECT`) is computed, so S3
//! checks what it assembled exactly as for an upload in order.
//!
//! Memory: the parts started and not yet read back, and those being sent.
//! The segmented download starts at most `2 x connections` segments of at
//! most one part ahead of the verification, and at most
//! [`PARTS_SENT_AT_ONCE`] parts are sent at once (a connection that
//! completes a part waits for a free one), so with 8 MiB parts and 4
//! connections a bottle holds at most (8 + 4) x 8 MiB = 96 MiB, whatever
//! its size.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType};
use bytes::{Bytes, BytesMut};
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::ports::store::PartsUpload;

use super::s3_multipart::{AbortOnDrop, MultipartTarget, PartRequest, crc64_header};

/// Where a segmented upload goes.
pub(crate) struct PartsTarget {
    pub client: Client,
    /// `s3://bucket/prefix`, for messages.
    pub location: String,
    pub bucket: String,
    /// The full key.
    pub key: String,
    pub content_type: &'static str,
    /// The object's tags (`x-amz-tagging`), given when it is created.
    pub tagging: Option<String>,
}

pub(crate) struct S3Parts {
    client: Client,
    location: String,
    bucket: String,
    key: String,
    size: u64,
    part_size: u64,
    state: Mutex<PartsState>,
    /// Aborts the multipart upload if this is dropped before commit/abort.
    guard: Mutex<AbortOnDrop>,
    upload_id: String,
    /// Parts being sent: a slow bucket holds up the connection that
    /// completed a part instead of letting finished parts pile up.
    sending_permits: Arc<Semaphore>,
}

/// Parts of one segmented upload sent at once.
const PARTS_SENT_AT_ONCE: usize = 4;

#[derive(Default)]
struct PartsState {
    /// Parts being filled: their bytes so far and how many are written.
    filling: HashMap<u64, (BytesMut, u64)>,
    /// Complete parts not yet read back.
    complete: BTreeMap<u64, Bytes>,
    sending: Vec<JoinHandle<Result<aws_sdk_s3::types::CompletedPart>>>,
    /// CRC64NVME of the bytes read back so far (in order).
    object_crc: Option<CrcDigest>,
}

impl S3Parts {
    /// Starts the multipart upload of `target`, `size` bytes in parts of
    /// `part_size`.
    pub(crate) async fn begin(
        target: PartsTarget,
        sha256: &str,
        size: u64,
        part_size: u64,
    ) -> Result<Self> {
        let PartsTarget {
            client,
            location,
            bucket,
            key,
            content_type,
            tagging,
        } = target;
        let created = client
            .create_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .content_type(content_type)
            .set_tagging(tagging)
            .metadata("sha256", sha256)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await
            .map_err(|e| {
                Error::store(
                    &location,
                    format!(
                        "cannot start multipart upload of {key}: {}",
                        DisplayErrorContext(e)
                    ),
                )
            })?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| Error::store(&location, "CreateMultipartUpload returned no upload id"))?
            .to_string();
        Ok(S3Parts {
            guard: Mutex::new(AbortOnDrop {
                client: client.clone(),
                bucket: bucket.clone(),
                key: key.clone(),
                upload_id: Some(upload_id.clone()),
            }),
            client,
            location,
            bucket,
            key,
            size,
            part_size,
            state: Mutex::new(PartsState {
                object_crc: Some(CrcDigest::new(CrcAlgorithm::Crc64Nvme)),
                ..PartsState::default()
            }),
            upload_id,
            sending_permits: Arc::new(Semaphore::new(PARTS_SENT_AT_ONCE)),
        })
    }

    fn part_len(&self, part: u64) -> u64 {
        (self.size - part * self.part_size).min(self.part_size)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PartsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a complete part in the background, once fewer than
    /// [`PARTS_SENT_AT_ONCE`] are being sent.
    async fn send(
        &self,
        part: u64,
        body: Bytes,
    ) -> Result<JoinHandle<Result<aws_sdk_s3::types::CompletedPart>>> {
        let permit = self
            .sending_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled)?;
        let mut crc = CrcDigest::new(CrcAlgorithm::Crc64Nvme);
        crc.update(&body);
        let request = PartRequest {
            client: self.client.clone(),
            location: self.location.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            upload_id: self.upload_id.clone(),
            part_number: part as i32 + 1,
            body,
            checksum: crc64_header(&crc),
        };
        Ok(tokio::spawn(async move {
            let sent = request.send_with_retries().await;
            drop(permit);
            sent
        }))
    }

    async fn abort_upload(&self) -> Result<()> {
        let tasks = std::mem::take(&mut self.state().sending);
        for task in tasks {
            task.abort();
        }
        let id = self
            .guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upload_id
            .take();
        if let Some(id) = id {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await
                .map_err(|e| {
                    Error::store(
                        &self.location,
                        format!(
                            "cannot abort multipart upload of {}: {}",
                            self.key,
                            DisplayErrorContext(e)
                        ),
                    )
                })?;
        }
        Ok(())
    }
}

#[async_trait]
impl PartsUpload for S3Parts {
    fn max_segment(&self) -> Option<u64> {
        Some(self.part_size)
    }

    async fn write_at(&self, mut offset: u64, chunks: Vec<Bytes>) -> Result<()> {
        for chunk in chunks {
            let mut rest: &[u8] = &chunk;
            while !rest.is_empty() {
                let part = offset / self.part_size;
                let at = (offset - part * self.part_size) as usize;
                let len = self.part_len(part);
                let take = rest.len().min(len as usize - at);
                let finished = {
                    let mut state = self.state();
                    let (buffer, filled) = state
                        .filling
                        .entry(part)
                        .or_insert_with(|| (BytesMut::zeroed(len as usize), 0));
                    buffer[at..at + take].copy_from_slice(&rest[..take]);
                    *filled += take as u64;
                    if *filled == len {
                        let (buffer, _) = state.filling.remove(&part).expect("just filled");
                        let body = buffer.freeze();
                        state.complete.insert(part, body.clone());
                        Some(body)
                    } else {
                        None
                    }
                };
                if let Some(body) = finished {
                    let task = self.send(part, body).await?;
                    self.state().sending.push(task);
                }
                rest = &rest[take..];
                offset += take as u64;
            }
        }
        Ok(())
    }

    async fn read_back(&self, offset: u64, len: usize) -> Result<Bytes> {
        let mut pieces = Vec::new();
        let (mut offset, end) = (offset, offset + len as u64);
        let mut state = self.state();
        while offset < end {
            let part = offset / self.part_size;
            let at = (offset - part * self.part_size) as usize;
            let part_len = self.part_len(part) as usize;
            let take = (end - offset).min((part_len - at) as u64) as usize;
            let piece = if let Some(body) = state.complete.get(&part) {
                body.slice(at..at + take)
            } else if let Some((buffer, _)) = state.filling.get(&part) {
                // Segments shorter than a part: its part is still filling.
                Bytes::copy_from_slice(&buffer[at..at + take])
            } else {
                return Err(Error::store(
                    &self.location,
                    format!("{}: bytes {offset}+{take} were never written", self.key),
                ));
            };
            if let Some(crc) = state.object_crc.as_mut() {
                crc.update(&piece);
            }
            if at + take == part_len {
                // Read back whole: only its upload holds it now.
                state.complete.remove(&part);
            }
            pieces.push(piece);
            offset += take as u64;
        }
        Ok(match pieces.len() {
            1 => pieces.pop().expect("one piece"),
            _ => Bytes::from(pieces.concat()),
        })
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let result = async {
            let tasks = std::mem::take(&mut self.state().sending);
            let mut parts = Vec::with_capacity(tasks.len());
            for task in tasks {
                parts.push(task.await.map_err(|e| {
                    Error::store(&self.location, format!("part upload task failed: {e}"))
                })??);
            }
            parts.sort_by_key(|p| p.part_number());
            let expected = self.size.div_ceil(self.part_size) as usize;
            if parts.len() != expected {
                return Err(Error::store(
                    &self.location,
                    format!(
                        "{}: {} of {expected} parts were uploaded",
                        self.key,
                        parts.len()
                    ),
                ));
            }
            let crc = self.state().object_crc.take().expect("committed once");
            let target = MultipartTarget {
                client: &self.client,
                location: &self.location,
                bucket: &self.bucket,
                key: &self.key,
                upload_id: &self.upload_id,
            };
            target.complete(parts, &crc64_header(&crc)).await?;
            self.guard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .upload_id = None;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self.abort_upload().await;
        }
        result
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.abort_upload().await
    }
}

impl Drop for S3Parts {
    fn drop(&mut self) {
        for task in std::mem::take(&mut self.state().sending) {
            task.abort();
        }
    }
}
