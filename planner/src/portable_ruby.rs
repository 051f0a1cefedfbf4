//! Portable Ruby's part of a plan (see `bottlesync_core::plan::portable_ruby`):
//! the image's tag list, then each chosen version's image index, read
//! through the registry port with the same auth as bottles. Its bottles are
//! then planned as ordinary jobs ([`add_jobs`]): sized (which keeps their
//! image index at `bottles/portable-ruby/manifests/<version>`), fetched,
//! verified and stored, flat-copied and recorded like any bottle, all before
//! the API files are published.

use std::collections::HashSet;

use bottlesync_core::plan::portable_ruby::{
    PORTABLE_RUBY, PortableRubyBottle, PortableRubyPlan, PortableRubySetting, blob_url,
    bottles_in_index, choose_versions, ruby_tags_for, version_tags,
};
use bottlesync_core::plan::select::Plan;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::{Error, Result, Sha256Digest, Tag};
use chrono::NaiveDate;
use url::Url;

/// What the run's Portable Ruby is, for the client tags it mirrors.
/// Errors: a pinned version the registry lacks (or an image it lacks
/// altogether), and a registry that fails (after retries); a registry
/// without the image under `auto`, or a version without a family's
/// bottle, is a warning in the plan and the run goes on.
pub async fn fetch_portable_ruby(
    registry: &dyn Registry,
    retry: &RetryPolicy,
    registry_root: &str,
    (setting_name, setting): (&str, &PortableRubySetting),
    clients: &[Tag],
) -> Result<PortableRubyPlan> {
    let mut plan = PortableRubyPlan::default();
    let families = ruby_tags_for(clients);
    if *setting == PortableRubySetting::Off || families.is_empty() {
        return Ok(plan);
    }
    let repository = Url::parse(&format!("{registry_root}/{PORTABLE_RUBY}"))
        .map_err(|e| Error::config("registry", format!("{registry_root:?}: {e}")))?;
    let available = match retry.run(|| registry.tag_list(&repository)).await {
        Ok(tags) => version_tags(tags),
        Err(e) if e.is_not_found() && *setting == PortableRubySetting::Auto => {
            let warning = format!(
                "the registry has no {PORTABLE_RUBY} image ({e}): the mirror gets no Portable Ruby, so a fresh client cannot start brew from it"
            );
            tracing::warn!("{warning}");
            plan.warnings.push(warning);
            return Ok(plan);
        }
        Err(e) if e.is_not_found() => {
            return Err(Error::config(
                setting_name,
                format!(
                    "the registry has no {PORTABLE_RUBY} image, so no Portable Ruby {setting} ({e})"
                ),
            ));
        }
        Err(e) => return Err(e),
    };
    plan.versions = choose_versions(setting, &available)
        .map_err(|problem| Error::config(setting_name, problem))?;
    if plan.versions.is_empty() {
        let warning = format!("{repository} has no version tags: no Portable Ruby planned");
        tracing::warn!("{warning}");
        plan.warnings.push(warning);
    }
    for version in &plan.versions {
        let index_source = format!("{repository}/manifests/{version}");
        // The port addresses an image index by a blob URL of its image
        // (only the repository part is used); Ruby's digests come from
        // this very index, so any digest serves.
        let any_blob = blob_url(registry_root, &Sha256Digest::from_bytes(&[0; 32]))?;
        let bytes = retry
            .run(|| registry.image_index(&any_blob, version))
            .await?;
        let bottles = bottles_in_index(&index_source, version, &bytes)?;
        for family in &families {
            match bottles.get(family) {
                Some(sha256) => plan.bottles.push(PortableRubyBottle {
                    version: version.clone(),
                    tag: family.clone(),
                    url: blob_url(registry_root, sha256)?,
                    sha256: sha256.clone(),
                }),
                None => {
                    let warning = format!(
                        "{PORTABLE_RUBY} {version} has no {family} bottle ({index_source}): its clients fetch Ruby upstream"
                    );
                    tracing::warn!("{warning}");
                    plan.warnings.push(warning);
                }
            }
        }
    }
    tracing::info!(
        versions = %plan.versions.join(","),
        bottles = plan.bottles.len(),
        "Portable Ruby planned"
    );
    Ok(plan)
}

