//! HTTP to Homebrew: the formula API and the OCI registry (GitHub Packages).
//! Registry requests carry `Authorization: Bearer QQ==` (anonymous) or the
//! token a 401 challenge names; redirects (the registry's 307 to signed
//! storage URLs) are followed by hand and **without** that header.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use async_trait::async_trait;
use bottlesync_core::error::{Error, Result};
use bottlesync_core::model::image_index::MAX_IMAGE_INDEX_BYTES;
use bottlesync_core::plan::portable_ruby::{
    MAX_TAG_LIST_BYTES, MAX_TAG_LIST_PAGES, next_page_link, tags_in_page,
};
use bottlesync_core::ports::registry::{BlobBody, Registry, tag_list_url};
use futures::TryStreamExt;

/// What anonymous pulls from ghcr.io send.
pub const ANONYMOUS_TOKEN: &str = "QQ==";
/// The `Accept` of a manifest request (what brew sends too).
pub const OCI_INDEX_MEDIA_TYPE: &str = bottlesync_core::model::layout::CONTENT_TYPE_IMAGE_INDEX;
const MAX_REDIRECTS: usize = 5;

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// Longest silence inside a response body before it counts as stalled.
    pub read_timeout: Duration,
    pub user_agent: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
            user_agent: format!("bottlesync/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

pub struct RegistryClient {
    http: reqwest::Client,
    /// Tokens issued by challenge realms, by scope (`repository:...:pull`).
    tokens: Mutex<HashMap<String, String>>,
}

impl RegistryClient {
    pub fn new(settings: &HttpSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .user_agent(&settings.user_agent)
            .build()
            .map_err(|e| Error::config("http client", e.to_string()))?;
        Ok(RegistryClient {
            http,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// One request, with registry auth (answering one challenge) when
    /// `registry_auth`, following redirects by hand without credentials.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        registry_auth: bool,
        range: Option<(u64, Option<u64>)>,
        accept: Option<&str>,
    ) -> Result<Response> {
        let headers = request_headers(range, accept);
        let anonymous = registry_auth.then(|| ANONYMOUS_TOKEN.to_string());
        let mut response = self
            .request(method.clone(), url, &headers, anonymous)
            .await?;
        if registry_auth && response.status() == StatusCode::UNAUTHORIZED {
            let challenge = challenge_of(&response)?;
            let (token, cached) = self.token_for(url, &challenge).await?;
            response = self
                .request(method.clone(), url, &headers, Some(token.clone()))
                .await?;
            // Tokens expire: a cached one refused gets one fresh token and
            // one more try (a long-lived worker would otherwise fail every
            // bottle of that repository from then on).
            if cached && response.status() == StatusCode::UNAUTHORIZED {
                tracing::warn!(
                    url = %url,
                    scope = challenge.scope.as_deref().unwrap_or(""),
                    "the registry refused the cached token (expired?): fetching a new one and trying again"
                );
                self.forget_token(&challenge, &token);
                let challenge = match challenge_of(&response) {
                    Ok(fresh) => fresh,
                    Err(_) => challenge,
                };
                let (token, _) = self.token_for(url, &challenge).await?;
                response = self
                    .request(method.clone(), url, &headers, Some(token))
                    .await?;
            }
        }
        let mut current = url.clone();
        for _ in 0..MAX_REDIRECTS {
            if !response.status().is_redirection() {
                return check_status(&current, response);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Error::permanent_fetch(current.as_str(), "redirect without Location")
                })?;
            current = current.join(location).map_err(|e| {
                Error::permanent_fetch(current.as_str(), format!("bad redirect Location: {e}"))
            })?;
            // Signed storage URLs reject credentials: never forward them.
            response = self
                .request(method.clone(), &current, &headers, None)
                .await?;
        }
        Err(Error::permanent_fetch(url.as_str(), "too many redirects"))
    }

    async fn request(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        bearer: Option<String>,
    ) -> Result<Response> {
        let mut request = self
            .http
            .request(method, url.clone())
            .headers(headers.clone());
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .map_err(|e| classify(url, "request failed", e))
    }

    /// Drops `token` from the cache (unless another request has already
    /// replaced it with a fresh one).
    fn forget_token(&self, challenge: &Challenge, token: &str) {
        let scope = challenge.scope.clone().unwrap_or_default();
        let mut tokens = self.tokens.lock().expect("token cache poisoned");
        if tokens.get(&scope).is_some_and(|cached| cached == token) {
            tokens.remove(&scope);
        }
    }

    /// The token a challenge asks for, and whether it came from the cache:
    /// cached by scope, else fetched from the realm. (ghcr.io accepts the
    /// anonymous token; this is the fallback for registries and mirrors that
    /// insist on the token dance.)
    async fn token_for(&self, url: &Url, challenge: &Challenge) -> Result<(String, bool)> {
        let scope = challenge.scope.clone().unwrap_or_default();
        if let Some(token) = self
            .tokens
            .lock()
            .expect("token cache poisoned")
            .get(&scope)
        {
            return Ok((token.clone(), true));
        }
        let mut realm = Url::parse(&challenge.realm).map_err(|e| {
            Error::permanent_fetch(
                url.as_str(),
                format!("401 challenge realm is not a URL: {e}"),
            )
        })?;
        {
            let mut query = realm.query_pairs_mut();
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            if let Some(scope) = &challenge.scope {
                query.append_pair("scope", scope);
            }
        }
        let response = self
            .request(Method::GET, &realm, &HeaderMap::new(), None)
            .await?;
        let body = read_limited(&realm, check_status(&realm, response)?, 1024 * 1024).await?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Error::permanent_fetch(realm.as_str(), format!("token answer is not JSON: {e}"))
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| Error::permanent_fetch(realm.as_str(), "token answer has no token"))?;
        self.tokens
            .lock()
            .expect("token cache poisoned")
            .insert(scope, token.clone());
        Ok((token, false))
    }
}

#[async_trait]
impl Registry for RegistryClient {
    /// GETs a document (the index, an external hash file) without registry
    /// auth, refusing bodies over `max_bytes`.
    async fn get_document(&self, url: &Url, max_bytes: u64) -> Result<Vec<u8>> {
        let response = self.send(Method::GET, url, false, None, None).await?;
        read_limited(url, response, max_bytes).await
    }

    /// Opens a bottle blob at `offset` (a Range request when > 0).
    async fn open_blob(&self, url: &Url, offset: u64) -> Result<BlobBody> {
        let range = (offset > 0).then_some((offset, None));
        let response = self.send(Method::GET, url, true, range, None).await?;
        blob_body(url, offset, response)
    }

    /// Bytes `first..=last`: from the signed storage URL of an earlier
    /// part while it is accepted, else through the registry (a new one).
    async fn open_blob_part(
        &self,
        url: &Url,
        storage: Option<&Url>,
        first: u64,
        last: u64,
    ) -> Result<BlobBody> {
        let range = Some((first, Some(last)));
        if let Some(storage) = storage {
            let headers = request_headers(range, None);
            let response = self.request(Method::GET, storage, &headers, None).await?;
            let status = response.status();
            if status.is_success() {
                return blob_body(url, first, response);
            }
            if status.is_client_error() {
                tracing::info!(url = %url, %status, first, last,
                    "the signed storage URL was refused (expired?): asking the registry for a new one");
            } else {
                return Err(check_status(storage, response).err().unwrap_or_else(|| {
                    Error::transient_fetch(storage.as_str(), format!("HTTP {status}"))
                }));
            }
        }
        let response = self.send(Method::GET, url, true, range, None).await?;
        blob_body(url, first, response)
    }

    /// The blob's size from a HEAD (through the redirect), when given.
    async fn blob_size(&self, url: &Url) -> Result<Option<u64>> {
        let response = self.send(Method::HEAD, url, true, None, None).await?;
        Ok(response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// The OCI image index of one formula version, byte for byte.
    async fn image_index(&self, blob_url: &Url, version_rebuild: &str) -> Result<Vec<u8>> {
        let url = manifest_url(blob_url, version_rebuild)?;
        let response = self
            .send(Method::GET, &url, true, None, Some(OCI_INDEX_MEDIA_TYPE))
            .await?;
        read_limited(&url, response, MAX_IMAGE_INDEX_BYTES).await
    }

    /// An image's tags, every page, with registry auth as for its blobs.
    async fn tag_list(&self, repository: &Url) -> Result<Vec<String>> {
        let mut url = tag_list_url(repository)?;
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_LIST_PAGES {
            let response = self
                .send(Method::GET, &url, true, None, Some("application/json"))
                .await?;
            let next = response
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_page_link)
                .map(|target| url.join(target))
                .transpose()
                .map_err(|e| {
                    Error::permanent_fetch(url.as_str(), format!("bad Link header: {e}"))
                })?;
            let body = read_limited(&url, response, MAX_TAG_LIST_BYTES).await?;
            tags.extend(tags_in_page(url.as_str(), &body)?);
            match next {
                None => return Ok(tags),
                // The registry's token goes with the request: never to
                // another origin.
                Some(next) if next.origin() != url.origin() => {
                    return Err(Error::permanent_fetch(
                        url.as_str(),
                        format!("the next page is on another origin ({next})"),
                    ));
                }
                Some(next) => url = next,
            }
        }
        Err(Error::permanent_fetch(
            repository.as_str(),
            format!("the tag list spans more than {MAX_TAG_LIST_PAGES} pages"),
        ))
    }
}

/// The headers of a registry or storage request: `Range`, `Accept`.
fn request_headers(range: Option<(u64, Option<u64>)>, accept: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some((first, last)) = range {
        let last = last.map(|l| l.to_string()).unwrap_or_default();
        headers.insert(
            header::RANGE,
            HeaderValue::from_str(&format!("bytes={first}-{last}")).expect("ascii"),
        );
    }
    if let Some(accept) = accept {
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(accept).expect("ascii"),
        );
    }
    headers
}

/// A blob response asked from `offset` as a `BlobBody`: where it really
/// starts (0 when the server ignored Range) and the bottle's full size.
fn blob_body(url: &Url, offset: u64, response: Response) -> Result<BlobBody> {
    let final_url = response.url().clone();
    let (start, total) = match response.status() {
        StatusCode::PARTIAL_CONTENT => content_range(&response).ok_or_else(|| {
            Error::transient_fetch(url.as_str(), "206 without a usable Content-Range")
        })?,
        _ => (0, response.content_length()),
    };
    if start != offset && start != 0 {
        return Err(Error::transient_fetch(
            url.as_str(),
            format!("asked for bytes from {offset}, got a body starting at {start}"),
        ));
    }
    let shown = final_url.clone();
    let body = response
        .bytes_stream()
        .map_err(move |e| classify(&shown, "body interrupted", e));
    Ok(BlobBody {
        url: final_url,
        offset: start,
        total,
        body: Box::pin(body),
    })
}

struct Challenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

/// Parses `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`.
fn challenge_of(response: &Response) -> Result<Challenge> {
    let url = response.url().as_str();
    let header = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::permanent_fetch(url, "401 without a WWW-Authenticate challenge"))?;
    let params = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| Error::permanent_fetch(url, format!("unsupported challenge {header:?}")))?;
    let mut fields = HashMap::new();
    for part in params.split(',') {
        if let Some((k, v)) = part.trim().split_once('=') {
            fields.insert(
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
    }
    Ok(Challenge {
        realm: fields
            .remove("realm")
            .ok_or_else(|| Error::permanent_fetch(url, "challenge has no realm"))?,
        service: fields.remove("service"),
        scope: fields.remove("scope"),
    })
}

fn check_status(url: &Url, response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let transient = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    Err(Error::Fetch {
        url: url.to_string(),
        problem: format!("HTTP {status}"),
        transient,
        retry_after,
    })
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// `Content-Range: bytes START-END/TOTAL`.
fn content_range(response: &Response) -> Option<(u64, Option<u64>)> {
    let value = response
        .headers()
        .get(header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.parse().ok()?, total.parse().ok()))
}

fn manifest_url(blob_url: &Url, version_rebuild: &str) -> Result<Url> {
    let path = blob_url.path();
    let repo = path
        .rfind("/blobs/")
        .map(|i| &path[..i])
        .ok_or_else(|| Error::permanent_fetch(blob_url.as_str(), "not a registry blob URL"))?;
    let mut url = blob_url.clone();
    url.set_path(&format!("{repo}/manifests/{version_rebuild}"));
    url.set_query(None);
    Ok(url)
}

async fn read_limited(url: &Url, mut response: Response, max_bytes: u64) -> Result<Vec<u8>> {
    if let Some(len) = response.content_length()
        && len > max_bytes
    {
        return Err(Error::permanent_fetch(
            url.as_str(),
            format!("response is {len} bytes, more than the {max_bytes} allowed"),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| classify(url, "body interrupted", e))?
    {
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(Error::permanent_fetch(
                url.as_str(),
                format!("response is more than the {max_bytes} bytes allowed"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(url: &Url, what: &str, e: reqwest::Error) -> Error {
    let transient =
        e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode();
    let mut problem = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        problem.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    Error::Fetch {
        url: url.to_string(),
        problem,
        transient,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_url_from_blob_url() {
        let blob = Url::parse(&format!(
            "https://ghcr.io/v2/homebrew/core/openssl/3/blobs/sha256:{}",
            "a".repeat(64)
        ))
        .unwrap();
        assert_eq!(
            manifest_url(&blob, "3.6.0_1-2").unwrap().as_str(),
            "https://ghcr.io/v2/homebrew/core/openssl/3/manifests/3.6.0_1-2"
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
