//! Names Homebrew derives from a formula: package versions, registry image
//! names and the mirror file names brew requests (homebrew.md, "File names").
//! Everything here feeds object keys, so the validators are strict.

/// Longest formula name or version we accept (real ones are far shorter).
const MAX_NAME_LEN: usize = 128;

/// A formula name: lowercase letters, digits and `@ + - . _`, starting with a
/// letter or digit. This excludes `/`, `..`-only names, spaces and controls.
pub fn validate_formula_name(name: &str) -> Result<(), String> {
    let shown = crate::shorten(name, 80);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "formula name {shown:?} must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "@+-._".contains(*c)))
    {
        return Err(format!(
            "formula name {shown:?} contains {bad:?} (allowed: a-z 0-9 @ + - . _)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "formula name {shown:?} must start with a letter or digit"
        ));
    }
    Ok(())
}

/// A version string: letters, digits and `. _ + ~ -`, starting with a letter
/// or digit (so never `.` or `..`, never a path separator).
pub fn validate_version(version: &str) -> Result<(), String> {
    let shown = crate::shorten(version, 80);
    if version.is_empty() || version.len() > MAX_NAME_LEN {
        return Err(format!(
            "version {shown:?} must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(bad) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._+~-".contains(*c)))
    {
        return Err(format!(
            "version {shown:?} contains {bad:?} (allowed: A-Z a-z 0-9 . _ + ~ -)"
        ));
    }
    if !version.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "version {shown:?} must start with a letter or digit"
        ));
    }
    Ok(())
}

/// The registry image of a formula: `@` becomes `/`, `+` becomes `x`
/// (`openssl@3` -> `openssl/3`, `gtk+3` -> `gtkx3`).
pub fn image_name(formula: &str) -> String {
    formula.replace('@', "/").replace('+', "x")
}

/// `version`, or `version_revision` when the formula has a revision.
pub fn pkg_version(version: &str, revision: u32) -> String {
    if revision > 0 {
        format!("{version}_{revision}")
    } else {
        version.to_string()
    }
}

/// The manifest reference: `pkg_version`, or `pkg_version-rebuild`.
pub fn version_rebuild(pkg_version: &str, rebuild: u32) -> String {
    if rebuild > 0 {
        format!("{pkg_version}-{rebuild}")
    } else {
        pkg_version.to_string()
    }
}

/// What brew requests from a bottle domain:
/// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`.
pub fn mirror_file_name(name: &str, pkg_version: &str, tag: &str, rebuild: u32) -> String {
    if rebuild > 0 {
        format!("{name}-{pkg_version}.{tag}.bottle.{rebuild}.tar.gz")
    } else {
        format!("{name}-{pkg_version}.{tag}.bottle.tar.gz")
    }
}

/// The usual limit on one file name (NAME_MAX): a directory mirror cannot
/// hold a longer mirror file name, and names and versions alone allow 128
/// bytes each.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// [`mirror_file_name`], refused when it is too long to be a file name.
pub fn checked_mirror_file_name(
    name: &str,
    pkg_version: &str,
    tag: &str,
    rebuild: u32,
) -> Result<String, String> {
    let file = mirror_file_name(name, pkg_version, tag, rebuild);
    if file.len() > MAX_FILE_NAME_BYTES {
        return Err(format!(
            "mirror file name {:?} is {} bytes, more than the {MAX_FILE_NAME_BYTES} a file name may have",
            crate::shorten(&file, 80),
            file.len()
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_match_homebrew() {
        assert_eq!(
            mirror_file_name("curl", &pkg_version("8.17.0", 0), "arm64_tahoe", 1),
            "curl-8.17.0.arm64_tahoe.bottle.1.tar.gz"
        );
        assert_eq!(
            mirror_file_name("openssl@3", &pkg_version("3.4.0", 1), "arm64_sequoia", 0),
            "openssl@3-3.4.0_1.arm64_sequoia.bottle.tar.gz"
        );
        assert_eq!(version_rebuild("3.4.0_1", 0), "3.4.0_1");
        assert_eq!(version_rebuild("1.6", 2), "1.6-2");
        assert_eq!(image_name("openssl@3"), "openssl/3");
        assert_eq!(image_name("gtk+3"), "gtkx3");
        assert_eq!(image_name("python@3.13"), "python/3.13");
    }

    #[test]
    fn hostile_names_and_versions_are_refused() {
        for bad in [
            "", "..", "../etc", "a/b", "a\\b", "a\nb", "A", "-x", ".hidden", "a b",
        ] {
            assert!(validate_formula_name(bad).is_err(), "name {bad:?} accepted");
        }
        for good in [
            "wget",
            "openssl@3",
            "gtk+3",
            "python@3.13",
            "c-ares",
            "lib_x",
        ] {
            validate_formula_name(good).unwrap();
        }
        for bad in ["", "..", "1/2", "1.0\0", "1 0", ".1", "1\\0"] {
            assert!(validate_version(bad).is_err(), "version {bad:?} accepted");
        }
        for good in ["1.21.3", "2024-01-01", "3.0.0-rc1", "1.2+git", "r123"] {
            validate_version(good).unwrap();
        }
    }
}
