//! The one plan pipeline, for `bottlesync sync` and the fleet planner alike:
//! fetch the index, the per-tag API files of the mirrored tags and any
//! external hash file ([`fetch_inputs`]), then, with what the caller's
//! mirror holds ([`MirrorView`]), plan from what clients request, set aside
//! bottles in flight, size the rest (keeping the image indexes fetched on
//! the way) and estimate what could not be sized ([`prepare`]). Two steps
//! because `sync` opens its destination (and takes its lease) only after
//! the inputs are good: a bad index, API file or hash file exits with
//! nothing touched.

use std::collections::{BTreeMap, HashMap, HashSet};

use bottlesync_core::brew::publish::ApiFiles;
use bottlesync_core::model::hash_file::{MirroredBottle, read_external_hashes};
use bottlesync_core::model::index::{FormulaIndex, HostPolicy};
use bottlesync_core::model::layout::BOTTLES_DIR;
use bottlesync_core::model::location::Location;
use bottlesync_core::plan::portable_ruby::{PortableRubyPlan, PortableRubySetting};
use bottlesync_core::plan::select::{
    Plan, PlanRequest, TagSelection, plan_for_clients, registry_root, resolve_tags,
};
use bottlesync_core::ports::documents::Documents;
use bottlesync_core::ports::fleet_ledger::BottleState;
use bottlesync_core::ports::registry::Registry;
use bottlesync_core::ports::store::BlobStore;
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::{Result, Sha256Digest, SizeSource};
use chrono::{DateTime, Utc};
use url::Url;

use crate::index_source::{FetchedIndex, fetch_index, fetch_packages_files};
use crate::portable_ruby::fetch_portable_ruby;
use crate::sizing::{SizingReport, estimate_unknown_sizes, keep_image_indexes_complete, size_jobs};

/// Manifest and HEAD requests in flight at once while sizing.
pub const SIZING_CONCURRENCY: usize = 16;

/// The ports the pipeline reads through.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub registry: &'a dyn Registry,
    /// Where external hash files are read from (a path, `s3://`, `https://`).
    pub documents: &'a dyn Documents,
    pub retry: &'a RetryPolicy,
    /// The mirror the image indexes fetched while sizing are kept in
    /// (`bottles/<image>/manifests/<ref>`); `None` for a dry run.
    pub mirror: Option<&'a dyn BlobStore>,
}

/// Where the formula index is, which bottle hosts it may name, and which
/// tags' per-tag API files to fetch.
#[derive(Clone, Copy)]
pub struct IndexSource<'a> {
    pub api_url: &'a Url,
    pub hosts: &'a HostPolicy,
    pub tags: &'a TagSelection,
    /// Which Portable Ruby versions to mirror, and the setting's name.
    pub portable_ruby: (&'a str, &'a PortableRubySetting),
}

/// An external hash file the settings name.
pub struct ExternalHashFile {
    /// The setting parsed (a bad one is an unusable file like any other).
    pub location: Result<Location>,
    /// Whether planning must stop when it cannot be read; otherwise it
    /// plans without it, logs why, and reports it in
    /// [`Inputs::external_hash_file_error`].
    pub required: bool,
}

/// What planning starts from, before the mirror is read.
pub struct Inputs {
    pub index: FormulaIndex,
    /// The API files clients install from, as fetched: the per-tag files
    /// of the mirrored tags upstream has, and `formula.jws.json` when the
    /// index came from it. The plan follows them and they are published
    /// once its bottles are in (the caller sets `api.scope`).
    pub api: ApiFiles,
    /// Bottles an external hash file lists (the mirror need not fetch them).
    pub external: HashSet<Sha256Digest>,
    /// Why an optional external hash file was not used.
    pub external_hash_file_error: Option<String>,
    /// The Portable Ruby bottles of the mirrored client tags (also in
    /// `api.portable_ruby`, for the published record).
    pub portable_ruby: PortableRubyPlan,
}

