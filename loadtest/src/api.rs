//! Host A, formula API routes (`/api/...`): the index, its JWS, one
//! formula's JSON and the per-tag packages files, with ETags so conditional
//! re-fetches work.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use crate::gzip;
use crate::index;
use crate::server::{SharedState, etag_of};
use crate::stats::bump;

pub(crate) fn router() -> Router<Arc<SharedState>> {
    Router::new()
        .route("/api/formula.json", get(formula_json))
        .route("/api/formula.jws.json", get(formula_jws))
        .route("/api/formula/{file}", get(one_formula))
        .route("/api/internal/{file}", get(packages_file))
}

/// A JSON body with its ETag (gzip-encoded when the client accepts it), or
/// 304 when the client already has it.
fn json_file(
    headers: &HeaderMap,
    body: Bytes,
    gzipped: impl FnOnce() -> Bytes,
    etag: &str,
) -> Response {
    let unchanged = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(ETAG, etag.to_string())]).into_response();
    }
    let headers_out = [
        (CONTENT_TYPE, "application/json"),
        (ETAG, etag),
        (VARY, "Accept-Encoding"),
    ];
    if gzip::accepted(headers) {
        (headers_out, [(CONTENT_ENCODING, "gzip")], gzipped()).into_response()
    } else {
        (headers_out, body).into_response()
    }
}

async fn formula_json(State(state): State<Arc<SharedState>>, headers: HeaderMap) -> Response {
    bump(&state.totals.index_requests);
    let docs = state.index_docs();
    json_file(&headers, docs.json, || docs.json_gzip, &docs.json_etag)
}

async fn formula_jws(State(state): State<Arc<SharedState>>, headers: HeaderMap) -> Response {
    bump(&state.totals.index_requests);
    let docs = state.index_docs();
    json_file(&headers, docs.jws, || docs.jws_gzip, &docs.jws_etag)
}

async fn one_formula(
    State(state): State<Arc<SharedState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    bump(&state.totals.api_file_requests);
    let Some(&i) = file
        .strip_suffix(".json")
        .and_then(|name| state.formula_by_name.get(name))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = Bytes::from(index::render_one_formula(
        &state.resolved.formulae[i],
        state.resolved.bottles_of(i),
        &state.registry_root(),
    ));
    let etag = etag_of(&body);
    json_file(
        &headers,
        body.clone(),
        || Bytes::from(gzip::encode(&body)),
        &etag,
    )
}

async fn packages_file(
    State(state): State<Arc<SharedState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    bump(&state.totals.api_file_requests);
    let Some(tag) = file
        .strip_prefix("packages.")
        .and_then(|rest| rest.strip_suffix(".jws.json"))
        .filter(|tag| state.has_packages_file(tag))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (body, gzipped) = state.packages_file(tag);
    let etag = etag_of(&body);
    json_file(&headers, body, || gzipped, &etag)
}
