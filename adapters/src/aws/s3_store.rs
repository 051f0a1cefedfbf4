//! A mirror under an S3 prefix. Bottles that fit in one part are buffered
//! and sent as one `PutObject` after their digest matched; larger ones go up
//! as a multipart upload that is completed only after the digest matched and
//! aborted otherwise. Memory per upload: at most four parts (one filling,
//! up to three uploading at once), whatever the bottle size; a part being
//! retried is one of those uploading, so retries add nothing. A segmented
//! download goes up through `s3_parts` instead. Multipart uploads carry CRC64NVME
//! checksums computed from the bytes as they stream through: each part's
//! with its `UploadPart`, the whole object's (`FULL_OBJECT`) with
//! `CompleteMultipartUpload`, so S3 checks what it assembled. A transient S3
//! error on a part retries that part, not the bottle.
//!
//! Small objects that several writers read-modify-write go through
//! `get_versioned` / `put_if`: `If-Match: <ETag>` to replace,
//! `If-None-Match: *` to create.
//!
//! Every object is written with the `Content-Type` of its key
//! (`layout::content_type`) and no `Content-Encoding`: brew checks the
//! sha256 of the bytes as served. A flat copy (`put_flat_copy`) is made by
//! S3 itself (`CopyObject`, or `UploadPartCopy` parts above 5 GiB): no
//! bytes pass through the process.
//!
//! A bottle committed at its dated key (`<YYYY-MM-DD>/<file>`) carries the
//! archive tag (`layout::ARCHIVE_TAG`, set with the `PutObject` or the
//! `CreateMultipartUpload`, so it is there from the moment the object is),
//! which the bucket's archive lifecycle rule expires; its flat copy is made
//! with `TaggingDirective: REPLACE` and no tags, so it never inherits it.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, Delete,
    MetadataDirective, ObjectIdentifier, TaggingDirective,
};
use base64::Engine;
use bytes::Bytes;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinHandle;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::model::digest::Sha256Digest;
use bottlesync_core::model::key::ObjectKey;
use bottlesync_core::model::layout::{archive_tag, content_type};
use bottlesync_core::ports::store::{
    BlobReader, BlobStore, BlobWriter, DocumentStore, ObjectMeta, ObjectRead, PartsUpload,
    Precondition, PutIf, StoreLocation, Upload, VersionToken,
};

use super::s3_multipart::{
    AbortOnDrop, MultipartTarget, PartRequest, abort_in_background, crc64_header, http_status,
    is_transient, part_retry,
};
use super::s3_parts::{PartsTarget, S3Parts};

/// The smallest part we send (S3's minimum is 5 MiB).
pub const MIN_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3 allows 10,000 parts; we plan for fewer so a size estimate that is
/// somewhat low still fits, and grow the part size if it was far too low.
const PLANNED_PARTS: u64 = 9_000;
const PARTS_PER_SIZE_STEP: i32 = 1_000;

/// The largest object one `CopyObject` may copy (S3's limit): larger flat
/// copies are multipart copies.
pub const COPY_OBJECT_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// The part size of a multipart copy (grown to fit S3's 10,000 parts).
pub const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;
/// S3's limit on the parts of one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Parts of one upload in order sent at once (while the next one fills):
/// memory per upload is at most this many parts plus one.
const PARTS_IN_FLIGHT: usize = 3;
/// `UploadPartCopy` requests of one copy in flight at once: S3 moves the
/// bytes, so this bounds only the waiting.
const COPY_PARTS_IN_FLIGHT: usize = 4;

/// Sends an S3 request again after transient errors, logging each retry
/// with the operation and the key, as a part of an upload is; the last
/// error is returned when the retries run out.
async fn with_retries<T, E, F, Fut>(
    operation: &str,
    key: &str,
    mut send: F,
) -> std::result::Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
{
    let mut delays = part_retry().delays();
    let mut attempt = 1;
    loop {
        match send().await {
            Err(e) if is_transient(&e) => match delays.next() {
                Some(wait) => {
                    tracing::warn!(
                        operation,
                        key,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %DisplayErrorContext(&e),
                        "S3 request failed: sending it again"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => return Err(e),
            },
            answer => return answer,
        }
    }
}

/// `x-amz-copy-source`: `bucket/key`, the key URL-encoded (S3 decodes it;
/// a literal `+` would read as a space), `/` kept.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut encoded = String::with_capacity(bucket.len() + key.len() + 8);
    encoded.push_str(bucket);
    encoded.push('/');
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A conditional request whose condition did not hold: 412
/// `PreconditionFailed`; 409 `ConditionalRequestConflict` (another
/// conditional write to the key was in progress); `NoSuchKey` for an
/// `If-Match` on a key that is gone.
fn is_precondition_failed<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(service) => {
            matches!(
                service.err().code(),
                Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
            ) || http_status(error) == Some(412)
        }
        _ => false,
    }
}

