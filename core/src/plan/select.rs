//! Which bottles a mirror needs: the selected tags (or `auto`), the bottle a
//! client on each tag really installs (fallbacks included), minus what the
//! mirror or an external hash file already has.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::brew::publish::MirrorScope;
use crate::model::index::{Formula, FormulaIndex};
use crate::model::layout::packages_file_name;
use crate::model::naming::{image_name, mirror_file_name, pkg_version};
use crate::model::packages::{DependencyRules, PackagesFile, dependency_closure};
use crate::model::tag::{auto_tags, installed_tag};
use crate::{BottleJob, Error, ObjectKey, Result, Sha256Digest, SizeSource, Tag};
use chrono::NaiveDate;
use url::Url;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagSelection {
    Auto,
    Explicit(Vec<Tag>),
}

impl TagSelection {
    /// `auto` or a comma-separated list of tags.
    pub fn parse(setting: &str, text: &str) -> Result<Self> {
        if text.trim() == "auto" {
            return Ok(TagSelection::Auto);
        }
        let tags = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Tag::parse(t).map_err(|p| Error::config(setting, p)))
            .collect::<Result<Vec<_>>>()?;
        if tags.is_empty() {
            return Err(Error::config(
                setting,
                "names no tags (use `auto` or T1,T2,...)",
            ));
        }
        Ok(TagSelection::Explicit(tags))
    }
}

#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub tags: TagSelection,
    /// Only these formulae (all when empty).
    pub formulae: Vec<String>,
    /// With `formulae`: add the closure of their runtime dependencies.
    pub with_deps: bool,
    /// With `with_deps`, on Linux tags: also `glibc` and `gcc`, which brew
    /// installs with everything on hosts with an older glibc.
    pub linux_host_formulae: bool,
    pub include_disabled: bool,
    /// The dated folder new bottles go to.
    pub date: NaiveDate,
}

impl PlanRequest {
    pub fn rules(&self) -> DependencyRules {
        DependencyRules {
            with_deps: self.with_deps,
            linux_host_formulae: self.linux_host_formulae,
        }
    }

    /// What the mirror serves once this plan's bottles are in: the scope
    /// its published API files are checked against.
    pub fn scope(&self) -> MirrorScope {
        MirrorScope {
            formulae: self.formulae.clone(),
            with_deps: self.with_deps,
            linux_host_formulae: self.linux_host_formulae,
            include_disabled: self.include_disabled,
        }
    }
}

/// A client tag a wanted formula cannot be served for, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    pub formula: String,
    pub tag: Tag,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub tags: Vec<Tag>,
    /// Bottles to fetch, one per sha256.
    pub jobs: Vec<BottleJob>,
    /// Wanted bottles the mirror already holds.
    pub already_mirrored: Vec<BottleJob>,
    /// Wanted bottles an external hash file lists.
    pub in_hash_file: Vec<BottleJob>,
    pub skipped_disabled: Vec<String>,
    /// Requested dependencies that are not in the index.
    pub missing_dependencies: Vec<String>,
    pub unavailable: Vec<Unavailable>,
    pub formulae_considered: usize,
    /// Bottles a per-tag API file names that `formula.json` lists with
    /// another digest (files of different builds); the per-tag file wins.
    pub disagreements: Vec<String>,
    /// Entries of the per-tag API files in scope that were set aside as
    /// unreadable, each named with its file: their bottles are not mirrored.
    pub rejected_client_entries: Vec<String>,
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.jobs.iter().map(|j| j.size).sum()
    }

    /// Largest first (then by key): `sync`'s order, so the long downloads
    /// start early and finish together, and its plan prints that way.
    pub fn sort_largest_first(&mut self) {
        self.jobs
            .sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.key.cmp(&b.key)));
    }

    /// Files a wanted bottle: held by the mirror (`mirrored`), listed by an
    /// external hash file (`external`), or to fetch.
    pub fn add(
        &mut self,
        job: BottleJob,
        mirrored: &HashSet<Sha256Digest>,
        external: &HashSet<Sha256Digest>,
    ) {
        if mirrored.contains(&job.sha256) {
            self.already_mirrored.push(job);
        } else if external.contains(&job.sha256) {
            self.in_hash_file.push(job);
        } else {
            self.jobs.push(job);
        }
    }
}

