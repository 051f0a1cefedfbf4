//! The multipart pieces both S3 uploads share: the one in order
//! (`s3_store`'s `S3Upload`) and the one at offsets (`s3_parts`): a part
//! sent with its CRC64NVME and retried on transient errors, the completion
//! that checks the whole object's CRC64NVME, the abort of an upload its
//! owner dropped, and what counts as transient.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumType, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use bytes::Bytes;
use crc_fast::Digest as CrcDigest;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::retry::RetryPolicy;

/// Retries of one part (or one single-request put) after a transient S3
/// error, on top of the SDK's own quick retries, before the bottle fails.
pub(crate) fn part_retry() -> RetryPolicy {
    RetryPolicy {
        retries: 4,
        min_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(10),
        ..RetryPolicy::default()
    }
}

/// Whether an S3 call may succeed if sent again: timeouts, connection
/// failures, unreadable answers, 5xx, throttling.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = http_status(error);
            status.is_some_and(|s| s >= 500 || s == 429)
                || matches!(
                    service.err().code(),
                    Some(
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestTimeout"
                            | "InternalError"
                            | "ServiceUnavailable"
                    )
                )
        }
        _ => false,
    }
}

pub(crate) fn http_status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

/// S3's encoding of a CRC64NVME: base64 of the 8 big-endian bytes.
pub(crate) fn crc64_header(crc: &CrcDigest) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.finalize().to_be_bytes())
}

/// Aborts a multipart upload that its owner's future left behind when it
/// was dropped mid-way (best effort, needs a runtime); the bucket's
/// lifecycle rule catches what a killed process leaves.
pub(crate) struct AbortOnDrop {
    pub(crate) client: Client,
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) upload_id: Option<String>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.upload_id.take() {
            abort_in_background(&self.client, &self.bucket, &self.key, id);
        }
    }
}

/// Aborts multipart upload `upload_id` from a task of its own, when a
/// runtime is there to run it (a `Drop` cannot wait): the one abort path of
/// an upload dropped mid-way, whichever upload it was.
pub(crate) fn abort_in_background(client: &Client, bucket: &str, key: &str, upload_id: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let request = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id);
    runtime.spawn(async move {
        let _ = request.send().await;
    });
}

/// A multipart upload in progress, for completing it.
pub(crate) struct MultipartTarget<'a> {
    pub client: &'a Client,
    pub location: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub upload_id: &'a str,
}

impl MultipartTarget<'_> {
    /// `CompleteMultipartUpload` with the whole object's CRC64NVME
    /// (`FULL_OBJECT`). S3 compares it with what it assembled; an answer
    /// that names another one means the stored object is not what we
    /// streamed.
    pub(crate) async fn complete(&self, parts: Vec<CompletedPart>, checksum: &str) -> Result<()> {
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.upload_id)
            .checksum_crc64_nvme(checksum)
            .checksum_type(ChecksumType::FullObject)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                Error::store(
                    self.location,
                    format!(
                        "cannot complete multipart upload of {}: {}",
                        self.key,
                        DisplayErrorContext(e)
                    ),
                )
            })?;
        match completed.checksum_crc64_nvme() {
            Some(stored) if stored != checksum => Err(Error::store(
                self.location,
                format!(
                    "{} was stored with CRC64NVME {stored}, but {checksum} was sent",
                    self.key
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// One part of a multipart upload, with what is needed to send it again.
pub(crate) struct PartRequest {
    pub(crate) client: Client,
    pub(crate) location: String,
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) upload_id: String,
    pub(crate) part_number: i32,
    /// Kept until the part is acknowledged: this is the part "uploading" of
    /// the two an upload holds, so retrying it costs no extra memory.
    pub(crate) body: Bytes,
    /// CRC64NVME of `body`, base64.
    pub(crate) checksum: String,
}

impl PartRequest {
    /// `UploadPart`, sent again after transient errors (logged each time);
    /// only when those run out does the bottle fail.
    pub(crate) async fn send_with_retries(self) -> Result<CompletedPart> {
        let mut delays = part_retry().delays();
        let mut attempt = 1;
        loop {
            let sent = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .part_number(self.part_number)
                .content_length(self.body.len() as i64)
                .checksum_crc64_nvme(&self.checksum)
                .body(ByteStream::from(self.body.clone()))
                .send()
                .await;
            let error = match sent {
                Ok(sent) => {
                    return Ok(CompletedPart::builder()
                        .part_number(self.part_number)
                        .set_e_tag(sent.e_tag().map(str::to_string))
                        .checksum_crc64_nvme(&self.checksum)
                        .build());
                }
                Err(e) => e,
            };
            let wait = if is_transient(&error) {
                delays.next()
            } else {
                None
            };
            let Some(wait) = wait else {
                return Err(Error::store(
                    &self.location,
                    format!(
                        "cannot upload part {} of {} (attempt {attempt}): {}",
                        self.part_number,
                        self.key,
                        DisplayErrorContext(&error)
                    ),
                ));
            };
            tracing::warn!(
                key = %self.key,
                part = self.part_number,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %DisplayErrorContext(&error),
                "UploadPart failed: sending the part again"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}
