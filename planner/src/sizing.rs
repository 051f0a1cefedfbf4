//! Bottle sizes, which the index does not carry: one manifest request per
//! formula version (`sh.brew.bottle.size` for all its bottles), falling back
//! to the blob's Content-Length. Requests run with bounded concurrency.

use std::collections::HashMap;

use bottlesync_core::registry::RegistryClient;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::{BottleJob, SizeSource};
use futures::stream::{self, StreamExt};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SizingReport {
    pub from_manifest: usize,
    pub from_content_length: usize,
    pub unknown: usize,
    pub manifest_requests: usize,
}

/// Fills in `size` and `size_source` of every job.
pub async fn size_jobs(
    registry: &RegistryClient,
    retry: &RetryPolicy,
    jobs: &mut [BottleJob],
    concurrency: usize,
) -> SizingReport {
    // One manifest per (repository, version_rebuild).
    let mut groups: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        let repo = job
            .url
            .path()
            .rsplit_once("/blobs/")
            .map(|(r, _)| r)
            .unwrap_or("");
        let origin = job.url.origin().ascii_serialization();
        groups
            .entry((format!("{origin}{repo}"), job.version_rebuild()))
            .or_default()
            .push(i);
    }
    let mut report = SizingReport {
        manifest_requests: groups.len(),
        ..SizingReport::default()
    };
    let lookups: Vec<(Vec<usize>, _)> = stream::iter(groups.into_values())
        .map(|members| {
            let first = &jobs[members[0]];
            let (url, reference) = (first.url.clone(), first.version_rebuild());
            async move {
                let sizes = retry
                    .run(|| registry.manifest_sizes(&url, &reference))
                    .await;
                if let Err(e) = &sizes {
                    tracing::warn!(error = %e, "manifest lookup failed; falling back to HEAD");
                }
                (members, sizes.unwrap_or_default())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut need_head = Vec::new();
    for (members, sizes) in lookups {
        for i in members {
            match sizes.get(&jobs[i].sha256) {
                Some(size) => {
                    jobs[i].size = *size;
                    jobs[i].size_source = SizeSource::Manifest;
                    report.from_manifest += 1;
                }
                None => need_head.push(i),
            }
        }
    }
    let heads: Vec<(usize, Option<u64>)> = stream::iter(need_head)
        .map(|i| {
            let url = jobs[i].url.clone();
            async move {
                let size = retry.run(|| registry.blob_size(&url)).await;
                if let Err(e) = &size {
                    tracing::warn!(error = %e, "size lookup failed");
                }
                (i, size.ok().flatten())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (i, size) in heads {
        match size {
            Some(size) => {
                jobs[i].size = size;
                jobs[i].size_source = SizeSource::ContentLength;
                report.from_content_length += 1;
            }
            None => {
                jobs[i].size = 0;
                jobs[i].size_source = SizeSource::Unknown;
                report.unknown += 1;
            }
        }
    }
    report
}
