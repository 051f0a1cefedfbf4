//! Where bottles go: the `BlobStore` port, implemented by a local directory
//! (`local_store`) and an S3 prefix (`s3_store`). An `Upload` is one object
//! being written; nothing appears at its final key until `commit`. A store
//! that has content types (S3) writes every object with the one its key
//! calls for (`model::layout::content_type`), never a `Content-Encoding`.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::model::digest::Sha256Digest;
use crate::model::key::ObjectKey;

/// Keys under this prefix are bottlesync's own bookkeeping, never bottles.
pub const INTERNAL_PREFIX: &str = ".bottlesync";

/// One version of a small object, as the store identifies it: the ETag in
/// S3, a SHA-256 of the content in a directory. Opaque to callers; only
/// handed back in a `Precondition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionToken(pub String);

/// What must be true of a key for a conditional write to happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// The key does not exist (S3 `If-None-Match: *`).
    Absent,
    /// The key holds exactly this version (S3 `If-Match: <ETag>`).
    Matches(VersionToken),
}

/// The answer to a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutIf {
    /// Written; the version now stored.
    Written(VersionToken),
    /// The precondition did not hold (S3's 412, or the key is gone): nothing
    /// was changed. Re-read and decide again.
    PreconditionFailed,
}

/// Where a store is, for messages: every role names it in its errors.
pub trait StoreLocation: Send + Sync {
    /// `/srv/mirror` or `s3://bucket/prefix`.
    fn location(&self) -> String;
}

/// Reading objects of any size: what `serve` and `verify` use.
#[async_trait]
pub trait BlobReader: StoreLocation {
    /// Streams an object of any size (a bottle); `None` when it does not
    /// exist.
    async fn open_read(&self, key: &ObjectKey) -> Result<Option<ObjectRead>>;

