//! Fetching and validating the formula index, shared by `sync` and the
//! fleet planner.

use bottlesync_core::model::index::{FormulaIndex, HostPolicy, parse_index};
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::{Error, Result};
use url::Url;

/// The index is ~30 MB today; refuse anything absurd instead of exhausting memory.
pub const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;
/// How many rejected index entries are logged one by one.
const REJECTIONS_LOGGED: usize = 50;

/// `{api_url}/formula.json`, validated entry by entry; rejections are logged.
pub async fn fetch_index(
    registry: &dyn Registry,
    retry: &RetryPolicy,
    api_url: &Url,
    hosts: &HostPolicy,
) -> Result<FormulaIndex> {
    let url = Url::parse(&format!(
        "{}/formula.json",
        api_url.as_str().trim_end_matches('/')
    ))
    .map_err(|e| Error::config("api url", e.to_string()))?;
    let index_error = |problem: String| Error::Index {
        source_name: url.to_string(),
        problem,
    };
    let body = retry
        .run(|| registry.get_document(&url, MAX_INDEX_BYTES))
        .await
        .map_err(|e| index_error(e.to_string()))?;
    let index = parse_index(&body, hosts).map_err(index_error)?;
    for rejection in index.rejections.iter().take(REJECTIONS_LOGGED) {
        tracing::warn!("{rejection}");
    }
    if index.rejections.len() > REJECTIONS_LOGGED {
        tracing::warn!(
            "... and {} more rejected index entries",
            index.rejections.len() - REJECTIONS_LOGGED
        );
    }
    tracing::info!(
        formulae = index.formulae.len(),
        rejected = index.rejections.len(),
        "index validated"
    );
    Ok(index)
}
