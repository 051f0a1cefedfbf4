//! The registry port: what bottlesync asks of Homebrew's servers (a
//! document such as the formula index, a bottle's size, a formula
//! version's OCI image index, and a bottle's bytes as a stream).
//! The HTTP client in `bottlesync-adapters` is the real one; tests of the
//! worker give a fake.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use url::Url;

use crate::error::Result;

#[async_trait]
pub trait Registry: Send + Sync {
    /// GETs a document (the index, an external hash file) without registry
    /// auth, refusing bodies over `max_bytes`.
    async fn get_document(&self, url: &Url, max_bytes: u64) -> Result<Vec<u8>>;

    /// Opens a bottle blob at `offset` (a Range request when > 0).
    async fn open_blob(&self, url: &Url, offset: u64) -> Result<BlobBody>;

    /// Opens bytes `first..=last` of a blob for a segmented download.
    /// `storage` is where an earlier part of this blob came from
    /// (`BlobBody::url`, a signed storage URL): asked first, without
    /// credentials, and when it is refused (expired) the registry is asked
    /// for a new one. The body may start at 0 (the server ignored Range) or
    /// run past `last`; the caller checks. By default: `open_blob` at
    /// `first`.
    async fn open_blob_part(
        &self,
        url: &Url,
        _storage: Option<&Url>,
        first: u64,
        _last: u64,
    ) -> Result<BlobBody> {
        self.open_blob(url, first).await
    }

    /// The blob's size, when the server tells it.
    async fn blob_size(&self, url: &Url) -> Result<Option<u64>>;

    /// The OCI image index of one formula version
    /// (`<repo>/manifests/<version_rebuild>`, `<repo>` taken from a blob
    /// URL of that formula), byte for byte, at most
    /// [`MAX_IMAGE_INDEX_BYTES`](crate::model::image_index::MAX_IMAGE_INDEX_BYTES).
    async fn image_index(&self, blob_url: &Url, version_rebuild: &str) -> Result<Vec<u8>>;

    /// The tags of an image (OCI `GET <repository>/tags/list`, the
    /// repository being `<registry root>/<image>`), every page of them.
    /// By default one plain document GET (a registry without auth or
    /// pages); the HTTP client answers the registry's challenge as for
    /// blobs and follows `Link: <...>; rel="next"`.
    async fn tag_list(&self, repository: &Url) -> Result<Vec<String>> {
        let url = tag_list_url(repository)?;
        let bytes = self
            .get_document(&url, crate::plan::portable_ruby::MAX_TAG_LIST_BYTES)
            .await?;
        crate::plan::portable_ruby::tags_in_page(url.as_str(), &bytes)
    }
}

/// `<repository>/tags/list?n=1000`: the first page, as large as registries
/// allow (they may page anyway).
pub fn tag_list_url(repository: &Url) -> Result<Url> {
    let text = format!(
        "{}/tags/list?n=1000",
        repository.as_str().trim_end_matches('/')
    );
    Url::parse(&text).map_err(|e| crate::Error::permanent_fetch(text.as_str(), e.to_string()))
}

/// A blob response positioned at `offset` bytes into the bottle.
pub struct BlobBody {
    pub url: Url,
    /// Where this body starts: the requested offset, or 0 when the server
    /// ignored the Range request and sent everything.
    pub offset: u64,
    /// The full size of the bottle, when the server said.
    pub total: Option<u64>,
    /// The bytes; a broken or stalled body is a transient error.
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl BlobBody {
    /// The next chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.body.next().await.transpose()
    }
}
