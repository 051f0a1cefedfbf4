//! Bottle tags: the macOS release order, the platform each tag stands for,
//! and brew's fallback rule. The catalogs, the manifests and the per-tag API
//! files all need the same answers.

/// macOS release names, newest first, with their marketing version.
pub const MACOS_NEWEST_FIRST: [(&str, &str); 8] = [
    ("golden_gate", "27"),
    ("tahoe", "26"),
    ("sequoia", "15"),
    ("sonoma", "14"),
    ("ventura", "13"),
    ("monterey", "12"),
    ("big_sur", "11"),
    ("catalina", "10.15"),
];

/// The tags a current formula usually has bottles for, newest macOS first.
/// There is no bare `golden_gate`: macOS 27 has no Intel build.
pub const CURRENT_TAGS: [&str; 9] = [
    "arm64_golden_gate",
    "arm64_tahoe",
    "tahoe",
    "arm64_sequoia",
    "sequoia",
    "arm64_sonoma",
    "sonoma",
    "x86_64_linux",
    "arm64_linux",
];

/// What a bottle tag denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagPlatform {
    /// `arm64_<macos>` (`arm64 == true`) or bare `<macos>` (Intel); the index
    /// points into [`MACOS_NEWEST_FIRST`].
    MacOs { arm64: bool, release: usize },
    /// `x86_64_linux` or `arm64_linux`.
    Linux { arm64: bool },
    /// `all`: one bottle for every platform.
    All,
}

/// Parses a tag; `None` for a tag this stand-in does not know.
pub fn parse_tag(tag: &str) -> Option<TagPlatform> {
    match tag {
        "all" => return Some(TagPlatform::All),
        "x86_64_linux" => return Some(TagPlatform::Linux { arm64: false }),
        "arm64_linux" => return Some(TagPlatform::Linux { arm64: true }),
        _ => {}
    }
    let (arm64, macos) = match tag.strip_prefix("arm64_") {
        Some(rest) => (true, rest),
        None => (false, tag),
    };
    let release = MACOS_NEWEST_FIRST
        .iter()
        .position(|(name, _)| *name == macos)?;
    if !arm64 && macos == "golden_gate" {
        return None;
    }
    Some(TagPlatform::MacOs { arm64, release })
}

/// Every tag a client could be on (for the per-tag API files).
pub fn client_tags() -> Vec<String> {
    let mut tags = Vec::new();
    for (name, _) in MACOS_NEWEST_FIRST {
        tags.push(format!("arm64_{name}"));
        if name != "golden_gate" {
            tags.push(name.to_string());
        }
    }
    tags.push("x86_64_linux".into());
    tags.push("arm64_linux".into());
    tags
}

/// The tag whose bottle brew installs on `wanted`: the bottle for `wanted`,
/// else `all`, else the newest one for an older macOS of the same
/// architecture.
pub fn installable_tag<'a>(available: &[&'a str], wanted: &str) -> Option<&'a str> {
    if let Some(tag) = available.iter().find(|t| **t == wanted) {
        return Some(tag);
    }
    if let Some(tag) = available.iter().find(|t| **t == "all") {
        return Some(tag);
    }
    let Some(TagPlatform::MacOs { arm64, release }) = parse_tag(wanted) else {
        return None;
    };
    available
        .iter()
        .filter_map(|t| match parse_tag(t) {
            Some(TagPlatform::MacOs {
                arm64: a,
                release: r,
            }) if a == arm64 && r > release => Some((r, *t)),
            _ => None,
        })
        .min_by_key(|(r, _)| *r)
        .map(|(_, t)| t)
}

/// The default Cellar of a tag, as brew writes it into the index.
pub fn default_cellar(tag: &str) -> &'static str {
    match parse_tag(tag) {
        Some(TagPlatform::MacOs { arm64: true, .. }) => "/opt/homebrew/Cellar",
        Some(TagPlatform::MacOs { arm64: false, .. }) => "/usr/local/Cellar",
        Some(TagPlatform::Linux { .. }) => "/home/linuxbrew/.linuxbrew/Cellar",
        Some(TagPlatform::All) | None => ":any_skip_relocation",
    }
}

/// OCI platform fields `(architecture, os, os.version)` for a manifest entry.
pub fn oci_platform(tag: &str) -> (&'static str, &'static str, String) {
    match parse_tag(tag) {
        Some(TagPlatform::MacOs { arm64, release }) => (
            if arm64 { "arm64" } else { "amd64" },
            "darwin",
            format!("macOS {}", MACOS_NEWEST_FIRST[release].1),
        ),
        Some(TagPlatform::Linux { arm64 }) => (
            if arm64 { "arm64" } else { "amd64" },
            "linux",
            "Ubuntu 22.04".to_string(),
        ),
        Some(TagPlatform::All) | None => ("all", "all", String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_follows_brew() {
        let old = ["arm64_sequoia", "sequoia", "arm64_sonoma"];
        assert_eq!(installable_tag(&old, "arm64_tahoe"), Some("arm64_sequoia"));
        assert_eq!(installable_tag(&old, "tahoe"), Some("sequoia"));
        assert_eq!(installable_tag(&old, "sonoma"), None);
        assert_eq!(installable_tag(&old, "x86_64_linux"), None);
        assert_eq!(installable_tag(&["all"], "arm64_linux"), Some("all"));
        assert_eq!(parse_tag("golden_gate"), None);
        assert!(client_tags().contains(&"arm64_golden_gate".to_string()));
    }
}
