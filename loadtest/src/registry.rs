//! Host A, registry routes, like GitHub Packages (ghcr.io): the token
//! endpoint, blob URLs that answer 307 to a signed storage URL on host B,
//! and manifest URLs that answer an OCI image index.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth;
use crate::connection::ConnectionReset;
use crate::faults::RegistryFault;
use crate::manifest::IMAGE_INDEX_MEDIA_TYPE;
use crate::server::SharedState;
use crate::stats::bump;

pub(crate) fn router() -> Router<Arc<SharedState>> {
    Router::new()
        .route("/token", get(token))
        .route("/v2/", get(version_check))
        .route("/v2/homebrew/core/{*path}", get(registry))
}

const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

/// An OCI distribution error body.
pub(crate) fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errors": [{ "code": code, "message": message }] })),
    )
        .into_response()
}

/// 401 with the challenge that leads to `/token` for `image`.
pub(crate) fn unauthorized(state: &SharedState, image: &str) -> Response {
    bump(&state.totals.unauthorized);
    let mut response = oci_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        auth::challenge(&state.api_origin, image)
            .parse()
            .expect("challenge is a valid header value"),
    );
    response
}

/// `GET /token?scope=repository:homebrew/core/<image>:pull&service=ghcr.io`.
async fn token(State(state): State<Arc<SharedState>>, RawQuery(query): RawQuery) -> Response {
    bump(&state.totals.token_requests);
    let repositories = auth::requested_repositories(query.as_deref().unwrap_or(""));
    let token = state.tokens.issue(repositories);
    Json(json!({ "token": token, "access_token": token })).into_response()
}

/// `GET /v2/`: the registry's "are my credentials fine" ping.
async fn version_check(State(state): State<Arc<SharedState>>, headers: HeaderMap) -> Response {
    let require_token = state.require_token.load(Ordering::Relaxed);
    let anonymous_ok = !require_token
        && headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", auth::ANONYMOUS_TOKEN));
    if anonymous_ok {
        Json(json!({})).into_response()
    } else {
        let mut response = unauthorized(&state, "");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            format!(
                "Bearer realm=\"{}/token\",service=\"{}\"",
                state.api_origin,
                auth::SERVICE
            )
            .parse()
            .expect("valid header"),
        );
        response
    }
}

/// What a path under `/v2/homebrew/core/` names.
enum RegistryPath<'a> {
    Blob { image: &'a str, sha256: &'a str },
    Manifest { image: &'a str, reference: &'a str },
}

fn valid_image(image: &str) -> bool {
    !image.is_empty()
        && image.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

fn parse_path(path: &str) -> Option<RegistryPath<'_>> {
    if let Some((image, digest)) = path.rsplit_once("/blobs/") {
        let sha256 = digest.strip_prefix("sha256:")?;
        let is_sha = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        return (is_sha && valid_image(image)).then_some(RegistryPath::Blob { image, sha256 });
    }
    let (image, reference) = path.rsplit_once("/manifests/")?;
    (valid_image(image) && !reference.is_empty() && !reference.contains('/'))
        .then_some(RegistryPath::Manifest { image, reference })
}

async fn registry(
    State(state): State<Arc<SharedState>>,
    ConnectInfo(connection): ConnectInfo<ConnectionReset>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let head = method == Method::HEAD;
    if head {
        bump(&state.totals.head_requests);
    }
    if let Some(image) = path.strip_suffix("/tags/list") {
        return crate::portable_ruby::tag_list(&state, image, &headers);
    }
    let delay_ms = state
        .manifest_delay_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    if delay_ms > 0 && matches!(parse_path(&path), Some(RegistryPath::Manifest { .. })) {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    match parse_path(&path) {
        Some(RegistryPath::Blob { image, sha256 }) => {
            blob(&state, &connection, head, image, sha256, &headers)
        }
        Some(RegistryPath::Manifest { image, reference }) => {
            bump(&state.totals.manifest_requests);
            manifest(&state, image, reference, &headers)
        }
        None => oci_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known",
        ),
    }
}

/// `<image>/blobs/sha256:<sha>`: auth, then faults, then 307 to host B.
fn blob(
    state: &SharedState,
    connection: &ConnectionReset,
    head: bool,
    image: &str,
    sha256: &str,
    headers: &HeaderMap,
) -> Response {
    let entry = state.blobs.get(sha256);
    if !head {
        bump(&state.totals.blob_requests);
    }
    if let Some(entry) = entry {
        bump(if head {
            &entry.counters.blob_head_requests
        } else {
            &entry.counters.blob_requests
        });
    }
    if !state
        .tokens
        .authorizes(headers, image, state.require_token.load(Ordering::Relaxed))
    {
        return unauthorized(state, image);
    }
    if !entry.is_some_and(|e| e.images.iter().any(|i| i == image)) {
        return oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        );
    }
    if let Some(fault) = state.faults.take_registry(sha256) {
        bump(&state.totals.faults_injected);
        tracing::debug!(sha256, ?fault, "registry fault");
        return match fault {
            RegistryFault::Status(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                oci_error(status, "INJECTED", "fault injected by the stand-in")
            }
            RegistryFault::TooManyRequests { retry_after_secs } => {
                let mut response = oci_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    "rate limit exceeded",
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, retry_after_secs.into());
                response
            }
            RegistryFault::ResetConnection => {
                connection.trigger();
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        };
    }
    (
        StatusCode::TEMPORARY_REDIRECT,
        [
            (LOCATION, state.signed_url(sha256)),
            (DOCKER_CONTENT_DIGEST, format!("sha256:{sha256}")),
        ],
    )
        .into_response()
}

/// `<image>/manifests/<version_rebuild>`: the formula version's image index.
fn manifest(state: &SharedState, image: &str, reference: &str, headers: &HeaderMap) -> Response {
    if !state
        .tokens
        .authorizes(headers, image, state.require_token.load(Ordering::Relaxed))
    {
        return unauthorized(state, image);
    }
    if image == crate::portable_ruby::PORTABLE_RUBY
        && let Some(response) = crate::portable_ruby::image_index(state, reference)
    {
        return response;
    }
    let Some(&i) = state
        .manifests
        .get(&(image.to_string(), reference.to_string()))
    else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    };
    let body = state.resolved.image_index(i);
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(body.as_bytes())));
    (
        [
            (CONTENT_TYPE, IMAGE_INDEX_MEDIA_TYPE.to_string()),
            (DOCKER_CONTENT_DIGEST, digest),
        ],
        body,
    )
        .into_response()
}
