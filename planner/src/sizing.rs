//! Bottle sizes, which the index does not carry: one manifest request per
//! formula version (`sh.brew.bottle.size` for all its bottles), falling back
//! to the blob's Content-Length. Requests run with bounded concurrency.

use std::collections::HashMap;

use bottlesync_core::ports::registry::Registry;
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
    registry: &dyn Registry,
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

/// What a bottle nobody could size is assumed to weigh (the median bottle
/// is a few MB; erring large routes such runs to ECS rather than Lambda).
pub const DEFAULT_SIZE_ESTIMATE: u64 = 64 * 1024 * 1024;

/// Sizes still unknown after [`size_jobs`] are estimated from the last
/// stored bottle of the same formula and tag, else [`DEFAULT_SIZE_ESTIMATE`]:
/// never zero. Returns how many were estimated this way.
pub fn estimate_unknown_sizes(
    jobs: &mut [BottleJob],
    previous: &HashMap<(String, String), u64>,
) -> usize {
    let mut estimated = 0;
    for job in jobs
        .iter_mut()
        .filter(|j| j.size_source == SizeSource::Unknown)
    {
        estimated += 1;
        match previous.get(&(job.name.clone(), job.tag.to_string())) {
            Some(size) if *size > 0 => {
                job.size = *size;
                job.size_source = SizeSource::PreviousBottle;
            }
            _ => {
                job.size = DEFAULT_SIZE_ESTIMATE;
                job.size_source = SizeSource::Default;
            }
        }
    }
    estimated
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottlesync_core::{ObjectKey, Sha256Digest, Tag};

    fn job(name: &str, source: SizeSource) -> BottleJob {
        let sha = Sha256Digest::parse(&"a".repeat(64)).unwrap();
        BottleJob {
            name: name.into(),
            version: "1".into(),
            revision: 0,
            rebuild: 0,
            tag: Tag::parse("arm64_tahoe").unwrap(),
            url: format!("https://ghcr.io/v2/homebrew/core/{name}/blobs/sha256:{sha}")
                .parse()
                .unwrap(),
            sha256: sha,
            size: if source == SizeSource::Manifest { 7 } else { 0 },
            size_source: source,
            key: ObjectKey::parse(&format!("2026-11-29/{name}-1.arm64_tahoe.bottle.tar.gz"))
                .unwrap(),
        }
    }

    #[test]
    fn unknown_sizes_are_never_zero() {
        let mut jobs = vec![
            job("a", SizeSource::Manifest),
            job("b", SizeSource::Unknown),
            job("c", SizeSource::Unknown),
        ];
        let previous = HashMap::from([(("b".to_string(), "arm64_tahoe".to_string()), 1234u64)]);
        assert_eq!(estimate_unknown_sizes(&mut jobs, &previous), 2);
        assert_eq!(
            (jobs[0].size, jobs[0].size_source),
            (7, SizeSource::Manifest)
        );
        assert_eq!(
            (jobs[1].size, jobs[1].size_source),
            (1234, SizeSource::PreviousBottle)
        );
        assert_eq!(
            (jobs[2].size, jobs[2].size_source),
            (DEFAULT_SIZE_ESTIMATE, SizeSource::Default)
        );
    }
}