/// The `x-amz-tagging` of a new object at `key`: the archive tag of a
/// dated bottle, nothing for anything else.
pub(crate) fn tagging(key: &ObjectKey) -> Option<String> {
    archive_tag(key).map(|(name, value)| format!("{name}={value}"))
}

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or `a/b` (no leading or trailing `/`).
    prefix: String,
    min_part_size: usize,
    /// Flat copies larger than this are multipart copies.
    copy_threshold: u64,
    /// The part size of a multipart copy (at least size / 10,000).
    copy_part_size: u64,
}

impl S3Store {
    /// GetObject of `key` (bytes `first..=last` when a range is given);
    /// `None` when there is no such key.
    async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<(u64, u64)>,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key.as_str()))
            .set_range(range.map(|(first, last)| format!("bytes={first}-{last}")))
            .send()
            .await
        {
            Ok(response) => Ok(Some(response)),
            Err(e) => {
                let service = e.into_service_error();
                if service.is_no_such_key() {
                    return Ok(None);
                }
                Err(self.err(&format!("cannot get {key}"), service))
            }
        }
    }

    pub fn new(client: Client, bucket: &str, prefix: &str) -> Self {
        S3Store {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            min_part_size: MIN_PART_SIZE,
            copy_threshold: COPY_OBJECT_MAX,
            copy_part_size: COPY_PART_SIZE,
        }
    }

    /// Flat copies above `threshold` bytes (at most S3's 5 GiB) go as
    /// multipart copies of `part_size` parts: small values let a test take
    /// that path with small objects.
    pub fn with_copy_limits(mut self, threshold: u64, part_size: u64) -> Self {
        self.copy_threshold = threshold.min(COPY_OBJECT_MAX);
        self.copy_part_size = part_size.max(1);
        self
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

    /// `HeadObject` of `key` (retried like a part); `None` when it does not
    /// exist.
    async fn head(&self, key: &ObjectKey, purpose: &str) -> Result<Option<HeadObjectOutput>> {
        let full = self.full_key(key.as_str());
        let answer = with_retries("HeadObject", &full, || {
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
        })
        .await;
        match answer {
            Ok(head) => Ok(Some(head)),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => Err(self.err(&format!("{purpose}: HeadObject of {key} failed"), e)),
        }
    }

    /// One `CopyObject` (objects up to 5 GiB), replacing the metadata so
    /// the copy gets the content type of its own key.
    async fn copy_whole(
        &self,
        source: &HeadObjectOutput,
        from: &ObjectKey,
        to: &ObjectKey,
        purpose: &str,
    ) -> Result<()> {
        let target = self.full_key(to.as_str());
        let copy_from = copy_source(&self.bucket, &self.full_key(from.as_str()));
        with_retries("CopyObject", &target, || {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(&target)
                .copy_source(&copy_from)
                .metadata_directive(MetadataDirective::Replace)
                .content_type(content_type(to))
                .set_metadata(source.metadata().cloned())
                // Not the source's tags (COPY is the default): a flat copy
                // of a dated bottle must not carry its archive tag.
                .tagging_directive(TaggingDirective::Replace)
                .set_tagging(tagging(to))
                .send()
        })
        .await
        .map(|_| ())
        .map_err(|e| self.err(&format!("{purpose}: CopyObject failed"), e))
    }

    /// A multipart copy: `CreateMultipartUpload`, `UploadPartCopy` of byte
    /// ranges (a few at once), `CompleteMultipartUpload`; aborted on any
    /// error (and, best effort, when the caller is cancelled).
    async fn copy_multipart(
        &self,
        source: &HeadObjectOutput,
        size: u64,
        from: &ObjectKey,
        to: &ObjectKey,
        purpose: &str,
    ) -> Result<()> {
        let target = self.full_key(to.as_str());
        let copy_from = copy_source(&self.bucket, &self.full_key(from.as_str()));
        let part_size = self.copy_part_size.max(size.div_ceil(MAX_PARTS));
        let parts = size.div_ceil(part_size);
        let created = with_retries("CreateMultipartUpload", &target, || {
            self.client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&target)
                .content_type(content_type(to))
                .set_metadata(source.metadata().cloned())
                .set_tagging(tagging(to))
                .send()
        })
        .await
        .map_err(|e| self.err(&format!("{purpose}: CreateMultipartUpload failed"), e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(Error::store(
                self.location(),
                format!("{purpose}: CreateMultipartUpload returned no upload id"),
            ));
        };
        tracing::debug!(from = %from, to = %to, size, parts, part_size, "multipart copy");
        let mut guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: target.clone(),
            upload_id: Some(upload_id.clone()),
        };
        let copied = async {
            let completed: Vec<CompletedPart> = futures::stream::iter(0..parts)
                .map(|n| {
                    let (target, copy_from, upload_id) = (&target, &copy_from, &upload_id);
                    async move {
                        let first = n * part_size;
                        let last = (first + part_size).min(size) - 1;
                        let part_number = n as i32 + 1;
                        let copied = with_retries("UploadPartCopy", target, || {
                            self.client
                                .upload_part_copy()
                                .bucket(&self.bucket)
                                .key(target)
                                .upload_id(upload_id)
                                .part_number(part_number)
                                .copy_source(copy_from)
                                .copy_source_range(format!("bytes={first}-{last}"))
                                .send()
                        })
                        .await
                        .map_err(|e| {
                            self.err(
                                &format!(
                                    "{purpose}: UploadPartCopy of part {part_number} \
                                     (bytes {first}-{last}) failed"
                                ),
                                e,
                            )
                        })?;
                        Ok::<_, Error>(
                            CompletedPart::builder()
                                .part_number(part_number)
                                .set_e_tag(
                                    copied
                                        .copy_part_result()
                                        .and_then(|r| r.e_tag())
                                        .map(str::to_string),
                                )
                                .build(),
                        )
                    }
                })
                .buffered(COPY_PARTS_IN_FLIGHT)
                .try_collect()
                .await?;
            let finished = with_retries("CompleteMultipartUpload", &target, || {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&target)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(completed.clone()))
                            .build(),
                    )
                    .send()
            })
            .await;
            match finished {
                Ok(_) => Ok(()),
                // A retry after an answer that was lost once the upload
                // had completed: the object is there if it has the size.
                Err(e) if e.code() == Some("NoSuchUpload") => match self.head(to, purpose).await? {
                    Some(head) if head.content_length() == Some(size as i64) => {
                        tracing::warn!(
                            to = %to,
                            "CompleteMultipartUpload answered NoSuchUpload, but the copy \
                             is there with its size: an earlier attempt completed it"
                        );
                        Ok(())
                    }
                    _ => Err(self.err(&format!("{purpose}: CompleteMultipartUpload failed"), e)),
                },
                Err(e) => Err(self.err(&format!("{purpose}: CompleteMultipartUpload failed"), e)),
            }
        }
        .await;
        let upload_id = guard.upload_id.take().expect("not yet taken");
        if let Err(error) = &copied {
            tracing::warn!(to = %to, error = %error, "aborting the multipart copy");
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&target)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(
                    to = %to,
                    upload_id,
                    error = %DisplayErrorContext(&e),
                    "cannot abort the multipart copy: the bucket's lifecycle rule will"
                );
            }
        }
        copied
    }
}

