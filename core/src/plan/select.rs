//! Which bottles a mirror needs: the selected tags (or `auto`), the bottle a
//! client on each tag really installs (fallbacks included), minus what the
//! mirror or an external hash file already has.

use std::collections::{BTreeSet, HashSet, VecDeque};

use crate::model::index::{Formula, FormulaIndex};
use crate::model::naming::mirror_file_name;
use crate::model::tag::{auto_tags, installed_tag};
use crate::{BottleJob, Error, ObjectKey, Result, Sha256Digest, SizeSource, Tag};
use chrono::NaiveDate;

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
    pub include_disabled: bool,
    /// The dated folder new bottles go to.
    pub date: NaiveDate,
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
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.jobs.iter().map(|j| j.size).sum()
    }
}

/// Plans a run. `mirrored` is what the ledger records as stored, `external`
/// what an external hash file lists. Fails only on bad requests (unknown
/// formula, no tags); bad index entries were already set aside.
pub fn plan(
    index: &FormulaIndex,
    request: &PlanRequest,
    mirrored: &HashSet<Sha256Digest>,
    external: &HashSet<Sha256Digest>,
) -> Result<Plan> {
    let tags = match &request.tags {
        TagSelection::Explicit(tags) => tags.clone(),
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
            tags
        }
    };
    let mut plan = Plan {
        tags: tags.clone(),
        ..Plan::default()
    };
    let wanted = wanted_formulae(index, request, &mut plan.missing_dependencies)?;
    let mut seen = HashSet::new();
    for formula in wanted {
        if formula.disabled && !request.include_disabled {
            plan.skipped_disabled.push(formula.name.clone());
            continue;
        }
        plan.formulae_considered += 1;
        let available = formula.tags();
        for client in &tags {
            if formula.invalid_tags.iter().any(|t| t == client.as_str()) {
                plan.unavailable.push(Unavailable {
                    formula: formula.name.clone(),
                    tag: client.clone(),
                    reason: "its bottle entry was rejected".into(),
                });
                continue;
            }
            let Some(tag) = installed_tag(client, &available) else {
                continue;
            };
            let bottle = formula.bottle(tag).expect("tag taken from this formula");
            if !seen.insert(bottle.sha256.clone()) {
                continue;
            }
            let file_name = mirror_file_name(
                &formula.name,
                &formula.pkg_version(),
                tag.as_str(),
                formula.rebuild,
            );
            let job = BottleJob {
                name: formula.name.clone(),
                version: formula.version.clone(),
                revision: formula.revision,
                rebuild: formula.rebuild,
                tag: tag.clone(),
                sha256: bottle.sha256.clone(),
                url: bottle.url.clone(),
                size: 0,
                size_source: SizeSource::Unknown,
                key: ObjectKey::dated(request.date, &file_name)?,
            };
            if mirrored.contains(&job.sha256) {
                plan.already_mirrored.push(job);
            } else if external.contains(&job.sha256) {
                plan.in_hash_file.push(job);
            } else {
                plan.jobs.push(job);
            }
        }
    }
    Ok(plan)
}

/// All formulae, or the requested ones (plus their dependency closure).
fn wanted_formulae<'a>(
    index: &'a FormulaIndex,
    request: &PlanRequest,
    missing: &mut Vec<String>,
) -> Result<Vec<&'a Formula>> {
    if request.formulae.is_empty() {
        return Ok(index.formulae.iter().collect());
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut queue: VecDeque<(&str, bool)> = request
        .formulae
        .iter()
        .map(|n| (n.as_str(), true))
        .collect();
    while let Some((name, requested)) = queue.pop_front() {
        if !seen.insert(name.to_string()) {
            continue;
        }
        let Some(formula) = index.get(name) else {
            if requested {
                return Err(Error::config(
                    "--formula",
                    format!(
                        "{:?} is not in the formula index (or its entry was rejected)",
                        name
                    ),
                ));
            }
            missing.push(name.to_string());
            continue;
        };
        if request.with_deps {
            queue.extend(formula.dependencies.iter().map(|d| (d.as_str(), false)));
        }
        out.push(formula);
    }
    Ok(out)
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
}
