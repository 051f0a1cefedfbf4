//! Bottle tags, the ordering of macOS releases, and which bottle a client on
//! a given tag really installs (homebrew.md, "Bottle tags" and "Fallback tags").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// macOS release names, newest first. A new release is one line here; tag
/// selection itself is worked out from the index (`auto_tags`).
pub const MACOS_NEWEST_FIRST: &[&str] = &[
    "golden_gate",
    "tahoe",
    "sequoia",
    "sonoma",
    "ventura",
    "monterey",
    "big_sur",
    "catalina",
    "mojave",
    "high_sierra",
    "sierra",
    "el_capitan",
    "yosemite",
];

/// How many of the newest macOS releases `--tags auto` covers.
pub const AUTO_MACOS_RELEASES: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    Arm64,
    Intel,
}

/// What a tag denotes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TagKind {
    /// `all`: one bottle for every OS.
    All,
    /// `x86_64_linux`, `arm64_linux`.
    Linux(Arch),
    /// `arm64_<macos>` or bare `<macos>` (Intel). `rank` is the position in
    /// [`MACOS_NEWEST_FIRST`] (0 = newest), `None` for a name we do not know.
    MacOs {
        arch: Arch,
        os: String,
        rank: Option<usize>,
    },
}

/// A bottle tag such as `arm64_tahoe`: a short `[a-z0-9_]` word.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(format!(
                "{:?} is not a bottle tag (lowercase letters, digits and '_')",
                crate::shorten(text, 80)
            ));
        }
        Ok(Tag(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> TagKind {
        match self.0.as_str() {
            "all" => TagKind::All,
            "x86_64_linux" => TagKind::Linux(Arch::Intel),
            "arm64_linux" => TagKind::Linux(Arch::Arm64),
            other => {
                let (arch, os) = match other.strip_prefix("arm64_") {
                    Some(os) => (Arch::Arm64, os),
                    None => (Arch::Intel, other),
                };
                TagKind::MacOs {
                    arch,
                    os: os.to_string(),
                    rank: macos_rank(os),
                }
            }
        }
    }

    /// The macOS release and architecture, for macOS tags we know.
    fn known_macos(&self) -> Option<(Arch, usize)> {
        match self.kind() {
            TagKind::MacOs {
                arch,
                rank: Some(rank),
                ..
            } => Some((arch, rank)),
            _ => None,
        }
    }
}

pub fn macos_rank(os: &str) -> Option<usize> {
    MACOS_NEWEST_FIRST.iter().position(|name| *name == os)
}

fn macos_tag(arch: Arch, rank: usize) -> Tag {
    let os = MACOS_NEWEST_FIRST[rank];
    Tag(match arch {
        Arch::Arm64 => format!("arm64_{os}"),
        Arch::Intel => os.to_string(),
    })
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Tag::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `--tags auto`: the Apple-silicon and Intel tags of the
/// [`AUTO_MACOS_RELEASES`] newest macOS releases that have bottles in the
/// index, newest first, each only if some bottle carries it (macOS 27 has no
/// Intel build, so no bare `golden_gate`).
pub fn auto_tags<'a>(tags_in_index: impl IntoIterator<Item = &'a Tag>) -> Vec<Tag> {
    let mut present: Vec<(usize, Arch)> = tags_in_index
        .into_iter()
        .filter_map(|t| t.known_macos().map(|(arch, rank)| (rank, arch)))
        .collect();
    present.sort();
    present.dedup();
    let mut releases: Vec<usize> = present.iter().map(|(rank, _)| *rank).collect();
    releases.dedup();
    releases.truncate(AUTO_MACOS_RELEASES);
    present
        .into_iter()
        .filter(|(rank, _)| releases.contains(rank))
        .map(|(rank, arch)| macos_tag(arch, rank))
        .collect()
}

/// The tag of the bottle a client on `client` installs, given the tags a
/// formula has bottles for: the exact tag, else `all`, else (macOS only) the
/// newest bottle for an older macOS of the same architecture.
pub fn installed_tag<'a>(client: &Tag, available: &'a [Tag]) -> Option<&'a Tag> {
    if let Some(exact) = available.iter().find(|t| *t == client) {
        return Some(exact);
    }
    if let Some(all) = available.iter().find(|t| t.as_str() == "all") {
        return Some(all);
    }
    let (arch, rank) = client.known_macos()?;
    available
        .iter()
        .filter_map(|t| t.known_macos().map(|(a, r)| (t, a, r)))
        .filter(|(_, a, r)| *a == arch && *r > rank)
        .min_by_key(|(_, _, r)| *r)
        .map(|(t, _, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<Tag> {
        list.iter().map(|t| Tag::parse(t).unwrap()).collect()
    }

    #[test]
    fn auto_takes_three_newest_releases_present() {
        let index = tags(&[
            "arm64_golden_gate",
            "arm64_tahoe",
            "tahoe",
            "arm64_sequoia",
            "sequoia",
            "arm64_sonoma",
            "sonoma",
            "x86_64_linux",
            "all",
        ]);
        assert_eq!(
            auto_tags(&index),
            tags(&[
                "arm64_golden_gate",
                "arm64_tahoe",
                "tahoe",
                "arm64_sequoia",
                "sequoia"
            ])
        );
    }

    #[test]
    fn auto_follows_the_data_not_a_fixed_list() {
        // An older index: newest release present is sonoma.
        let index = tags(&[
            "arm64_sonoma",
            "sonoma",
            "ventura",
            "arm64_monterey",
            "big_sur",
        ]);
        assert_eq!(
            auto_tags(&index),
            tags(&["arm64_sonoma", "sonoma", "ventura", "arm64_monterey"])
        );
        // Unknown future names are not guessed at.
        assert_eq!(auto_tags(&tags(&["arm64_zzz_future"])), Vec::<Tag>::new());
    }

    #[test]
    fn fallback_exact_then_all_then_older_same_arch() {
        let tahoe = Tag::parse("arm64_tahoe").unwrap();
        let have = tags(&["arm64_tahoe", "all", "arm64_sequoia"]);
        assert_eq!(
            installed_tag(&tahoe, &have).unwrap().as_str(),
            "arm64_tahoe"
        );
        let have = tags(&["all", "arm64_sequoia"]);
        assert_eq!(installed_tag(&tahoe, &have).unwrap().as_str(), "all");
        let have = tags(&["arm64_sonoma", "arm64_sequoia", "sequoia", "x86_64_linux"]);
        assert_eq!(
            installed_tag(&tahoe, &have).unwrap().as_str(),
            "arm64_sequoia"
        );
        // Intel never falls back to an Apple-silicon bottle, nor to a newer macOS.
        let intel_sequoia = Tag::parse("sequoia").unwrap();
        let have = tags(&["arm64_sonoma", "tahoe", "ventura"]);
        assert_eq!(
            installed_tag(&intel_sequoia, &have).unwrap().as_str(),
            "ventura"
        );
        let have = tags(&["arm64_sonoma", "tahoe"]);
        assert_eq!(installed_tag(&intel_sequoia, &have), None);
        // Linux clients get the exact tag or `all` only.
        let linux = Tag::parse("x86_64_linux").unwrap();
        assert_eq!(
            installed_tag(&linux, &tags(&["arm64_linux", "tahoe"])),
            None
        );
    }

    #[test]
    fn parse_rejects_unsafe_text() {
        for bad in [
            "",
            "../x",
            "Arm64_tahoe",
            "a b",
            "tahoe/..",
            &"a".repeat(65),
        ] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