impl StoreLocation for S3Store {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[async_trait]
impl BlobStore for S3Store {
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
}

#[async_trait]
impl BlobWriter for S3Store {
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
            content_type: content_type(key),
            tagging: tagging(key),
            sha256: expected.clone(),
            base_part_size: self.part_size_for(size_hint),
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            in_flight: VecDeque::new(),
            written: 0,
            object_crc: CrcDigest::new(CrcAlgorithm::Crc64Nvme),
            part_crc: CrcDigest::new(CrcAlgorithm::Crc64Nvme),
        }))
    }

    async fn begin_parts(
        &self,
        key: &ObjectKey,
        expected: &Sha256Digest,
        size: u64,
    ) -> Result<Option<Box<dyn PartsUpload>>> {
        let part_size = (self.part_size_for(size) as u64).max(size.div_ceil(MAX_PARTS));
        Ok(Some(Box::new(
            S3Parts::begin(
                PartsTarget {
                    client: self.client.clone(),
                    location: self.location(),
                    bucket: self.bucket.clone(),
                    key: self.full_key(key.as_str()),
                    content_type: content_type(key),
                    tagging: tagging(key),
                },
                expected.as_str(),
                size,
                part_size,
            )
            .await?,
        )))
    }

    async fn put_flat_copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<()> {
        let purpose = format!("cannot put the flat copy {to} of {from}");
        let Some(source) = self.head(from, &purpose).await? else {
            return Err(Error::store(
                self.location(),
                format!("{purpose}: {from} does not exist"),
            ));
        };
        let size = source.content_length().unwrap_or(0).max(0) as u64;
        if let Some(existing) = self.head(to, &purpose).await?
            && existing.content_length() == Some(size as i64)
        {
            tracing::debug!(from = %from, to = %to, size, "flat copy already there");
            return Ok(());
        }
        if size <= self.copy_threshold {
            self.copy_whole(&source, from, to, &purpose).await
        } else {
            self.copy_multipart(&source, size, from, to, &purpose).await
        }
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
}

