//! Fetching and validating what clients install from, shared by `sync`
//! and the fleet planner: the formula index (from `formula.jws.json`, the
//! signed file older clients use, so the plan and the published file are
//! one fetch; `formula.json` where there is none) and the per-tag API files
//! of brew >= 6.

use std::collections::BTreeMap;

use bottlesync_core::model::index::{FormulaIndex, HostPolicy, parse_index};
use bottlesync_core::model::layout::{FORMULA_JWS_FILE, packages_file_name};
use bottlesync_core::model::packages::{MAX_PACKAGES_FILE_BYTES, PackagesFile};
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::{Error, Result, Tag};
use url::Url;

/// The index is ~30 MB today; refuse anything absurd instead of exhausting memory.
pub const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;
/// How many rejected index entries are logged one by one.
const REJECTIONS_LOGGED: usize = 50;

fn api_file_url(api_url: &Url, path: &str) -> Result<Url> {
    Url::parse(&format!(
        "{}/{path}",
        api_url.as_str().trim_end_matches('/')
    ))
    .map_err(|e| Error::config("api url", e.to_string()))
}

/// The validated index, and the bytes of `formula.jws.json` when the index
/// came from it (what the mirror publishes for older clients).
#[derive(Debug)]
pub struct FetchedIndex {
    pub index: FormulaIndex,
    pub formula_jws: Option<Vec<u8>>,
}

/// `{api_url}/formula.jws.json` (or `formula.json` when the API has no
/// signed file), validated entry by entry; rejections are logged.
pub async fn fetch_index(
    registry: &dyn Registry,
    retry: &RetryPolicy,
    api_url: &Url,
    hosts: &HostPolicy,
) -> Result<FetchedIndex> {
    let signed = api_file_url(api_url, FORMULA_JWS_FILE)?;
    let (url, body, signed_body) = match retry
        .run(|| registry.get_document(&signed, MAX_INDEX_BYTES))
        .await
    {
        Ok(body) => (signed, body, true),
        Err(e) if e.is_not_found() => {
            let plain = api_file_url(api_url, "formula.json")?;
            tracing::warn!(
                "{signed} does not exist: planning from {plain}, and publishing no {FORMULA_JWS_FILE} (brew < 6 clients cannot use this mirror's API)"
            );
            let body = retry
                .run(|| registry.get_document(&plain, MAX_INDEX_BYTES))
                .await
                .map_err(|e| Error::Index {
                    source_name: plain.to_string(),
                    problem: e.to_string(),
                })?;
            (plain, body, false)
        }
        Err(e) => {
            return Err(Error::Index {
                source_name: signed.to_string(),
                problem: e.to_string(),
            });
        }
    };
    let index_error = |problem: String| Error::Index {
        source_name: url.to_string(),
        problem,
    };
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
    Ok(FetchedIndex {
        index,
        formula_jws: signed_body.then_some(body),
    })
}

/// `{api_url}/internal/packages.<tag>.jws.json` for every tag. A tag
/// upstream publishes no file for (404) is left out, with a warning: it is
/// planned from the index and gets no API file. Any other failure, or a
/// file that is not a per-tag file, fails the plan: clients on that tag
/// install from it.
pub async fn fetch_packages_files(
    registry: &dyn Registry,
    retry: &RetryPolicy,
    api_url: &Url,
    tags: &[Tag],
) -> Result<BTreeMap<Tag, PackagesFile>> {
    let mut files = BTreeMap::new();
    for tag in tags {
        let url = api_file_url(api_url, &format!("internal/{}", packages_file_name(tag)))?;
        let file_error = |problem: String| Error::Index {
            source_name: url.to_string(),
            problem,
        };
        let body = match retry
            .run(|| registry.get_document(&url, MAX_PACKAGES_FILE_BYTES))
            .await
        {
            Ok(body) => body,
            Err(e) if e.is_not_found() => {
                tracing::warn!(
                    %tag,
                    "{url} does not exist: planning {tag} from the formula index, and publishing no per-tag API file for it (brew >= 6 clients on {tag} cannot install from this mirror's API)"
                );
                continue;
            }
            Err(e) => return Err(file_error(e.to_string())),
        };
        let file = PackagesFile::parse(tag, body).map_err(file_error)?;
        for rejection in file.rejections.iter().take(REJECTIONS_LOGGED) {
            tracing::warn!("{url}: {rejection}");
        }
        tracing::info!(
            %tag,
            formulae = file.formulae.len(),
            rejected = file.rejections.len(),
            "per-tag API file validated"
        );
        files.insert(tag.clone(), file);
    }
    Ok(files)
}