    /// An object's size, time and version, for a server's headers; `None`
    /// when it does not exist. By default opened and closed again (size
    /// only); the stores answer from their metadata.
    async fn stat(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>> {
        Ok(self.open_read(key).await?.map(|read| ObjectMeta {
            size: read.size,
            last_modified: None,
            etag: None,
            sha256: None,
        }))
    }

    /// Streams bytes `first..=last` of an object (`range`, already within
    /// its size), or all of it (`None`); `size` is then the length of the
    /// part. `None` when the object does not exist. By default the whole
    /// object is read and the part cut out; the stores seek (a ranged
    /// GetObject on S3).
    async fn open_read_range(
        &self,
        key: &ObjectKey,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectRead>> {
        let Some(read) = self.open_read(key).await? else {
            return Ok(None);
        };
        Ok(Some(match range {
            None => read,
            Some((first, last)) => cut(read, first, last),
        }))
    }

    /// A URL anyone can GET the object from for `valid_for` (S3: a presigned
    /// GetObject); `None` where the store has no such thing (a directory).
    async fn presigned_get(
        &self,
        _key: &ObjectKey,
        _valid_for: std::time::Duration,
    ) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Writing bottles: an upload committed only after verification, and the
/// flat copy brew requests.
#[async_trait]
pub trait BlobWriter: StoreLocation {
    /// Starts writing `key`. The caller streams the bytes, checks their
    /// digest against `expected`, and only then commits.
    async fn begin(
        &self,
        key: &ObjectKey,
        expected: &Sha256Digest,
        size_hint: u64,
    ) -> Result<Box<dyn Upload>>;

    /// Starts writing `key` (of exactly `size` bytes) from segments that
    /// arrive in any order (a segmented download). `None` when this store
    /// takes bytes only in order: the caller then streams with `begin`.
    async fn begin_parts(
        &self,
        _key: &ObjectKey,
        _expected: &Sha256Digest,
        _size: u64,
    ) -> Result<Option<Box<dyn PartsUpload>>> {
        Ok(None)
    }

    /// Makes `to` hold the same bytes as the committed object `from` (a
    /// verified bottle): the flat copy brew requests under `bottles/`, and
    /// the object `bottles_hash.json` names. It never carries `from`'s
    /// archive tag (`layout::archive_tag`): the copy must not expire.
    /// Idempotent: when `to` already holds an object of the same size it is
    /// left alone. Readers of `to` see nothing, the old object or the whole new
    /// one, never a part.
    async fn put_flat_copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<()>;

    /// Aborts uploads to `key` that a killed writer left unfinished. Only
    /// safe when the caller is the key's sole writer (it holds the claim).
    /// Returns how many were aborted.
    async fn abort_incomplete_uploads(&self, _key: &ObjectKey) -> Result<usize> {
        Ok(0)
    }
}

/// Small objects read and written whole: `bottles_hash.json`, the API
/// files, run manifests, the store lock, the journal.
#[async_trait]
pub trait DocumentStore: StoreLocation {
    /// Writes a small object so that readers see the old or the new
    /// content, never a part.
    async fn put_atomic(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<()>;

    /// Reads a small object with its version, for a later `put_if`; `None`
    /// when it does not exist.
    async fn get_versioned(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, VersionToken)>>;

    /// Writes a small object atomically (like `put_atomic`) only if
    /// `precondition` holds at that moment, checked and written as one step
    /// against every other writer. For objects several writers
    /// read-modify-write (`bottles_hash.json`, the S3 run lease).
    async fn put_if(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        precondition: Precondition,
    ) -> Result<PutIf>;

    /// Deletes `key` only if it still holds `version`. False when it holds
    /// another version or is gone (nothing deleted).
    async fn delete_if(&self, key: &ObjectKey, version: &VersionToken) -> Result<bool>;

    /// Reads a small object; `None` when it does not exist. Objects larger
    /// than `max_bytes` are an error rather than a memory hazard.
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Option<Vec<u8>>>;

    /// Keys below `prefix` at any depth (a directory-like prefix without
    /// trailing `/`), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>>;

    async fn delete(&self, keys: &[ObjectKey]) -> Result<()>;
}

/// A whole mirror store (a directory or an S3 prefix): what the adapters
/// implement and the wiring hands out. A use case takes the role it uses
/// (`BlobReader`, `BlobWriter`, `DocumentStore`) where one is enough.
#[async_trait]
pub trait BlobStore: BlobReader + BlobWriter + DocumentStore + 'static {
    /// Fails with a clear message when the destination cannot be used.
    async fn check_usable(&self) -> Result<()>;
}

/// What `stat` knows of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub last_modified: Option<std::time::SystemTime>,
    /// A quoted entity tag (`"..."`), changing whenever the content does.
    pub etag: Option<String>,
    /// The SHA-256 the object was committed with, where the store records
    /// it (S3: the `sha256` metadata of every bottle upload, which is
    /// completed only once the bytes matched it, and of its flat copy).
    pub sha256: Option<Sha256Digest>,
}

/// Bytes `first..=last` of a whole-object read.
fn cut(read: ObjectRead, first: u64, last: u64) -> ObjectRead {
    let len = (last + 1)
        .saturating_sub(first)
        .min(read.size.saturating_sub(first));
    let mut offset = 0u64;
    let body = read
        .body
        .filter_map(move |chunk| {
            let out = chunk.map(|chunk| {
                let (start, end) = (offset, offset + chunk.len() as u64);
                offset = end;
                let from = first.clamp(start, end) - start;
                let to = (last + 1).clamp(start, end) - start;
                chunk.slice(from as usize..to as usize)
            });
            futures::future::ready(match out {
                Ok(part) if part.is_empty() => None,
                other => Some(other),
            })
        })
        .boxed();
    ObjectRead { size: len, body }
}

/// An object's bytes, as a stream.
pub struct ObjectRead {
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl ObjectRead {
    /// The next chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.body.next().await.transpose()
    }
}

#[async_trait]
pub trait Upload: Send {
    /// Takes `chunk` as it came (no copy where the store can keep it).
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

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

/// One object written from segments in any order: each segment's bytes
/// arrive in order through `write_at`, segments concurrently. The caller
/// then reads everything back once, in order, through `read_back` (that is
/// where it computes the digest), and commits only if it matched. Nothing
/// is visible at the key before `commit`.
#[async_trait]
pub trait PartsUpload: Send + Sync {
    /// The longest segment this upload accepts, when it must hold a segment
    /// in memory until it is read back (S3: one multipart part). `None`:
    /// any length (a file written in place).
    fn max_segment(&self) -> Option<u64>;

    /// Writes `chunks` (consecutive bytes) at `offset`. Within one segment,
    /// each write starts where the last one ended (a failed range is
    /// resumed, never started again).
    async fn write_at(&self, offset: u64, chunks: Vec<Bytes>) -> Result<()>;

    /// Bytes `offset..offset + len` as written. Called once per byte, in
    /// order from 0, only for bytes already written: a store may compute its
    /// own whole-object checksum here and then forget the bytes.
    async fn read_back(&self, offset: u64, len: usize) -> Result<Bytes>;

    /// Makes the object visible at its key. Call only after verification.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Throws the partial object away (dropping does the same, best effort).
    async fn abort(self: Box<Self>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_of(chunks: &[&'static [u8]]) -> ObjectRead {
        let size = chunks.iter().map(|c| c.len() as u64).sum();
        let chunks: Vec<Result<Bytes>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        ObjectRead {
            size,
            body: futures::stream::iter(chunks).boxed(),
        }
    }

    async fn collect(mut read: ObjectRead) -> (u64, Vec<u8>) {
        let mut out = Vec::new();
        while let Some(chunk) = read.chunk().await.unwrap() {
            out.extend_from_slice(&chunk);
        }
        (read.size, out)
    }

    #[tokio::test]
    async fn a_cut_is_the_part_across_chunk_boundaries() {
        let chunks: [&'static [u8]; 3] = [b"0123", b"4567", b"89"];
        for (first, last) in [(0, 9), (0, 0), (3, 4), (4, 7), (5, 9), (9, 9), (2, 100)] {
            let (size, bytes) = collect(cut(read_of(&chunks), first, last)).await;
            let expected = &b"0123456789"[first as usize..=(last as usize).min(9)];
            assert_eq!(bytes, expected, "{first}-{last}");
            assert_eq!(size, expected.len() as u64, "{first}-{last}");
        }
    }
}