#[async_trait]
impl DocumentStore for S3Store {
    async fn put_atomic(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<()> {
        let len = bytes.len() as i64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key.as_str()))
            .content_type(content_type(key))
            .content_length(len)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err(&format!("cannot put {key}"), e))
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_versioned(key, max_bytes)
            .await?
            .map(|(bytes, _)| bytes))
    }

    async fn get_versioned(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, VersionToken)>> {
        let Some(response) = self.get_object(key, None).await? else {
            return Ok(None);
        };
        let len = response.content_length().unwrap_or(0).max(0) as u64;
        if len > max_bytes {
            return Err(Error::store(
                self.location(),
                format!("{key} is {len} bytes, more than the {max_bytes} allowed"),
            ));
        }
        let version = VersionToken(response.e_tag().unwrap_or_default().to_string());
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| self.err(&format!("cannot read {key}"), e))?;
        Ok(Some((body.into_bytes().to_vec(), version)))
    }

    async fn put_if(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        precondition: Precondition,
    ) -> Result<PutIf> {
        let len = bytes.len() as i64;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key.as_str()))
            .content_type(content_type(key))
            .content_length(len)
            .body(ByteStream::from(bytes));
        let request = match &precondition {
            Precondition::Absent => request.if_none_match("*"),
            Precondition::Matches(version) => request.if_match(&version.0),
        };
        match request.send().await {
            Ok(written) => match written.e_tag() {
                Some(etag) => Ok(PutIf::Written(VersionToken(etag.to_string()))),
                None => Err(Error::store(
                    self.location(),
                    format!("PutObject of {key} returned no ETag"),
                )),
            },
            Err(e) if is_precondition_failed(&e) => Ok(PutIf::PreconditionFailed),
            Err(e) => Err(self.err(&format!("cannot put {key}"), e)),
        }
    }

    async fn delete_if(&self, key: &ObjectKey, version: &VersionToken) -> Result<bool> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key.as_str()))
            .if_match(&version.0)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_precondition_failed(&e) => Ok(false),
            Err(e) => Err(self.err(&format!("cannot delete {key}"), e)),
        }
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