/// Adds the Ruby bottles to `plan` as jobs, sorted as `plan_for_clients`
/// sorts formula bottles: held by the mirror, listed by an external hash
/// file, or to fetch; a digest the plan already has is not added twice.
pub fn add_jobs(
    plan: &mut Plan,
    ruby: &PortableRubyPlan,
    date: NaiveDate,
    mirrored: &HashSet<Sha256Digest>,
    external: &HashSet<Sha256Digest>,
) -> Result<()> {
    let mut seen: HashSet<Sha256Digest> = plan
        .jobs
        .iter()
        .chain(&plan.already_mirrored)
        .chain(&plan.in_hash_file)
        .map(|job| job.sha256.clone())
        .collect();
    for bottle in &ruby.bottles {
        if !seen.insert(bottle.sha256.clone()) {
            continue;
        }
        plan.add(bottle.job(date)?, mirrored, external);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use bottlesync_core::ports::registry::BlobBody;

    use super::*;

    /// A registry with a `portable-ruby` image of two versions; 3.4.8 has
    /// no arm64_linux bottle.
    struct RubyRegistry {
        has_image: bool,
    }

    fn sha(seed: u8) -> Sha256Digest {
        Sha256Digest::from_bytes(&[seed; 32])
    }

    fn index(version: &str, tags: &[(&str, u8)]) -> Vec<u8> {
        let manifests: Vec<serde_json::Value> = tags
            .iter()
            .map(|(tag, seed)| {
                serde_json::json!({"annotations": {
                    "org.opencontainers.image.ref.name": format!("{version}.{tag}"),
                    "sh.brew.bottle.digest": sha(*seed).to_string(),
                }})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "manifests": manifests })).unwrap()
    }

    #[async_trait]
    impl Registry for RubyRegistry {
        async fn get_document(&self, url: &Url, _max_bytes: u64) -> Result<Vec<u8>> {
            Err(Error::permanent_fetch(url.as_str(), "HTTP 404 Not Found"))
        }
        async fn open_blob(&self, url: &Url, _offset: u64) -> Result<BlobBody> {
            Err(Error::permanent_fetch(url.as_str(), "not here"))
        }
        async fn blob_size(&self, _url: &Url) -> Result<Option<u64>> {
            Ok(None)
        }
        async fn image_index(&self, blob_url: &Url, version: &str) -> Result<Vec<u8>> {
            assert!(blob_url.path().contains("/portable-ruby/blobs/"));
            Ok(match version {
                "4.0.6" => index(
                    version,
                    &[
                        ("arm64_big_sur", 1),
                        ("catalina", 2),
                        ("x86_64_linux", 3),
                        ("arm64_linux", 4),
                    ],
                ),
                _ => index(
                    version,
                    &[("arm64_big_sur", 5), ("catalina", 6), ("x86_64_linux", 7)],
                ),
            })
        }
        async fn tag_list(&self, repository: &Url) -> Result<Vec<String>> {
            assert_eq!(
                repository.as_str(),
                "https://r.example/v2/homebrew/core/portable-ruby"
            );
            if !self.has_image {
                return Err(Error::permanent_fetch(
                    repository.as_str(),
                    "HTTP 404 Not Found",
                ));
            }
            Ok(["3.3.7", "4.0.6", "latest", "3.4.8"]
                .map(String::from)
                .into())
        }
    }

    const ROOT: &str = "https://r.example/v2/homebrew/core";

    fn clients(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| Tag::parse(n).unwrap()).collect()
    }

    async fn fetch(
        has_image: bool,
        setting: PortableRubySetting,
        tags: &[&str],
    ) -> Result<PortableRubyPlan> {
        fetch_portable_ruby(
            &RubyRegistry { has_image },
            &RetryPolicy::default(),
            ROOT,
            ("--portable-ruby", &setting),
            &clients(tags),
        )
        .await
    }

    #[tokio::test]
    async fn auto_plans_the_two_newest_versions_for_the_mirrored_families() {
        let plan = fetch(
            true,
            PortableRubySetting::Auto,
            &["arm64_tahoe", "tahoe", "arm64_linux"],
        )
        .await
        .unwrap();
        assert_eq!(plan.versions, ["4.0.6", "3.4.8"]);
        assert_eq!(
            plan.labels(),
            [
                "portable-ruby 4.0.6 arm64_big_sur",
                "portable-ruby 4.0.6 catalina",
                "portable-ruby 4.0.6 arm64_linux",
                "portable-ruby 3.4.8 arm64_big_sur",
                "portable-ruby 3.4.8 catalina",
            ]
        );
        assert_eq!(
            plan.bottles[0].url.as_str(),
            format!("{ROOT}/portable-ruby/blobs/sha256:{}", sha(1))
        );
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("3.4.8 has no arm64_linux bottle"));
    }

    #[tokio::test]
    async fn a_missing_image_warns_under_auto_and_fails_a_pinned_version() {
        let plan = fetch(false, PortableRubySetting::Auto, &["arm64_tahoe"])
            .await
            .unwrap();
        assert!(plan.bottles.is_empty());
        assert!(
            plan.warnings[0].contains("no portable-ruby image"),
            "{:?}",
            plan.warnings
        );
        let err = fetch(
            false,
            PortableRubySetting::Version("4.0.6".into()),
            &["arm64_tahoe"],
        )
        .await
        .unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("--portable-ruby")
                && err.contains("no portable-ruby image")
                && err.contains("404"),
            "{err}"
        );
        let err = fetch(
            true,
            PortableRubySetting::Version("9.9.9".into()),
            &["arm64_tahoe"],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--portable-ruby") && err.contains("9.9.9"),
            "{err}"
        );
        let off = fetch(true, PortableRubySetting::Off, &["arm64_tahoe"])
            .await
            .unwrap();
        assert_eq!(off, PortableRubyPlan::default());
    }

    #[tokio::test]
    async fn jobs_are_sorted_like_bottles() {
        let ruby = fetch(
            true,
            PortableRubySetting::Version("4.0.6".into()),
            &["arm64_tahoe", "tahoe", "x86_64_linux"],
        )
        .await
        .unwrap();
        let mut plan = Plan::default();
        let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        add_jobs(
            &mut plan,
            &ruby,
            date,
            &HashSet::from([sha(1)]),
            &HashSet::from([sha(2)]),
        )
        .unwrap();
        assert_eq!(plan.already_mirrored.len(), 1);
        assert_eq!(plan.in_hash_file.len(), 1);
        assert_eq!(
            plan.jobs.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
            ["2026-11-29/portable-ruby-4.0.6.x86_64_linux.bottle.tar.gz"]
        );
        // Planned again (a second call): nothing added twice.
        add_jobs(&mut plan, &ruby, date, &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(plan.jobs.len(), 1);
    }
}
