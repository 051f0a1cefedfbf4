//! A local stand-in for Homebrew's formula API and GitHub Packages, so
//! bottlesync's tests, benchmarks and demo never need the network.
//!
//! Two listeners on 127.0.0.1 (two origins, like the real services):
//! - host A serves `/api/formula.json` (Homebrew's schema, `root_url`
//!   pointing at itself), `formula.jws.json`, the per-tag
//!   `internal/packages.<tag>.jws.json` brew >= 6 installs from (upstream's
//!   schema; a tag can be made to answer 404), the registry (`/v2/...`, with
//!   the 401 challenge and `/token` flow, 307 redirects for blobs and OCI
//!   image indexes for manifests) and the `/__standin/...` control endpoints;
//! - host B serves the signed bottle URLs, rejecting forwarded credentials.
//!
//! Bottles are generated on the fly from a catalog (any size, no memory
//! cost, deterministic bytes), faults are injected per bottle, and every
//! request is counted (per bottle, and per path on host A).
//!
//! [`brew_client`] replays what brew 6.0 requests from a mirror for
//! `brew install`, to check a mirror bottlesync wrote.
//!
//! No AWS SDK here, so the demo and the benchmarks build without it: the
//! moto harness and the AWS request counter are `bottlesync-aws-harness`
//! (`loadtest/aws/`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use bottlesync_loadtest::{Catalog, Fault, StandIn, StandInConfig};
//! let standin = StandIn::start(StandInConfig::new(Catalog::tricky())).await?;
//! let wget = standin.bottle("wget", "arm64_tahoe").unwrap();
//! standin.set_fault(&wget.sha256, Fault::Status { code: 503, times: 2 });
//! // ... point a mirror at standin.api_url() ...
//! assert_eq!(standin.stats().bottle(&wget.sha256).blob_requests, 3);
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod bottles;
pub mod brew_client;
mod catalog;
mod connection;
mod content;
mod control;
pub mod ecs_agent;
mod faults;
pub mod formula_struct;
mod gzip;
pub mod iam_policy;
mod index;
mod manifest;
mod portable_ruby;
mod prng;
mod registry;
pub mod ruby;
mod server;
mod stats;
mod storage;
mod tags;
pub mod webhook;

pub use auth::{ANONYMOUS_TOKEN, SERVICE};
pub use bottles::BottleInfo;
pub use catalog::{
    BREW_MIRROR_TAGS, BottleSpec, Catalog, FormulaSpec, Requirement, SizeModel, UsesFromMacos,
    image_name,
};
pub use content::{BottleContent, CHUNK_LEN, Pieces};
pub use control::{ConnRate, FaultRequest};
pub use faults::Fault;
pub use manifest::IMAGE_INDEX_MEDIA_TYPE;
pub use portable_ruby::{PortableRubySpec, RUBY_TAGS, ruby_tag_of};
pub use server::{StandIn, StandInConfig};
pub use stats::{BottleStats, Stats};
pub use tags::{CURRENT_TAGS, MACOS_NEWEST_FIRST, TagPlatform, installable_tag, parse_tag};

/// Waits for SIGINT or SIGTERM: how the stand-in binaries (fixture, ECS
/// agent, AWS audit proxy) are told to stop by the scripts that start them.
pub async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