/// Fetches and validates the index, then reads the external hash file.
pub async fn fetch_inputs(
    sources: Sources<'_>,
    index_source: IndexSource<'_>,
    external_hash_file: Option<ExternalHashFile>,
) -> Result<Inputs> {
    // The files' generation: an older plan's files never replace these.
    let fetched_at = chrono::Utc::now();
    let FetchedIndex { index, formula_jws } = fetch_index(
        sources.registry,
        sources.retry,
        index_source.api_url,
        index_source.hosts,
    )
    .await?;
    let tags = resolve_tags(&index, index_source.tags)?;
    let packages =
        fetch_packages_files(sources.registry, sources.retry, index_source.api_url, &tags).await?;
    let mut inputs = Inputs {
        index,
        api: ApiFiles {
            packages,
            formula_jws,
            scope: Default::default(),
            portable_ruby: Vec::new(),
            fetched_at,
        },
        external: HashSet::new(),
        external_hash_file_error: None,
        portable_ruby: PortableRubyPlan::default(),
    };
    // Before the mirror is opened: a pinned version the registry lacks
    // exits with nothing written.
    inputs.portable_ruby = fetch_portable_ruby(
        sources.registry,
        sources.retry,
        &registry_root(&inputs.index),
        index_source.portable_ruby,
        &tags,
    )
    .await?;
    inputs.api.portable_ruby = inputs
        .portable_ruby
        .bottles
        .iter()
        .map(|b| b.wanted())
        .collect();
    let Some(file) = external_hash_file else {
        return Ok(inputs);
    };
    let loaded = match file.location {
        Ok(location) => read_external_hashes(&location, sources.documents).await,
        Err(e) => Err(e),
    };
    match loaded {
        Ok(hashes) => {
            tracing::info!(
                count = hashes.digests.len(),
                format = hashes.format,
                "read external hash file"
            );
            inputs.external = hashes.digests.into_iter().collect();
        }
        Err(e) if file.required => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "external hash file unavailable; planning without it");
            inputs.external_hash_file_error = Some(e.to_string());
        }
    }
    Ok(inputs)
}

/// What the mirror holds, as planning needs it.
#[derive(Clone, Debug, Default)]
pub struct MirrorView {
    /// Bottles recorded as stored.
    pub stored: HashSet<Sha256Digest>,
    /// Bottles a live run has queued or is downloading (the fleet's ledger
    /// knows; a `sync` destination has none).
    pub in_flight: HashSet<Sha256Digest>,
    /// The size of the last stored bottle of each (formula, tag): the
    /// estimate for a bottle the registry could not size.
    pub previous_sizes: HashMap<(String, String), u64>,
    /// When each `previous_sizes` entry was stored.
    previous_at: HashMap<(String, String), DateTime<Utc>>,
}

impl MirrorView {
    /// From a ledger of stored bottles (`sync`'s journal ledger).
    pub fn from_stored(bottles: BTreeMap<Sha256Digest, MirroredBottle>) -> Self {
        let mut view = MirrorView::default();
        for (sha, bottle) in bottles {
            view.record_stored(sha, &bottle);
        }
        view
    }

    /// From the fleet ledger's bottle states: a queued mark or a claim that
    /// has not expired at `now` is in flight.
    pub fn from_bottle_states(
        states: BTreeMap<Sha256Digest, BottleState>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut view = MirrorView::default();
        for (sha, state) in states {
            match state {
                BottleState::Stored(bottle) => view.record_stored(sha, &bottle),
                BottleState::Queued { until, .. } if until > now => {
                    view.in_flight.insert(sha);
                }
                BottleState::Claimed { lease_expires, .. } if lease_expires > now => {
                    view.in_flight.insert(sha);
                }
                _ => {}
            }
        }
        view
    }

    fn record_stored(&mut self, sha: Sha256Digest, bottle: &MirroredBottle) {
        let formula_tag = (bottle.name.clone(), bottle.tag.to_string());
        let newer = self
            .previous_at
            .get(&formula_tag)
            .is_none_or(|at| bottle.downloaded_at >= *at);
        if newer {
            self.previous_at
                .insert(formula_tag.clone(), bottle.downloaded_at);
            self.previous_sizes.insert(formula_tag, bottle.size);
        }
        self.stored.insert(sha);
    }
}