#[async_trait]
impl BlobReader for S3Store {
    async fn open_read(&self, key: &ObjectKey) -> Result<Option<ObjectRead>> {
        self.open_read_range(key, None).await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>> {
        Ok(self.head(key, "stat").await?.map(|head| ObjectMeta {
            size: head.content_length().unwrap_or(0).max(0) as u64,
            last_modified: head
                .last_modified()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
            etag: head.e_tag().map(str::to_string),
            sha256: head
                .metadata()
                .and_then(|m| m.get("sha256"))
                .and_then(|text| Sha256Digest::parse(text).ok()),
        }))
    }

    async fn presigned_get(&self, key: &ObjectKey, valid_for: Duration) -> Result<Option<String>> {
        let full = self.full_key(key.as_str());
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(valid_for)
            .map_err(|e| self.err(&format!("cannot presign {key}"), e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .presigned(config)
            .await
            .map_err(|e| self.err(&format!("cannot presign {key}"), e))?;
        Ok(Some(request.uri().to_string()))
    }

    /// A ranged `GetObject` for a part.
    async fn open_read_range(
        &self,
        key: &ObjectKey,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectRead>> {
        let Some(response) = self.get_object(key, range).await? else {
            return Ok(None);
        };
        let size = response.content_length().unwrap_or(0).max(0) as u64;
        let (location, shown) = (self.location(), key.to_string());
        let body = futures::stream::unfold(Some(response.body), move |body| {
            let (location, shown) = (location.clone(), shown.clone());
            async move {
                let mut body = body?;
                match body.try_next().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
                    Ok(None) => None,
                    Err(e) => Some((
                        Err(Error::store(location, format!("reading {shown}: {e}"))),
                        None,
                    )),
                }
            }
        });
        Ok(Some(ObjectRead {
            size,
            body: Box::pin(body),
        }))
    }
}

struct S3Upload {
    client: Client,
    location: String,
    bucket: String,
    key: String,
    content_type: &'static str,
    /// The object's tags (`x-amz-tagging`), given when it is created.
    tagging: Option<String>,
    sha256: Sha256Digest,
    base_part_size: usize,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    /// Parts being sent, oldest first (at most [`PARTS_IN_FLIGHT`]).
    in_flight: VecDeque<JoinHandle<Result<CompletedPart>>>,
    written: u64,
    /// CRC64NVME of every byte written (the `FULL_OBJECT` checksum).
    object_crc: CrcDigest,
    /// CRC64NVME of the bytes in `buffer` (the next part's checksum).
    part_crc: CrcDigest,
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
        let steps = (self.parts.len() + self.in_flight.len()) as i32 / PARTS_PER_SIZE_STEP;
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
            .content_type(self.content_type)
            .set_tagging(self.tagging.clone())
            .metadata("sha256", self.sha256.as_str())
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
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

    /// Waits for the oldest part in flight.
    async fn finish_oldest(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.pop_front() {
            let part = task.await.map_err(|e| {
                Error::store(&self.location, format!("part upload task failed: {e}"))
            })??;
            self.parts.push(part);
        }
        Ok(())
    }

    async fn finish_in_flight(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.finish_oldest().await?;
        }
        Ok(())
    }

    /// Sends the buffer as the next part, while the caller keeps downloading.
    async fn send_part(&mut self) -> Result<()> {
        let upload_id = self.ensure_multipart().await?;
        if self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.finish_oldest().await?;
        }
        let part_number = (self.parts.len() + self.in_flight.len()) as i32 + 1;
        let body = Bytes::from(std::mem::take(&mut self.buffer));
        let checksum = crc64_header(&self.part_crc);
        self.part_crc = CrcDigest::new(CrcAlgorithm::Crc64Nvme);
        let part = PartRequest {
            client: self.client.clone(),
            location: self.location.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            upload_id,
            part_number,
            body,
            checksum,
        };
        self.in_flight
            .push_back(tokio::spawn(part.send_with_retries()));
        Ok(())
    }

    /// A bottle that fits in one part: one `PutObject` carrying its sha256,
    /// retried like a part.
    async fn put_single(&mut self) -> Result<()> {
        let body = Bytes::from(std::mem::take(&mut self.buffer));
        let checksum = base64::engine::general_purpose::STANDARD.encode(self.sha256.to_bytes());
        let mut delays = part_retry().delays();
        let mut attempt = 1;
        loop {
            let sent = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(self.content_type)
                .set_tagging(self.tagging.clone())
                .content_length(body.len() as i64)
                .checksum_sha256(&checksum)
                .metadata("sha256", self.sha256.as_str())
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if is_transient(&e) => match delays.next() {
                    Some(wait) => {
                        tracing::warn!(
                            key = %self.key,
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            error = %DisplayErrorContext(&e),
                            "PutObject failed: sending it again"
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(self.err("cannot put", e)),
                },
                Err(e) => return Err(self.err("cannot put", e)),
            }
        }
    }

    async fn abort_multipart(&mut self) -> Result<()> {
        for task in std::mem::take(&mut self.in_flight) {
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
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let mut chunk: &[u8] = &chunk;
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
            self.part_crc.update(&chunk[..take]);
            self.object_crc.update(&chunk[..take]);
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
        self.object_crc = CrcDigest::new(CrcAlgorithm::Crc64Nvme);
        self.part_crc = CrcDigest::new(CrcAlgorithm::Crc64Nvme);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.upload_id.is_none() {
            return self.put_single().await;
        }
        let result = async {
            if !self.buffer.is_empty() {
                self.send_part().await?;
            }
            self.finish_in_flight().await?;
            let id = self.upload_id.clone().expect("multipart started");
            let target = MultipartTarget {
                client: &self.client,
                location: &self.location,
                bucket: &self.bucket,
                key: &self.key,
                upload_id: &id,
            };
            target
                .complete(self.parts.clone(), &crc64_header(&self.object_crc))
                .await?;
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
        for task in std::mem::take(&mut self.in_flight) {
            task.abort();
        }
        if let Some(id) = self.upload_id.take() {
            abort_in_background(&self.client, &self.bucket, &self.key, id);
        }
    }
}
