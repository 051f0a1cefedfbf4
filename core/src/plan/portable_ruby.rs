//! Portable Ruby, which a fresh machine's first `brew` run downloads before
//! anything else (brew's `Library/Homebrew/cmd/vendor-install.sh`): it asks
//! `$HOMEBREW_BOTTLE_DOMAIN/portable-ruby-<version>.<tag>.bottle.tar.gz`,
//! the version from `Library/Homebrew/vendor/portable-ruby-version`, the
//! tag and sha256 from `vendor/portable-ruby-<arch>-<os>`. Upstream it is
//! the registry image `portable-ruby`: one tag per version, an OCI image
//! index per version whose `manifests[]` entries name `<version>.<tag>` and
//! the bottle's digest, as formula bottles do (homebrew.md, "Portable
//! Ruby"). The rules here have no I/O: which versions (`--portable-ruby`),
//! which Ruby tags serve the mirrored client tags, and the bottle jobs.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Deserialize;
use url::Url;

use crate::brew::publish::WantedBottle;
use crate::model::image_index::ImageIndex;
use crate::model::naming::{mirror_file_name, version_rebuild};
use crate::model::tag::{Arch, TagKind};
use crate::{BottleJob, Error, ObjectKey, Result, Sha256Digest, SizeSource, Tag};

/// The registry image (and the bottle name brew's file name starts with).
pub const PORTABLE_RUBY: &str = "portable-ruby";

/// How many versions `auto` mirrors: the newest, and the one before it for
/// clients a brew release behind (their `portable-ruby-version` pins it).
pub const AUTO_VERSIONS: usize = 2;

/// The Ruby tags, one per client family, in the order brew's
/// `vendor/portable-ruby-{arm64-darwin,x86_64-darwin,x86_64-linux,arm64-linux}`
/// name them: one Apple-silicon build serves every `arm64_<macos>` client,
/// one Intel build every Intel macOS client.
pub const RUBY_TAGS: [&str; 4] = ["arm64_big_sur", "catalina", "x86_64_linux", "arm64_linux"];

/// Refuse an absurd tag list page rather than read it into memory.
pub const MAX_TAG_LIST_BYTES: u64 = 4 * 1024 * 1024;

/// Pages a tag list may span (`Link: <...>; rel="next"`) before it is
/// refused as absurd.
pub const MAX_TAG_LIST_PAGES: usize = 100;

/// `--portable-ruby` / `BOTTLESYNC_PORTABLE_RUBY`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PortableRubySetting {
    /// The two newest versions the registry has.
    #[default]
    Auto,
    /// Exactly this version.
    Version(String),
    /// None.
    Off,
}

impl PortableRubySetting {
    /// `auto`, `off` or a version such as `4.0.6`; `setting` names the flag
    /// or variable in the error.
    pub fn parse(setting: &str, text: &str) -> Result<Self> {
        match text.trim() {
            "auto" => Ok(PortableRubySetting::Auto),
            "off" => Ok(PortableRubySetting::Off),
            version if RubyVersion::parse(version).is_some() => {
                Ok(PortableRubySetting::Version(version.to_string()))
            }
            other => Err(Error::config(
                setting,
                format!(
                    "{:?} is not auto, off or a Portable Ruby version such as 4.0.6",
                    crate::shorten(other, 80)
                ),
            )),
        }
    }
}

impl std::fmt::Display for PortableRubySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortableRubySetting::Auto => f.write_str("auto"),
            PortableRubySetting::Version(version) => f.write_str(version),
            PortableRubySetting::Off => f.write_str("off"),
        }
    }
}

/// A version tag of the image (`4.0.6`, `2.6.10_1`): numbers separated by
/// dots, and an optional `_<revision>`. Other tags (`latest`, digests) are
/// not versions and are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RubyVersion {
    numbers: Vec<u64>,
    revision: u64,
}

impl RubyVersion {
    pub fn parse(text: &str) -> Option<RubyVersion> {
        let (main, revision) = match text.split_once('_') {
            Some((main, revision)) => (main, number(revision)?),
            None => (text, 0),
        };
        let numbers = main.split('.').map(number).collect::<Option<Vec<_>>>()?;
        Some(RubyVersion { numbers, revision })
    }
}