/// The client tags a run mirrors: the explicit list, or for `auto` the
/// newest macOS releases the index has bottles for.
pub fn resolve_tags(index: &FormulaIndex, selection: &TagSelection) -> Result<Vec<Tag>> {
    match selection {
        TagSelection::Explicit(tags) => Ok(tags.clone()),
        TagSelection::Auto => {
            let present: BTreeSet<Tag> = index.formulae.iter().flat_map(Formula::tags).collect();
            let tags = auto_tags(&present);
            if tags.is_empty() {
                return Err(Error::Index {
                    source_name: "formula index".into(),
                    problem:
                        "has no bottles for any known macOS release (--tags auto found nothing)"
                            .into(),
                });
            }
            Ok(tags)
        }
    }
}

/// Plans a run from the formula index alone (no per-tag API files).
pub fn plan(
    index: &FormulaIndex,
    request: &PlanRequest,
    mirrored: &HashSet<Sha256Digest>,
    external: &HashSet<Sha256Digest>,
) -> Result<Plan> {
    plan_for_clients(index, &BTreeMap::new(), request, mirrored, external)
}

/// Plans a run. For a tag with a per-tag API file in `clients`, the
/// bottles are exactly the ones that file names (what brew >= 6 on that
/// tag requests, dependencies from its `stable_dependencies`); for any
/// other tag they are worked out from the index with the fallback rule.
/// `mirrored` is what the ledger records as stored, `external` what an
/// external hash file lists. Fails only on bad requests (unknown formula,
/// no tags); bad index entries were already set aside.
pub fn plan_for_clients(
    index: &FormulaIndex,
    clients: &BTreeMap<Tag, PackagesFile>,
    request: &PlanRequest,
    mirrored: &HashSet<Sha256Digest>,
    external: &HashSet<Sha256Digest>,
) -> Result<Plan> {
    let tags = resolve_tags(index, &request.tags)?;
    let mut plan = Plan {
        tags: tags.clone(),
        ..Plan::default()
    };
    check_requested(index, request)?;
    let registry_root = registry_root(index);
    // `FormulaIndex::get` scans; per-tag planning looks up every entry.
    let by_name: HashMap<&str, &Formula> = index
        .formulae
        .iter()
        .map(|f| (f.name.as_str(), f))
        .collect();
    let mut seen = HashSet::new();
    let mut considered = HashSet::new();
    let mut disabled = BTreeSet::new();
    for client in &tags {
        if let Some(file) = clients.get(client) {
            plan.rejected_client_entries.extend(
                file.rejections_in_scope(&request.formulae, request.rules())
                    .into_iter()
                    .map(|r| format!("{}: {r}", packages_file_name(client))),
            );
        }
        let bottles = match clients.get(client) {
            Some(file) => client_file_bottles(
                file,
                &by_name,
                request,
                &registry_root,
                &mut plan.missing_dependencies,
                &mut plan.disagreements,
            ),
            None => {
                let wanted =
                    wanted_formulae(index, request, client, &mut plan.missing_dependencies);
                index_bottles(&wanted, client, request, &mut plan.unavailable)
            }
        };
        for (formula, bottle) in bottles {
            if formula.disabled && !request.include_disabled {
                disabled.insert(formula.name.clone());
                continue;
            }
            considered.insert(formula.name.clone());
            let Some(bottle) = bottle else { continue };
            if !seen.insert(bottle.sha256.clone()) {
                continue;
            }
            let file_name = mirror_file_name(
                &formula.name,
                &pkg_version(&formula.version, formula.revision),
                bottle.tag.as_str(),
                formula.rebuild,
            );
            let job = BottleJob {
                name: formula.name.clone(),
                version: formula.version.clone(),
                revision: formula.revision,
                rebuild: formula.rebuild,
                tag: bottle.tag,
                sha256: bottle.sha256,
                url: bottle.url,
                size: 0,
                size_source: SizeSource::Unknown,
                key: ObjectKey::dated(request.date, &file_name)?,
            };
            plan.add(job, mirrored, external);
        }
    }
    plan.formulae_considered = considered.len();
    plan.skipped_disabled = disabled
        .into_iter()
        .filter(|name| !considered.contains(name))
        .collect();
    plan.missing_dependencies.sort();
    plan.missing_dependencies.dedup();
    Ok(plan)
}