/// A plan ready to send or fetch: its jobs sized, none of size zero.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub plan: Plan,
    /// Wanted bottles left out because a live run has them.
    pub in_flight: usize,
    pub sizing: SizingReport,
    /// Sizes neither the manifest nor Content-Length gave: estimated from
    /// an earlier bottle of the same formula and tag, else the default.
    pub estimated: usize,
}

/// Plans against `mirror` from what [`fetch_inputs`] returned, warns about
/// dependencies the index lacks, drops bottles in flight, sizes the rest
/// (keeping their image indexes, and those of mirrored bottles the mirror
/// has none for) and estimates unknown sizes.
pub async fn prepare(
    sources: Sources<'_>,
    inputs: &Inputs,
    request: &PlanRequest,
    mirror: &MirrorView,
) -> Result<Prepared> {
    let mut plan = plan_for_clients(
        &inputs.index,
        &inputs.api.packages,
        request,
        &mirror.stored,
        &inputs.external,
    )?;
    crate::portable_ruby::add_jobs(
        &mut plan,
        &inputs.portable_ruby,
        request.date,
        &mirror.stored,
        &inputs.external,
    )?;
    for missing in &plan.missing_dependencies {
        tracing::warn!("dependency {missing:?} is not in the formula index");
    }
    if let Some(first) = plan.disagreements.first() {
        tracing::warn!(
            count = plan.disagreements.len(),
            first = %first,
            "the per-tag API files and the formula index disagree on some bottles (files of different builds): following the per-tag files, which clients install from"
        );
    }
    let wanted = plan.jobs.len();
    plan.jobs
        .retain(|job| !mirror.in_flight.contains(&job.sha256));
    let in_flight = wanted - plan.jobs.len();
    let mut sizing = size_jobs(
        sources.registry,
        sources.retry,
        &mut plan.jobs,
        SIZING_CONCURRENCY,
        sources.mirror,
    )
    .await;
    if let Some(store) = sources.mirror {
        let present: HashSet<_> = store
            .list(BOTTLES_DIR)
            .await?
            .into_iter()
            .filter(|key| key.as_str().contains("/manifests/"))
            .collect();
        sizing.image_indexes_stored += keep_image_indexes_complete(
            sources.registry,
            sources.retry,
            store,
            &plan.already_mirrored,
            &present,
            SIZING_CONCURRENCY,
        )
        .await;
    }
    let estimated = estimate_unknown_sizes(&mut plan.jobs, &mirror.previous_sizes);
    if estimated > 0 {
        let from_earlier_bottles = plan
            .jobs
            .iter()
            .filter(|job| job.size_source == SizeSource::PreviousBottle)
            .count();
        tracing::warn!(
            estimated,
            from_earlier_bottles,
            by_default = estimated - from_earlier_bottles,
            "bottle sizes estimated (no manifest size, no Content-Length): from the last stored bottle of the same formula and tag, else the default"
        );
    }
    Ok(Prepared {
        plan,
        in_flight,
        sizing,
        estimated,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use bottlesync_core::model::index::{BottleFile, Formula};
    use bottlesync_core::plan::select::TagSelection;
    use bottlesync_core::ports::registry::BlobBody;
    use bottlesync_core::{Error, ObjectKey, Tag};
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    /// A registry that can size nothing (no manifest size, no Content-Length).
    struct Unsizable;

    #[async_trait]
    impl Registry for Unsizable {
        async fn get_document(&self, url: &Url, _max_bytes: u64) -> Result<Vec<u8>> {
            Err(Error::config("url", format!("{url} is not served here")))
        }
        async fn open_blob(&self, url: &Url, _offset: u64) -> Result<BlobBody> {
            Err(Error::config("url", format!("{url} is not served here")))
        }
        async fn blob_size(&self, _url: &Url) -> Result<Option<u64>> {
            Ok(None)
        }
        async fn image_index(&self, _blob_url: &Url, _version_rebuild: &str) -> Result<Vec<u8>> {
            Ok(br#"{"manifests":[]}"#.to_vec())
        }
    }

    struct NoDocuments;

    #[async_trait]
    impl Documents for NoDocuments {
        async fn read(
            &self,
            _location: &Location,
            _max_bytes: u64,
        ) -> std::result::Result<Vec<u8>, String> {
            Err("no documents here".into())
        }
    }

    /// Log lines written while a test runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn sha(seed: u8) -> Sha256Digest {
        Sha256Digest::from_bytes(&[seed; 32])
    }

    fn formula(name: &str, seed: u8, dependencies: &[&str]) -> Formula {
        let sha = sha(seed);
        Formula {
            name: name.into(),
            version: "2.0".into(),
            revision: 0,
            rebuild: 0,
            disabled: false,
            deprecated: false,
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            uses_from_macos: vec![],
            bottles: vec![BottleFile {
                tag: Tag::parse("arm64_tahoe").unwrap(),
                url: format!("https://ghcr.io/v2/homebrew/core/{name}/blobs/sha256:{sha}")
                    .parse()
                    .unwrap(),
                sha256: sha,
            }],
            invalid_tags: vec![],
        }
    }

    /// wget (which needs curl and a formula the index lacks) and curl.
    fn index() -> FormulaIndex {
        FormulaIndex {
            formulae: vec![
                formula("wget", 1, &["curl", "nowhere"]),
                formula("curl", 2, &[]),
            ],
            rejections: vec![],
        }
    }

    fn request() -> PlanRequest {
        PlanRequest {
            tags: TagSelection::parse("--tags", "arm64_tahoe").unwrap(),
            formulae: vec!["wget".into()],
            with_deps: true,
            linux_host_formulae: true,
            include_disabled: false,
            date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
        }
    }

    /// An earlier wget bottle (another version: another sha256) of `size`.
    fn earlier_wget(seed: u8, size: u64, day: u32) -> (Sha256Digest, MirroredBottle) {
        let bottle = MirroredBottle {
            name: "wget".into(),
            version: "1.0".into(),
            rebuild: 0,
            tag: Tag::parse("arm64_tahoe").unwrap(),
            key: ObjectKey::parse(&format!(
                "2026-11-{day:02}/wget-1.0.arm64_tahoe.bottle.tar.gz"
            ))
            .unwrap(),
            size,
            downloaded_at: Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap(),
        };
        (sha(seed), bottle)
    }

    async fn prepared_with_logs(mirror: &MirrorView) -> (Prepared, String) {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let sources = Sources {
            registry: &Unsizable,
            documents: &NoDocuments,
            retry: &RetryPolicy::default(),
            mirror: None,
        };
        let inputs = Inputs {
            index: index(),
            api: ApiFiles::default(),
            external: HashSet::new(),
            external_hash_file_error: None,
            portable_ruby: PortableRubyPlan::default(),
        };
        let prepared = prepare(sources, &inputs, &request(), mirror).await.unwrap();
        (prepared, logs.text())
    }

    fn size_of(prepared: &Prepared, name: &str) -> (u64, SizeSource) {
        let job = prepared.plan.jobs.iter().find(|j| j.name == name).unwrap();
        (job.size, job.size_source)
    }

    /// `sync`'s mirror (its journal ledger's stored bottles) now sizes what
    /// the registry cannot from the last stored bottle of the formula and
    /// tag, and says so. Failed before: `sync` left such sizes at 0
    /// (`unknown`); only the fleet estimated them.
    #[tokio::test]
    async fn a_sync_mirror_estimates_unknown_sizes_from_its_last_earlier_bottle() {
        let mirror = MirrorView::from_stored(BTreeMap::from([
            earlier_wget(10, 4321, 20),
            earlier_wget(11, 1234, 10),
        ]));
        let (prepared, logs) = prepared_with_logs(&mirror).await;
        assert_eq!(
            size_of(&prepared, "wget"),
            (4321, SizeSource::PreviousBottle),
            "the newest earlier bottle's size"
        );
        assert_eq!(
            size_of(&prepared, "curl"),
            (crate::sizing::DEFAULT_SIZE_ESTIMATE, SizeSource::Default)
        );
        assert_eq!(prepared.estimated, 2);
        assert!(
            logs.contains("bottle sizes estimated")
                && logs.contains("from_earlier_bottles=1")
                && logs.contains("by_default=1"),
            "{logs}"
        );
    }

    /// The fleet's mirror (the ledger's bottle states) now warns about a
    /// requested dependency the index lacks, as `sync` did. Failed before:
    /// the fleet planner dropped `missing_dependencies` silently.
    #[tokio::test]
    async fn a_fleet_mirror_warns_about_missing_dependencies() {
        let (stored, bottle) = earlier_wget(10, 4321, 20);
        let now = Utc::now();
        let mirror = MirrorView::from_bottle_states(
            BTreeMap::from([
                (stored, BottleState::Stored(bottle)),
                (
                    sha(2),
                    BottleState::Queued {
                        run_id: "r1".into(),
                        until: now + chrono::Duration::hours(1),
                    },
                ),
            ]),
            now,
        );
        let (prepared, logs) = prepared_with_logs(&mirror).await;
        assert!(
            logs.contains("dependency \"nowhere\" is not in the formula index"),
            "{logs}"
        );
        // curl is queued by a live run: left to it.
        assert_eq!(prepared.in_flight, 1);
        assert_eq!(
            prepared
                .plan
                .jobs
                .iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>(),
            ["wget"]
        );
        assert_eq!(
            size_of(&prepared, "wget"),
            (4321, SizeSource::PreviousBottle)
        );
    }

    /// An unreadable optional hash file is reported, a required one fails.
    #[tokio::test]
    async fn an_unreadable_hash_file_fails_only_when_required() {
        let index_json = b"[]".to_vec();
        struct IndexOnly(Vec<u8>);
        #[async_trait]
        impl Registry for IndexOnly {
            async fn get_document(&self, url: &Url, _max_bytes: u64) -> Result<Vec<u8>> {
                if url.path().ends_with("/formula.jws.json") {
                    Ok(self.0.clone())
                } else {
                    Err(Error::permanent_fetch(url.as_str(), "HTTP 404 Not Found"))
                }
            }
            async fn open_blob(&self, url: &Url, offset: u64) -> Result<BlobBody> {
                Unsizable.open_blob(url, offset).await
            }
            async fn blob_size(&self, url: &Url) -> Result<Option<u64>> {
                Unsizable.blob_size(url).await
            }
            async fn image_index(&self, blob_url: &Url, version_rebuild: &str) -> Result<Vec<u8>> {
                Unsizable.image_index(blob_url, version_rebuild).await
            }
        }
        let registry = IndexOnly(index_json);
        let retry = RetryPolicy::default();
        let sources = Sources {
            registry: &registry,
            documents: &NoDocuments,
            retry: &retry,
            mirror: None,
        };
        let api_url: Url = "https://formulae.brew.sh/api".parse().unwrap();
        let hosts = HostPolicy::new(&api_url, &[]);
        let file = |required| ExternalHashFile {
            location: Location::parse("--hash-file", "/nowhere/bottles_hash.json", true),
            required,
        };
        let source = IndexSource {
            api_url: &api_url,
            hosts: &hosts,
            tags: &TagSelection::parse("--tags", "arm64_tahoe").unwrap(),
            portable_ruby: ("--portable-ruby", &PortableRubySetting::Auto),
        };
        let optional = fetch_inputs(sources, source, Some(file(false)))
            .await
            .unwrap();
        assert!(
            optional
                .external_hash_file_error
                .as_deref()
                .is_some_and(|e| e.contains("no documents here")),
            "{:?}",
            optional.external_hash_file_error
        );
        let required = fetch_inputs(sources, source, Some(file(true))).await;
        assert!(required.is_err());
    }
}