/// A run of ASCII digits (no sign, no spaces), as a number.
fn number(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

impl Ord for RubyVersion {
    /// Numerically, component by component (`3.10` after `3.9`; `4.0`
    /// after `3.99`), then by revision.
    fn cmp(&self, other: &Self) -> Ordering {
        let width = self.numbers.len().max(other.numbers.len());
        let at = |v: &RubyVersion, i: usize| v.numbers.get(i).copied().unwrap_or(0);
        (0..width)
            .map(|i| at(self, i).cmp(&at(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then(self.revision.cmp(&other.revision))
            .then(self.numbers.len().cmp(&other.numbers.len()))
    }
}

impl PartialOrd for RubyVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The body of `GET <registry>/portable-ruby/tags/list` (OCI distribution).
#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The tags of one page of a tag list. `source` names the page in the
/// error when the body is not one.
pub fn tags_in_page(source: &str, bytes: &[u8]) -> Result<Vec<String>> {
    let list: TagList = serde_json::from_slice(bytes).map_err(|e| {
        Error::permanent_fetch(
            source,
            format!("not an OCI tag list: {}", crate::serde_problem(&e)),
        )
    })?;
    Ok(list.tags.unwrap_or_default())
}

/// The target of a `Link` header's `rel="next"` (the OCI distribution
/// spec's pagination: `<...?n=..&last=..>; rel="next"`).
pub fn next_page_link(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| target.trim().strip_prefix('<')?.strip_suffix('>'))?
    })
}

/// The version tags among `tags`, oldest first.
pub fn version_tags(tags: Vec<String>) -> Vec<String> {
    let mut versions: Vec<(RubyVersion, String)> = tags
        .into_iter()
        .filter_map(|tag| Some((RubyVersion::parse(&tag)?, tag)))
        .collect();
    versions.sort();
    versions.dedup_by(|a, b| a.1 == b.1);
    versions.into_iter().map(|(_, tag)| tag).collect()
}

/// The versions to mirror out of `available` (oldest first, as
/// [`version_tags`] returns them), newest first. A pinned version
/// the registry lacks is an error naming it.
pub fn choose_versions(
    setting: &PortableRubySetting,
    available: &[String],
) -> std::result::Result<Vec<String>, String> {
    match setting {
        PortableRubySetting::Off => Ok(Vec::new()),
        PortableRubySetting::Auto => Ok(available
            .iter()
            .rev()
            .take(AUTO_VERSIONS)
            .cloned()
            .collect()),
        PortableRubySetting::Version(version) => {
            if available.contains(version) {
                Ok(vec![version.clone()])
            } else {
                let newest: Vec<&str> =
                    available.iter().rev().take(5).map(String::as_str).collect();
                Err(format!(
                    "the registry has no Portable Ruby {version} (its newest: {})",
                    if newest.is_empty() {
                        "none".to_string()
                    } else {
                        newest.join(", ")
                    }
                ))
            }
        }
    }
}

/// The Ruby tag a client on `client` runs (`None` for `all`, which is
/// not a client).
pub fn ruby_tag_for(client: &Tag) -> Option<Tag> {
    let ruby = match client.kind() {
        TagKind::All => return None,
        TagKind::MacOs {
            arch: Arch::Arm64, ..
        } => RUBY_TAGS[0],
        TagKind::MacOs {
            arch: Arch::Intel, ..
        } => RUBY_TAGS[1],
        TagKind::Linux(Arch::Intel) => RUBY_TAGS[2],
        TagKind::Linux(Arch::Arm64) => RUBY_TAGS[3],
    };
    Some(Tag::parse(ruby).expect("the Ruby tags are valid"))
}

/// The Ruby tags the mirrored client tags need, each once, in
/// [`RUBY_TAGS`] order.
pub fn ruby_tags_for(clients: &[Tag]) -> Vec<Tag> {
    let mut tags: Vec<Tag> = clients.iter().filter_map(ruby_tag_for).collect();
    tags.sort_by_key(|t| RUBY_TAGS.iter().position(|r| *r == t.as_str()));
    tags.dedup();
    tags
}

/// The bottles one version's image index names, by Ruby tag: each
/// `manifests[]` entry whose `org.opencontainers.image.ref.name` is
/// `<version>.<tag>` and whose `sh.brew.bottle.digest` is a sha256 (what
/// brew's vendor files pin). `source` names the index in the error.
pub fn bottles_in_index(
    source: &str,
    version: &str,
    bytes: &[u8],
) -> Result<BTreeMap<Tag, Sha256Digest>> {
    let index = ImageIndex::parse(bytes.to_vec())
        .map_err(|problem| Error::permanent_fetch(source, problem))?;
    let prefix = format!("{version}.");
    Ok(index
        .refs()
        .filter_map(|(name, digest)| {
            let tag = Tag::parse(name.strip_prefix(&prefix)?).ok()?;
            Some((tag, digest.clone()))
        })
        .collect())
}

/// One Portable Ruby bottle to mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortableRubyBottle {
    pub version: String,
    pub tag: Tag,
    pub sha256: Sha256Digest,
    /// The registry blob URL of its digest.
    pub url: Url,
}

