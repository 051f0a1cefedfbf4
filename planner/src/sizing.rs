//! Bottle sizes, which the index does not carry: one manifest request per
//! formula version (`sh.brew.bottle.size` for all its bottles), falling back
//! to the blob's Content-Length. Requests run with bounded concurrency.
//! The image indexes fetched on the way are what brew asks a mirror for
//! (`bottles/<image>/manifests/<ref>`): with a store to keep them in, each
//! is stored byte for byte as it arrives (never all held at once).

use std::collections::{HashMap, HashSet};

use bottlesync_core::model::image_index::{ImageIndex, MAX_IMAGE_INDEX_BYTES};
use bottlesync_core::model::layout::manifest_key;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::BlobStore;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::{BottleJob, ObjectKey, Sha256Digest, SizeSource};
use futures::stream::{self, StreamExt};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SizingReport {
    pub from_manifest: usize,
    pub from_content_length: usize,
    pub unknown: usize,
    pub manifest_requests: usize,
    /// Image indexes written to the mirror (`bottles/<image>/manifests/`).
    pub image_indexes_stored: usize,
}

/// Jobs grouped by the image index that describes them: one per
/// (repository, version_rebuild).
fn by_image_index(jobs: &[BottleJob]) -> Vec<Vec<usize>> {
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
    groups.into_values().collect()
}

/// Fetches the image index of `job`'s formula version and, with `keep`,
/// stores it at its mirror key. `None` (logged) when it could not be had.
async fn fetch_image_index(
    registry: &dyn Registry,
    retry: &RetryPolicy,
    job: BottleJob,
    keep: Option<&dyn BlobStore>,
) -> (Option<ImageIndex>, bool) {
    let reference = job.version_rebuild();
    let fetched = retry
        .run(|| registry.image_index(&job.url, &reference))
        .await
        .and_then(|bytes| {
            ImageIndex::parse(bytes).map_err(|problem| {
                bottlesync_core::Error::permanent_fetch(
                    format!("{} {reference}", job.name),
                    problem,
                )
            })
        });
    let index = match fetched {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!(formula = %job.name, reference, error = %e, "image index lookup failed; sizes fall back to HEAD, and the mirror has no manifest for this version");
            return (None, false);
        }
    };
    let Some(store) = keep else {
        return (Some(index), false);
    };
    let stored = match manifest_key(&job.name, &reference) {
        Ok(key) => match store.put_atomic(&key, index.bytes.clone()).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%key, error = %e, "could not store the image index; brew installs this version without relocation data until a later run stores it");
                false
            }
        },
        Err(e) => {
            tracing::warn!(formula = %job.name, error = %e, "no manifest key for this formula version");
            false
        }
    };
    (Some(index), stored)
}

/// Makes the mirror's image index of every formula version in `bottles`
/// (bottles it already holds) name all of them: one whose manifest key is
/// not in `present` (mirrored before manifests were kept, or its fetch
/// failed) is fetched and stored; a stored one is read and fetched again
/// when it lacks one of their digests (upstream indexes grow when bottles
/// are added to a version). Returns how many were stored.
pub async fn keep_image_indexes_complete(
    registry: &dyn Registry,
    retry: &RetryPolicy,
    store: &dyn BlobStore,
    bottles: &[BottleJob],
    present: &HashSet<ObjectKey>,
    concurrency: usize,
) -> usize {
    let todo: Vec<(BottleJob, Vec<Sha256Digest>, ObjectKey)> = by_image_index(bottles)
        .into_iter()
        .filter_map(|members| {
            let first = bottles[members[0]].clone();
            let key = manifest_key(&first.name, &first.version_rebuild()).ok()?;
            let digests = members.iter().map(|&i| bottles[i].sha256.clone()).collect();
            Some((first, digests, key))
        })
        .collect();
    let stored: Vec<bool> = stream::iter(todo)
        .map(|(job, digests, key)| {
            let stored_before = present.contains(&key);
            async move {
                if stored_before && names_all(store, &key, &digests).await {
                    return false;
                }
                fetch_image_index(registry, retry, job, Some(store)).await.1
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    stored.iter().filter(|s| **s).count()
}

/// Whether the image index stored at `key` names every digest (an
/// unreadable one does not).
async fn names_all(store: &dyn BlobStore, key: &ObjectKey, digests: &[Sha256Digest]) -> bool {
    match store.get(key, MAX_IMAGE_INDEX_BYTES).await {
        Ok(Some(bytes)) => {
            ImageIndex::parse(bytes).is_ok_and(|index| digests.iter().all(|d| index.names(d)))
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(%key, error = %e, "could not read the stored image index: fetching it again");
            false
        }
    }
}

/// Fills in `size` and `size_source` of every job, storing the image
/// indexes it fetches in `keep` when given.
pub async fn size_jobs(
    registry: &dyn Registry,
    retry: &RetryPolicy,
    jobs: &mut [BottleJob],
    concurrency: usize,
    keep: Option<&dyn BlobStore>,
) -> SizingReport {
    let groups = by_image_index(jobs);
    let mut report = SizingReport {
        manifest_requests: groups.len(),
        ..SizingReport::default()
    };
    let shared: &[BottleJob] = jobs;
    let lookups: Vec<(Vec<usize>, Option<ImageIndex>, bool)> = stream::iter(groups)
        .map(|members| {
            let first = shared[members[0]].clone();
            async move {
                let (index, stored) = fetch_image_index(registry, retry, first, keep).await;
                (members, index, stored)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut need_head = Vec::new();
    for (members, index, stored) in lookups {
        report.image_indexes_stored += usize::from(stored);
        for i in members {
            match index
                .as_ref()
                .and_then(|index| index.size_of(&jobs[i].sha256))
            {
                Some(size) => {
                    jobs[i].size = size;
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
