//! A mirror under an S3 prefix. Bottles that fit in one part are buffered
//! and sent as one `PutObject` after their digest matched; larger ones go up
//! as a multipart upload that is completed only after the digest matched and
//! aborted otherwise. Memory per upload: at most two parts (one filling, one
//! uploading), whatever the bottle size.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use base64::Engine;
use tokio::task::JoinHandle;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::key::ObjectKey;
use crate::store::{BlobStore, Upload};

/// The smallest part we send (S3's minimum is 5 MiB).
pub const MIN_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3 allows 10,000 parts; we plan for fewer so a size estimate that is
/// somewhat low still fits, and grow the part size if it was far too low.
const PLANNED_PARTS: u64 = 9_000;
const PARTS_PER_SIZE_STEP: i32 = 1_000;

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or `a/b` (no leading or trailing `/`).
    prefix: String,
    min_part_size: usize,
}

impl S3Store {
    pub fn new(client: Client, bucket: &str, prefix: &str) -> Self {
        S3Store {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            min_part_size: MIN_PART_SIZE,
        }
    }

    /// Smaller parts, for tests against servers with a lowered minimum.
    pub fn with_min_part_size(mut self, bytes: usize) -> Self {
        self.min_part_size = bytes.max(1);
        self
    }

    pub fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn err(&self, what: &str, e: impl std::error::Error) -> Error {
        Error::store(
            self.location(),
            format!("{what}: {}", DisplayErrorContext(e)),
        )
    }

    fn part_size_for(&self, size_hint: u64) -> usize {
        let by_size = (size_hint.saturating_mul(5) / 4).div_ceil(PLANNED_PARTS);
        (by_size as usize).max(self.min_part_size)
    }
}

#[async_trait]
impl BlobStore for S3Store {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn check_usable(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::destination(
                    self.location(),
                    format!("bucket is not usable: {}", DisplayErrorContext(e)),
                )
            })
    }

    async fn begin(
        &self,
        key: &ObjectKey,
        expected: &Sha256Digest,
        size_hint: u64,
    ) -> Result<Box<dyn Upload>> {
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            location: self.location(),
            bucket: self.bucket.clone(),
            key: self.full_key(key.as_str()),
            sha256: expected.clone(),
            base_part_size: self.part_size_for(size_hint),
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            in_flight: None,
            written: 0,
        }))
    }

    async fn put_atomic(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<()> {
        let len = bytes.len() as i64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key.as_str()))
            .content_length(len)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err(&format!("cannot put {key}"), e))
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        let full = self.full_key(key.as_str());
        let response = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                let service = e.into_service_error();
                if service.is_no_such_key() {
                    return Ok(None);
                }
                return Err(self.err(&format!("cannot get {key}"), service));
            }
        };
        let len = response.content_length().unwrap_or(0).max(0) as u64;
        if len > max_bytes {
            return Err(Error::store(
                self.location(),
                format!("{key} is {len} bytes, more than the {max_bytes} allowed"),
            ));
        }
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| self.err(&format!("cannot read {key}"), e))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>> {
        let full_prefix = format!("{}/", self.full_key(prefix));
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err(&format!("cannot list {prefix}"), e))?;
            for object in page.contents() {
                if let Some(k) = object.key() {
                    keys.push(ObjectKey::parse(&k[strip..])?);
                }
            }
        }
        Ok(keys)
    }

    async fn abort_incomplete_uploads(&self, key: &ObjectKey) -> Result<usize> {
        let full = self.full_key(key.as_str());
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&full)
            .send()
            .await
            .map_err(|e| self.err(&format!("cannot list uploads of {key}"), e))?;
        let mut aborted = 0;
        for upload in listed.uploads() {
            if let (Some(k), Some(id)) = (upload.key(), upload.upload_id())
                && k == full
            {
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(k)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|e| self.err(&format!("cannot abort an old upload of {key}"), e))?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    async fn delete(&self, keys: &[ObjectKey]) -> Result<()> {
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|k| {
                    ObjectIdentifier::builder()
                        .key(self.full_key(k.as_str()))
                        .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| self.err("cannot build delete request", e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.err("cannot build delete request", e))?;
            self.client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.err("cannot delete objects", e))?;
        }
        Ok(())
    }
}