/// What planning needs of one formula for one client tag.
struct Candidate {
    name: String,
    version: String,
    revision: u32,
    rebuild: u32,
    disabled: bool,
}

struct CandidateBottle {
    tag: Tag,
    sha256: Sha256Digest,
    url: Url,
}

/// The bottles a per-tag file names for the wanted formulae. The URL is
/// the index's where it lists that very bottle, else the registry blob URL
/// of the digest (the registry serves blobs by digest); a different digest
/// in the index for the same tag is a disagreement (the files come from
/// different builds), counted, and the per-tag file wins: it is what
/// clients on that tag request.
fn client_file_bottles(
    file: &PackagesFile,
    index: &HashMap<&str, &Formula>,
    request: &PlanRequest,
    registry_root: &str,
    missing: &mut Vec<String>,
    disagreements: &mut Vec<String>,
) -> Vec<(Candidate, Option<CandidateBottle>)> {
    // The dependencies are the ones brew on the file's tag installs, plus
    // the index's runtime ones where it lists more (the two may come from
    // different builds: an extra bottle costs less than a client falling
    // back upstream).
    let entries = if request.formulae.is_empty() {
        file.closure(&[], request.rules(), missing)
    } else {
        dependency_closure(
            &file.closure_roots(&request.formulae, request.rules()),
            request.with_deps,
            |name| file.formulae.get(name),
            |entry| {
                let mut all = entry.dependencies_on(&file.tag);
                if let Some(formula) = index.get(entry.name.as_str()) {
                    all.extend(formula.dependencies.iter().cloned());
                }
                all
            },
            missing,
        )
    };
    // A requested formula the file lacks is not a dependency gone missing.
    missing.retain(|name| !request.formulae.contains(name));
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let candidate = Candidate {
            name: entry.name.clone(),
            version: entry.version.clone(),
            revision: entry.revision,
            rebuild: entry.rebuild,
            // Disabled when either file says so (per-tag entries may leave
            // the flag out).
            disabled: entry.disabled || index.get(entry.name.as_str()).is_some_and(|f| f.disabled),
        };
        let bottle = entry.bottle.as_ref().map(|bottle| {
            let listed = index
                .get(entry.name.as_str())
                .and_then(|formula| formula.bottle(&bottle.tag));
            let url = match listed {
                Some(listed) if listed.sha256 == bottle.sha256 => listed.url.clone(),
                other => {
                    if other.is_some() {
                        disagreements.push(format!(
                            "{} {}: packages.{}.jws.json names {}, formula.json another bottle",
                            entry.name, bottle.tag, file.tag, bottle.sha256
                        ));
                    }
                    blob_url(registry_root, &entry.name, &bottle.sha256)
                }
            };
            CandidateBottle {
                tag: bottle.tag.clone(),
                sha256: bottle.sha256.clone(),
                url,
            }
        });
        out.push((candidate, bottle));
    }
    out
}

/// The bottles a client on `client` installs, worked out from the index
/// with the fallback rule (a tag upstream publishes no per-tag file for).
fn index_bottles(
    wanted: &[&Formula],
    client: &Tag,
    request: &PlanRequest,
    unavailable: &mut Vec<Unavailable>,
) -> Vec<(Candidate, Option<CandidateBottle>)> {
    let mut out = Vec::with_capacity(wanted.len());
    for formula in wanted {
        let candidate = Candidate {
            name: formula.name.clone(),
            version: formula.version.clone(),
            revision: formula.revision,
            rebuild: formula.rebuild,
            disabled: formula.disabled,
        };
        if formula.invalid_tags.iter().any(|t| t == client.as_str()) {
            if !formula.disabled || request.include_disabled {
                unavailable.push(Unavailable {
                    formula: formula.name.clone(),
                    tag: client.clone(),
                    reason: "its bottle entry was rejected".into(),
                });
            }
            out.push((candidate, None));
            continue;
        }
        let bottle = installed_tag(client, &formula.tags()).map(|tag| {
            let file = formula.bottle(tag).expect("tag taken from this formula");
            CandidateBottle {
                tag: tag.clone(),
                sha256: file.sha256.clone(),
                url: file.url.clone(),
            }
        });
        out.push((candidate, bottle));
    }
    out
}

