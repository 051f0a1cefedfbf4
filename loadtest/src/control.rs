//! Host A, `/__standin/...`: the control surface over HTTP, for tests and
//! benchmarks that run the stand-in in another process
//! (`bottlesync-fixture`).
//!
//! - `GET /__standin/stats`: [`Stats`](crate::Stats) as JSON.
//! - `GET /__standin/bottles`: the ground truth, `[BottleInfo]`.
//! - `GET /__standin/faults`: `[{"sha256": "...", "fault": {...}}]`.
//! - `POST /__standin/faults` `{"sha256": "...", "fault": {"kind": ...}}`
//!   sets a fault (`"fault": null` clears it); 404 for an unknown sha256.
//! - `DELETE /__standin/faults`: clears every fault.
//! - `POST /__standin/reset`: zeroes the stats, clears faults and any index
//!   override.
//! - `PUT /__standin/index` (any body) / `DELETE /__standin/index`: override
//!   `formula.json` with that text / serve the catalog's again. While it is
//!   overridden the per-tag files answer 404 (they are rendered from the
//!   catalog the override replaces).
//! - `GET /__standin/conn_rate` / `PUT /__standin/conn_rate`
//!   `{"bytes_per_sec": 50000000}` (`null` or 0: no cap): the cap on each
//!   storage connection's body rate (the fixture's `--conn-rate`); reset
//!   leaves it alone, it is configuration.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use crate::bottles::BottleInfo;
use crate::faults::Fault;
use crate::server::SharedState;
use crate::stats::Stats;

pub(crate) fn router() -> Router<Arc<SharedState>> {
    Router::new()
        .route("/__standin/stats", get(stats))
        .route("/__standin/bottles", get(bottles))
        .route(
            "/__standin/faults",
            get(list_faults).post(set_fault).delete(clear_faults),
        )
        .route("/__standin/reset", post(reset))
        .route("/__standin/index", put(set_index).delete(clear_index))
        .route("/__standin/conn_rate", get(conn_rate).put(set_conn_rate))
}

/// Body of `POST /__standin/faults`, and an item of `GET /__standin/faults`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRequest {
    pub sha256: String,
    /// `None` clears the bottle's fault.
    pub fault: Option<Fault>,
}

/// Body of `PUT /__standin/conn_rate` and answer of its GET.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRate {
    /// `None` (or 0 when set): no cap.
    pub bytes_per_sec: Option<u64>,
}

async fn conn_rate(State(state): State<Arc<SharedState>>) -> Json<ConnRate> {
    Json(ConnRate {
        bytes_per_sec: state.conn_rate(),
    })
}

async fn set_conn_rate(
    State(state): State<Arc<SharedState>>,
    Json(request): Json<ConnRate>,
) -> StatusCode {
    state.set_conn_rate(request.bytes_per_sec);
    StatusCode::NO_CONTENT
}

async fn stats(State(state): State<Arc<SharedState>>) -> Json<Stats> {
    Json(state.stats())
}

async fn bottles(State(state): State<Arc<SharedState>>) -> Json<Vec<BottleInfo>> {
    Json(state.resolved.bottles.clone())
}

async fn list_faults(State(state): State<Arc<SharedState>>) -> Json<Vec<FaultRequest>> {
    Json(
        state
            .faults
            .list()
            .into_iter()
            .map(|(sha256, fault)| FaultRequest {
                sha256,
                fault: Some(fault),
            })
            .collect(),
    )
}

async fn set_fault(
    State(state): State<Arc<SharedState>>,
    Json(request): Json<FaultRequest>,
) -> Response {
    if !state.blobs.contains_key(&request.sha256) {
        return (StatusCode::NOT_FOUND, "unknown sha256").into_response();
    }
    match request.fault {
        Some(fault) => state.faults.set(&request.sha256, fault),
        None => state.faults.clear(&request.sha256),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(state): State<Arc<SharedState>>) -> StatusCode {
    state.faults.clear_all();
    StatusCode::NO_CONTENT
}

async fn reset(State(state): State<Arc<SharedState>>) -> StatusCode {
    state.reset_stats();
    state.faults.clear_all();
    state.clear_index_override();
    StatusCode::NO_CONTENT
}

async fn set_index(State(state): State<Arc<SharedState>>, body: String) -> StatusCode {
    state.set_index_text(body);
    StatusCode::NO_CONTENT
}

async fn clear_index(State(state): State<Arc<SharedState>>) -> StatusCode {
    state.clear_index_override();
    StatusCode::NO_CONTENT
}