struct S3Upload {
    client: Client,
    location: String,
    bucket: String,
    key: String,
    sha256: Sha256Digest,
    base_part_size: usize,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    in_flight: Option<JoinHandle<Result<CompletedPart>>>,
    written: u64,
}

impl S3Upload {
    fn err(&self, what: &str, e: impl std::error::Error) -> Error {
        Error::store(
            &self.location,
            format!("{what} {}: {}", self.key, DisplayErrorContext(e)),
        )
    }

    /// Part sizes double every 1,000 parts, so even a bottle far larger than
    /// its estimate stays under S3's 10,000-part limit.
    fn current_part_size(&self) -> usize {
        let steps =
            (self.parts.len() as i32 + self.in_flight.is_some() as i32) / PARTS_PER_SIZE_STEP;
        self.base_part_size << steps.min(12)
    }

    async fn ensure_multipart(&mut self) -> Result<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .metadata("sha256", self.sha256.as_str())
            .send()
            .await
            .map_err(|e| self.err("cannot start multipart upload of", e))?;
        let id = created
            .upload_id()
            .ok_or_else(|| {
                Error::store(
                    &self.location,
                    "CreateMultipartUpload returned no upload id",
                )
            })?
            .to_string();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn finish_in_flight(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            let part = task.await.map_err(|e| {
                Error::store(&self.location, format!("part upload task failed: {e}"))
            })??;
            self.parts.push(part);
        }
        Ok(())
    }

    /// Sends the buffer as the next part, while the caller keeps downloading.
    async fn send_part(&mut self) -> Result<()> {
        let upload_id = self.ensure_multipart().await?;
        self.finish_in_flight().await?;
        let part_number = self.parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.buffer);
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body));
        let location = self.location.clone();
        let key = self.key.clone();
        self.in_flight = Some(tokio::spawn(async move {
            let sent = request.send().await.map_err(|e| {
                Error::store(
                    &location,
                    format!(
                        "cannot upload part {part_number} of {key}: {}",
                        DisplayErrorContext(e)
                    ),
                )
            })?;
            Ok(CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(sent.e_tag().map(str::to_string))
                .build())
        }));
        Ok(())
    }

    async fn abort_multipart(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            task.abort();
            let _ = task.await;
        }
        self.parts.clear();
        if let Some(id) = self.upload_id.take() {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await
                .map_err(|e| self.err("cannot abort multipart upload of", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, mut chunk: &[u8]) -> Result<()> {
        self.written += chunk.len() as u64;
        while !chunk.is_empty() {
            let part_size = self.current_part_size();
            if self.buffer.capacity() == 0 {
                self.buffer
                    .reserve_exact(part_size.min(chunk.len().max(64 * 1024)));
            }
            let room = part_size - self.buffer.len();
            let take = room.min(chunk.len());
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buffer.len() == part_size {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn restart(&mut self) -> Result<()> {
        self.abort_multipart().await?;
        self.buffer.clear();
        self.written = 0;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buffer);
            let checksum = base64::engine::general_purpose::STANDARD.encode(self.sha256.to_bytes());
            return self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_length(body.len() as i64)
                .checksum_sha256(checksum)
                .metadata("sha256", self.sha256.as_str())
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.err("cannot put", e));
        }
        let result = async {
            if !self.buffer.is_empty() {
                self.send_part().await?;
            }
            self.finish_in_flight().await?;
            let id = self.upload_id.clone().expect("multipart started");
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(self.parts.clone()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.err("cannot complete multipart upload of", e))?;
            self.upload_id = None;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self.abort_multipart().await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.abort_multipart().await
    }
}

impl Drop for S3Upload {
    /// A cancelled upload (task dropped, shutdown) still aborts its multipart
    /// upload if a runtime is there to do it; the bucket's lifecycle rule
    /// catches what a killed process leaves.
    fn drop(&mut self) {
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
        if let (Some(id), Ok(runtime)) =
            (self.upload_id.take(), tokio::runtime::Handle::try_current())
        {
            let request = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id);
            runtime.spawn(async move {
                let _ = request.send().await;
            });
        }
    }
}