impl PortableRubyBottle {
    /// `portable-ruby-<version>.<tag>.bottle.tar.gz`: what brew asks the
    /// bottle domain for.
    pub fn file_name(&self) -> String {
        mirror_file_name(PORTABLE_RUBY, &self.version, self.tag.as_str(), 0)
    }

    /// The job that fetches it like any bottle (sized from its image
    /// index, which is kept at `bottles/portable-ruby/manifests/<version>`).
    pub fn job(&self, date: NaiveDate) -> Result<BottleJob> {
        Ok(BottleJob {
            name: PORTABLE_RUBY.into(),
            version: self.version.clone(),
            revision: 0,
            rebuild: 0,
            tag: self.tag.clone(),
            sha256: self.sha256.clone(),
            url: self.url.clone(),
            size: 0,
            size_source: SizeSource::Unknown,
            key: ObjectKey::dated(date, &self.file_name())?,
        })
    }

    /// What the published record keeps and `bottlesync verify` checks.
    pub fn wanted(&self) -> WantedBottle {
        WantedBottle {
            name: PORTABLE_RUBY.into(),
            version_rebuild: version_rebuild(&self.version, 0),
            file_name: self.file_name(),
            tag: self.tag.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

/// What a run plans of Portable Ruby.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortableRubyPlan {
    /// The versions chosen, newest first.
    pub versions: Vec<String>,
    /// Their bottles for the mirrored client families.
    pub bottles: Vec<PortableRubyBottle>,
    /// What could not be planned (no image, a version lacking a family).
    pub warnings: Vec<String>,
}

impl PortableRubyPlan {
    /// `portable-ruby <version> <tag>` of each bottle, for summaries.
    pub fn labels(&self) -> Vec<String> {
        self.bottles
            .iter()
            .map(|b| format!("{PORTABLE_RUBY} {} {}", b.version, b.tag))
            .collect()
    }
}

/// The blob URL of a Portable Ruby bottle under `registry_root`
/// (`https://ghcr.io/v2/homebrew/core`).
pub fn blob_url(registry_root: &str, sha256: &Sha256Digest) -> Result<Url> {
    let text = format!("{registry_root}/{PORTABLE_RUBY}/blobs/sha256:{sha256}");
    Url::parse(&text).map_err(|e| Error::config("registry", format!("{text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| Tag::parse(n).unwrap()).collect()
    }

    #[test]
    fn each_client_tag_maps_to_its_family() {
        let family =
            |client: &str| ruby_tag_for(&Tag::parse(client).unwrap()).map(|t| t.to_string());
        for arm in [
            "arm64_tahoe",
            "arm64_golden_gate",
            "arm64_sonoma",
            "arm64_big_sur",
        ] {
            assert_eq!(family(arm).as_deref(), Some("arm64_big_sur"), "{arm}");
        }
        for intel in ["tahoe", "sequoia", "catalina", "ventura"] {
            assert_eq!(family(intel).as_deref(), Some("catalina"), "{intel}");
        }
        assert_eq!(family("x86_64_linux").as_deref(), Some("x86_64_linux"));
        assert_eq!(family("arm64_linux").as_deref(), Some("arm64_linux"));
        assert_eq!(family("all"), None);
        assert_eq!(
            ruby_tags_for(&tags(&[
                "x86_64_linux",
                "tahoe",
                "arm64_tahoe",
                "arm64_sequoia",
                "sequoia"
            ])),
            tags(&["arm64_big_sur", "catalina", "x86_64_linux"]),
            "each family once, in brew's order"
        );
        assert!(ruby_tags_for(&tags(&["all"])).is_empty());
    }

    #[test]
    fn versions_are_ordered_numerically_and_other_tags_ignored() {
        let list = br#"{"name":"homebrew/core/portable-ruby","tags":
            ["3.4.8","latest","3.10.1","4.0.6","3.9.0","2.6.10_1","2.6.10","4.0.6.arm64_big_sur","sha256-abc","","4.0.6"]}"#;
        assert_eq!(
            version_tags(tags_in_page("tags/list", list).unwrap()),
            ["2.6.10", "2.6.10_1", "3.4.8", "3.9.0", "3.10.1", "4.0.6"]
        );
        assert_eq!(
            tags_in_page("tags/list", br#"{"name":"x","tags":null}"#).unwrap(),
            Vec::<String>::new()
        );
        let err = tags_in_page("https://r/portable-ruby/tags/list", b"<html>")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("https://r/portable-ruby/tags/list")
                && err.contains("not an OCI tag list"),
            "{err}"
        );
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        assert_eq!(
            next_page_link(
                r#"</v2/homebrew/core/portable-ruby/tags/list?n=2&last=3.4.8>; rel="next""#
            ),
            Some("/v2/homebrew/core/portable-ruby/tags/list?n=2&last=3.4.8")
        );
        assert_eq!(
            next_page_link(r#"<https://a/prev>; rel="prev", <https://a/next>; rel = "next""#),
            Some("https://a/next")
        );
        assert_eq!(next_page_link(r#"<https://a/prev>; rel="prev""#), None);
        assert_eq!(next_page_link("garbage"), None);
    }

    #[test]
    fn auto_takes_the_two_newest_a_version_exactly_that_one() {
        let available: Vec<String> = ["3.3.7", "3.4.8", "4.0.6"].map(String::from).into();
        assert_eq!(
            choose_versions(&PortableRubySetting::Auto, &available).unwrap(),
            ["4.0.6", "3.4.8"]
        );
        assert_eq!(
            choose_versions(&PortableRubySetting::Auto, &available[..1]).unwrap(),
            ["3.3.7"]
        );
        assert_eq!(
            choose_versions(&PortableRubySetting::Version("3.3.7".into()), &available).unwrap(),
            ["3.3.7"]
        );
        assert!(
            choose_versions(&PortableRubySetting::Off, &available)
                .unwrap()
                .is_empty()
        );
        let err =
            choose_versions(&PortableRubySetting::Version("9.9.9".into()), &available).unwrap_err();
        assert!(
            err.contains("no Portable Ruby 9.9.9") && err.contains("4.0.6, 3.4.8, 3.3.7"),
            "{err}"
        );
    }

    #[test]
    fn the_setting_is_auto_off_or_a_version() {
        let parse = |text| PortableRubySetting::parse("--portable-ruby", text);
        assert_eq!(parse("auto").unwrap(), PortableRubySetting::Auto);
        assert_eq!(parse(" off ").unwrap(), PortableRubySetting::Off);
        assert_eq!(
            parse("4.0.6").unwrap(),
            PortableRubySetting::Version("4.0.6".into())
        );
        assert_eq!(
            parse("2.6.10_1").unwrap(),
            PortableRubySetting::Version("2.6.10_1".into())
        );
        for bad in ["", "latest", "4.0.x", "../4", "4..0", "on"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("--portable-ruby"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn an_index_names_its_bottles_by_ruby_tag() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"annotations":{{"org.opencontainers.image.ref.name":"4.0.6.arm64_big_sur","sh.brew.bottle.digest":"{a}"}}}},
              {{"annotations":{{"org.opencontainers.image.ref.name":"4.0.6.x86_64_linux","sh.brew.bottle.digest":"{b}"}}}},
              {{"annotations":{{"org.opencontainers.image.ref.name":"3.4.8.catalina","sh.brew.bottle.digest":"{b}"}}}},
              {{"annotations":{{"org.opencontainers.image.ref.name":"4.0.6.catalina","sh.brew.bottle.digest":"nope"}}}},
              {{}}]}}"#
        );
        let bottles = bottles_in_index("index", "4.0.6", index.as_bytes()).unwrap();
        assert_eq!(
            bottles.keys().map(Tag::as_str).collect::<Vec<_>>(),
            ["arm64_big_sur", "x86_64_linux"]
        );
        assert_eq!(bottles[&Tag::parse("arm64_big_sur").unwrap()].as_str(), a);
    }

    #[test]
    fn a_bottle_is_a_job_under_brews_file_name() {
        let sha = Sha256Digest::from_bytes(&[7; 32]);
        let bottle = PortableRubyBottle {
            version: "4.0.6".into(),
            tag: Tag::parse("arm64_big_sur").unwrap(),
            url: blob_url("https://ghcr.io/v2/homebrew/core", &sha).unwrap(),
            sha256: sha.clone(),
        };
        assert_eq!(
            bottle.file_name(),
            "portable-ruby-4.0.6.arm64_big_sur.bottle.tar.gz"
        );
        let job = bottle
            .job(NaiveDate::from_ymd_opt(2026, 12, 7).unwrap())
            .unwrap();
        assert_eq!(
            job.key.as_str(),
            "2026-12-07/portable-ruby-4.0.6.arm64_big_sur.bottle.tar.gz"
        );
        assert_eq!(job.version_rebuild(), "4.0.6");
        assert_eq!(
            job.url.as_str(),
            format!("https://ghcr.io/v2/homebrew/core/portable-ruby/blobs/sha256:{sha}")
        );
        assert_eq!(bottle.wanted().version_rebuild, "4.0.6");
    }
}