/// The registry the index's bottle URLs point at (`<origin>/v2/<org>/<repo>`,
/// the most common one), for bottles a per-tag file names that the index
/// does not list; Homebrew's own when the index lists none.
pub fn registry_root(index: &FormulaIndex) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for formula in &index.formulae {
        let image = image_name(&formula.name);
        for bottle in &formula.bottles {
            let url = bottle.url.as_str();
            if let Some(root) = url
                .find(&format!("/{image}/blobs/"))
                .map(|at| url[..at].to_string())
            {
                *counts.entry(root).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(root, _)| root)
        .unwrap_or_else(|| DEFAULT_REGISTRY_ROOT.to_string())
}

/// Where Homebrew's bottles live.
pub const DEFAULT_REGISTRY_ROOT: &str = "https://ghcr.io/v2/homebrew/core";

fn blob_url(root: &str, formula: &str, sha256: &Sha256Digest) -> Url {
    Url::parse(&format!(
        "{root}/{}/blobs/sha256:{sha256}",
        image_name(formula)
    ))
    .expect("a registry root from a valid URL and a validated name make a URL")
}

/// Every `--formula` must be in the index.
fn check_requested(index: &FormulaIndex, request: &PlanRequest) -> Result<()> {
    match request.formulae.iter().find(|n| index.get(n).is_none()) {
        Some(unknown) => Err(Error::config(
            "--formula",
            format!("{unknown:?} is not in the formula index (or its entry was rejected)"),
        )),
        None => Ok(()),
    }
}

/// All formulae, or the requested ones plus what brew on `client`
/// installs with them (the index's runtime dependencies, `uses_from_macos`
/// where that client takes them from Homebrew, and on Linux the host
/// formulae), for a tag without a per-tag API file.
fn wanted_formulae<'a>(
    index: &'a FormulaIndex,
    request: &PlanRequest,
    client: &Tag,
    missing: &mut Vec<String>,
) -> Vec<&'a Formula> {
    if request.formulae.is_empty() {
        return index.formulae.iter().collect();
    }
    let roots = request
        .rules()
        .roots(&request.formulae, client, |name| index.get(name).is_some());
    dependency_closure(
        &roots,
        request.with_deps,
        |name| index.get(name),
        |formula| formula.dependencies_on(client),
        missing,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::index::BottleFile;

    fn formula(name: &str, tags: &[&str], deps: &[&str]) -> Formula {
        Formula {
            name: name.into(),
            version: "1.0".into(),
            revision: 0,
            rebuild: 0,
            disabled: false,
            deprecated: false,
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            uses_from_macos: vec![],
            bottles: tags
                .iter()
                .map(|t| {
                    let sha = Sha256Digest::from_bytes(&sha2_like(name, t));
                    BottleFile {
                        tag: Tag::parse(t).unwrap(),
                        url: format!("https://ghcr.io/v2/homebrew/core/{name}/blobs/sha256:{sha}")
                            .parse()
                            .unwrap(),
                        sha256: sha,
                    }
                })
                .collect(),
            invalid_tags: vec![],
        }
    }

    /// A distinct 32-byte value per (name, tag); no hashing needed here.
    fn sha2_like(name: &str, tag: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in name.bytes().chain([0]).chain(tag.bytes()).enumerate() {
            out[i % 32] ^= b.rotate_left(i as u32 % 8);
            out[(i * 7 + 3) % 32] = out[(i * 7 + 3) % 32].wrapping_add(b);
        }
        out
    }

    fn request(tags: &str) -> PlanRequest {
        PlanRequest {
            tags: TagSelection::parse("--tags", tags).unwrap(),
            formulae: vec![],
            with_deps: false,
            linux_host_formulae: true,
            include_disabled: false,
            date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
        }
    }

    fn index(formulae: Vec<Formula>) -> FormulaIndex {
        FormulaIndex {
            formulae,
            rejections: vec![],
        }
    }

    fn keys(plan: &Plan) -> Vec<&str> {
        let mut keys: Vec<&str> = plan.jobs.iter().map(|j| j.key.as_str()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn fallbacks_and_all_bottles_are_planned_once() {
        let idx = index(vec![
            formula(
                "new",
                &["arm64_tahoe", "tahoe", "arm64_sequoia", "sequoia"],
                &[],
            ),
            formula("old", &["arm64_sequoia", "sequoia", "arm64_sonoma"], &[]),
            formula("any", &["all"], &[]),
        ]);
        let plan = plan(&idx, &request("auto"), &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(
            plan.tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
            [
                "arm64_tahoe",
                "tahoe",
                "arm64_sequoia",
                "sequoia",
                "arm64_sonoma"
            ]
        );
        assert_eq!(
            keys(&plan),
            [
                "2026-11-29/any-1.0.all.bottle.tar.gz",
                "2026-11-29/new-1.0.arm64_sequoia.bottle.tar.gz",
                "2026-11-29/new-1.0.arm64_tahoe.bottle.tar.gz",
                "2026-11-29/new-1.0.sequoia.bottle.tar.gz",
                "2026-11-29/new-1.0.tahoe.bottle.tar.gz",
                "2026-11-29/old-1.0.arm64_sequoia.bottle.tar.gz",
                "2026-11-29/old-1.0.arm64_sonoma.bottle.tar.gz",
                "2026-11-29/old-1.0.sequoia.bottle.tar.gz",
            ]
        );
    }

    #[test]
    fn disabled_mirrored_and_external_are_left_out() {
        let mut gone = formula("gone", &["arm64_tahoe"], &[]);
        gone.disabled = true;
        let kept = formula("kept", &["arm64_tahoe", "tahoe"], &[]);
        let mirrored: HashSet<_> = [kept.bottles[0].sha256.clone()].into();
        let external: HashSet<_> = [kept.bottles[1].sha256.clone()].into();
        let idx = index(vec![gone, kept]);
        let plan = plan(&idx, &request("arm64_tahoe,tahoe"), &mirrored, &external).unwrap();
        assert!(plan.jobs.is_empty());
        assert_eq!(plan.skipped_disabled, ["gone"]);
        assert_eq!(plan.already_mirrored.len(), 1);
        assert_eq!(plan.in_hash_file.len(), 1);

        let mut req = request("arm64_tahoe");
        req.include_disabled = true;
        let plan = super::plan(&idx, &req, &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(
            keys(&plan)[0],
            "2026-11-29/gone-1.0.arm64_tahoe.bottle.tar.gz"
        );
    }

    #[test]
    fn formula_filter_with_dependency_closure() {
        let idx = index(vec![
            formula("wget", &["arm64_tahoe"], &["openssl@3", "nowhere"]),
            formula("openssl@3", &["arm64_tahoe"], &["ca-certificates"]),
            formula("ca-certificates", &["all"], &[]),
            formula("unrelated", &["arm64_tahoe"], &[]),
        ]);
        let mut req = request("arm64_tahoe");
        req.formulae = vec!["wget".into()];
        let alone = plan(&idx, &req, &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(
            keys(&alone),
            ["2026-11-29/wget-1.0.arm64_tahoe.bottle.tar.gz"]
        );
        req.with_deps = true;
        let closure = plan(&idx, &req, &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(
            keys(&closure),
            [
                "2026-11-29/ca-certificates-1.0.all.bottle.tar.gz",
                "2026-11-29/openssl@3-1.0.arm64_tahoe.bottle.tar.gz",
                "2026-11-29/wget-1.0.arm64_tahoe.bottle.tar.gz",
            ]
        );
        assert_eq!(closure.missing_dependencies, ["nowhere"]);
        req.formulae = vec!["nope".into()];
        let err = plan(&idx, &req, &HashSet::new(), &HashSet::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("\"nope\" is not in the formula index"),
            "{err}"
        );
    }

    /// A tag without a per-tag file: the index's `uses_from_macos` are
    /// dependencies on Linux (and below their bound on macOS), and Linux
    /// closures take glibc and gcc unless told not to.
    #[test]
    fn an_index_closure_follows_brew_on_each_tag() {
        use crate::model::packages::UsesFromMacos;
        let mut curl = formula(
            "curl",
            &["arm64_tahoe", "arm64_sonoma", "x86_64_linux"],
            &[],
        );
        curl.uses_from_macos = vec![
            UsesFromMacos {
                name: "zlib".into(),
                since: None,
                build_only: false,
            },
            UsesFromMacos {
                name: "expat".into(),
                since: Some("sequoia".into()),
                build_only: false,
            },
            UsesFromMacos {
                name: "m4".into(),
                since: None,
                build_only: true,
            },
        ];
        let all = ["arm64_tahoe", "arm64_sonoma", "x86_64_linux"];
        let idx = index(vec![
            curl,
            formula("zlib", &all, &[]),
            formula("expat", &all, &[]),
            formula("m4", &all, &[]),
            formula("glibc", &["x86_64_linux"], &[]),
            formula("gcc", &["x86_64_linux"], &[]),
        ]);
        let names = |tags: &str, hosts: bool| {
            let mut req = request(tags);
            req.formulae = vec!["curl".into()];
            req.with_deps = true;
            req.linux_host_formulae = hosts;
            let plan = plan(&idx, &req, &HashSet::new(), &HashSet::new()).unwrap();
            assert!(
                plan.missing_dependencies.is_empty(),
                "{:?}",
                plan.missing_dependencies
            );
            let mut names: Vec<String> = plan.jobs.iter().map(|j| j.name.clone()).collect();
            names.sort();
            names
        };
        assert_eq!(names("arm64_tahoe", true), ["curl"]);
        assert_eq!(names("arm64_sonoma", true), ["curl", "expat"]);
        assert_eq!(
            names("x86_64_linux", true),
            ["curl", "expat", "gcc", "glibc", "zlib"]
        );
        assert_eq!(names("x86_64_linux", false), ["curl", "expat", "zlib"]);
    }

    /// An entry of a per-tag file that cannot be read is counted and named
    /// by the plan (its bottle is never mirrored), once per file it is in.
    #[test]
    fn unreadable_per_tag_entries_are_named_by_the_plan() {
        let idx = index(vec![formula("ok", &["arm64_tahoe"], &[])]);
        let (tag, file) = packages(
            "arm64_tahoe",
            serde_json::json!({
                "ok": {"stable_version": "1.0", "bottle_checksum": "a".repeat(64)},
                "bad": {"stable_version": "1.0", "bottle_checksum": "a".repeat(64), "bottle_tag": ":not a tag"}
            }),
        );
        let plan = plan_for_clients(
            &idx,
            &BTreeMap::from([(tag, file)]),
            &request("arm64_tahoe"),
            &HashSet::new(),
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(plan.jobs.len(), 1);
        assert_eq!(
            plan.rejected_client_entries.len(),
            1,
            "{:?}",
            plan.rejected_client_entries
        );
        let named = &plan.rejected_client_entries[0];
        assert!(
            named.starts_with("packages.arm64_tahoe.jws.json: "),
            "{named}"
        );
        assert!(
            named.contains("\"bad\"") && named.contains("bottle_tag"),
            "{named}"
        );
    }

    #[test]
    fn a_rejected_exact_bottle_is_not_replaced_by_a_fallback() {
        let mut f = formula("x", &["arm64_sequoia"], &[]);
        f.invalid_tags = vec!["arm64_tahoe".into()];
        let plan = plan(
            &index(vec![f]),
            &request("arm64_tahoe"),
            &HashSet::new(),
            &HashSet::new(),
        )
        .unwrap();
        assert!(plan.jobs.is_empty());
        assert_eq!(plan.unavailable[0].formula, "x");
    }

    fn packages(tag: &str, formulae: serde_json::Value) -> (Tag, PackagesFile) {
        let tag = Tag::parse(tag).unwrap();
        let payload = serde_json::json!({"formulae": formulae}).to_string();
        let bytes = serde_json::to_vec(&serde_json::json!({"payload": payload})).unwrap();
        (tag.clone(), PackagesFile::parse(&tag, bytes).unwrap())
    }

    /// A tag with a per-tag file gets exactly the bottles it names (its
    /// fallback `bottle_tag`, its digest even where formula.json lists
    /// another, a registry URL built for a digest formula.json lacks); a
    /// tag without one is planned from the index as before.
    #[test]
    fn a_per_tag_file_decides_its_tags_bottles() {
        let wget = formula("wget", &["arm64_tahoe", "arm64_sequoia", "tahoe"], &[]);
        let idx = index(vec![wget.clone()]);
        let newer = "e".repeat(64);
        let (tag, file) = packages(
            "arm64_tahoe",
            serde_json::json!({
                "wget": {"stable_version": "1.1", "revision": 1, "bottle_rebuild": 2,
                         "bottle_checksum": newer, "bottle_tag": "arm64_sequoia"}
            }),
        );
        let clients = BTreeMap::from([(tag, file)]);
        let plan = plan_for_clients(
            &idx,
            &clients,
            &request("arm64_tahoe,tahoe"),
            &HashSet::new(),
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(
            keys(&plan),
            [
                "2026-11-29/wget-1.0.tahoe.bottle.tar.gz",
                "2026-11-29/wget-1.1_1.arm64_sequoia.bottle.2.tar.gz",
            ]
        );
        let from_file = plan.jobs.iter().find(|j| j.version == "1.1").unwrap();
        assert_eq!(from_file.sha256.as_str(), newer);
        assert_eq!(
            from_file.url.as_str(),
            format!("https://ghcr.io/v2/homebrew/core/wget/blobs/sha256:{newer}")
        );
        assert_eq!(plan.disagreements.len(), 1, "{:?}", plan.disagreements);
        // Where both agree, the index's own URL is kept.
        let tahoe = wget.bottle(&Tag::parse("tahoe").unwrap()).unwrap();
        let from_index = plan.jobs.iter().find(|j| j.version == "1.0").unwrap();
        assert_eq!(from_index.url, tahoe.url);
    }

    /// `--formula` with `--with-deps` over a per-tag file: its runtime
    /// `stable_dependencies`, a formula disabled in the index stays out.
    #[test]
    fn a_per_tag_closure_uses_its_runtime_dependencies() {
        let mut old = formula("old", &["arm64_tahoe"], &[]);
        old.disabled = true;
        let idx = index(vec![
            formula("app", &["arm64_tahoe"], &[]),
            formula("lib", &["arm64_tahoe"], &[]),
            formula("tool", &["arm64_tahoe"], &[]),
            old,
        ]);
        let bottle = |f: &Formula| f.bottles[0].sha256.to_string();
        let (tag, file) = packages(
            "arm64_tahoe",
            serde_json::json!({
                "app": {"stable_version": "1.0", "bottle_checksum": bottle(&idx.formulae[0]),
                        "stable_dependencies": ["lib", {"tool": "build"}, "old"]},
                "lib": {"stable_version": "1.0", "bottle_checksum": bottle(&idx.formulae[1])},
                "tool": {"stable_version": "1.0", "bottle_checksum": bottle(&idx.formulae[2])},
                "old": {"stable_version": "1.0", "bottle_checksum": bottle(&idx.formulae[3])}
            }),
        );
        let mut req = request("arm64_tahoe");
        req.formulae = vec!["app".into()];
        req.with_deps = true;
        let plan = plan_for_clients(
            &idx,
            &BTreeMap::from([(tag, file)]),
            &req,
            &HashSet::new(),
            &HashSet::new(),
        )
        .unwrap();
        let mut names: Vec<&str> = plan.jobs.iter().map(|j| j.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["app", "lib"]);
        assert_eq!(plan.skipped_disabled, ["old"]);
        assert!(plan.disagreements.is_empty());
    }
}
