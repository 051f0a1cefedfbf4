//! Where bottles go: the `BlobStore` port, implemented by a local directory
//! (`local_store`) and an S3 prefix (`s3_store`). An `Upload` is one object
//! being written; nothing appears at its final key until `commit`.

use async_trait::async_trait;

use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::key::ObjectKey;

/// Keys under this prefix are bottlesync's own bookkeeping, never bottles.
pub const INTERNAL_PREFIX: &str = ".bottlesync";

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// `/srv/mirror` or `s3://bucket/prefix`, for messages.
    fn location(&self) -> String;

    /// Fails with a clear message when the destination cannot be used.
    async fn check_usable(&self) -> Result<()>;

    /// Starts writing `key`. The caller streams the bytes, checks their
    /// digest against `expected`, and only then commits.
    async fn begin(
        &self,
        key: &ObjectKey,
        expected: &Sha256Digest,
        size_hint: u64,
    ) -> Result<Box<dyn Upload>>;

    /// Writes a small object so that readers see the old or the new
    /// content, never a part.
    async fn put_atomic(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<()>;

    /// Reads a small object; `None` when it does not exist. Objects larger
    /// than `max_bytes` are an error rather than a memory hazard.
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Option<Vec<u8>>>;

    /// Keys below `prefix` (a directory-like prefix without trailing `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>>;

    async fn delete(&self, keys: &[ObjectKey]) -> Result<()>;

    /// Aborts uploads to `key` that a killed writer left unfinished. Only
    /// safe when the caller is the key's sole writer (it holds the claim).
    /// Returns how many were aborted.
    async fn abort_incomplete_uploads(&self, _key: &ObjectKey) -> Result<usize> {
        Ok(0)
    }
}

#[async_trait]
pub trait Upload: Send {
    async fn write(&mut self, chunk: &[u8]) -> Result<()>;

    /// Bytes accepted so far.
    fn written(&self) -> u64;

    /// Discards what was written: the source is starting again from byte 0.
    async fn restart(&mut self) -> Result<()>;

    /// Makes the object visible at its key. Call only after verification.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Throws the partial object away. Dropping an upload does the same on a
    /// best-effort basis, so a cancelled task leaves nothing at a final key.
    async fn abort(self: Box<Self>) -> Result<()>;
}
