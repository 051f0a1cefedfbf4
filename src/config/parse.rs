//! What each setting's text may be, for `Setting` (which trims it, takes an
//! empty one as the default and names the variable in the error).

use super::setting::problem_of;

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{text:?} is not a number"))
}

/// A number > 0.
pub fn positive(text: &str) -> Result<f64, String> {
    number(text)
        .ok()
        .filter(|v| *v > 0.0)
        .ok_or_else(|| format!("{text:?} is not a positive number"))
}

/// A number >= 0.
pub fn non_negative(text: &str) -> Result<f64, String> {
    number(text)
        .ok()
        .filter(|v| *v >= 0.0)
        .ok_or_else(|| format!("{text:?} is not a non-negative number"))
}

/// Whole seconds from 1 to a day.
pub fn lease_seconds(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|secs| (1..=86_400).contains(secs))
        .ok_or_else(|| format!("{text:?} is not a whole number of seconds from 1 to 86400"))
}

/// A whole number.
pub fn whole(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

/// A size: `64MiB`, `1GB`, bytes.
pub fn size(text: &str) -> Result<u64, String> {
    bottlesync_core::segments::parse_size("size", text).map_err(|e| problem_of(&e))
}

/// true|false (also 1/0, yes/no, on/off).
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "false" | "0" | "no" | "off" => Ok(false),
        "true" | "1" | "yes" | "on" => Ok(true),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// An http(s) URL, without a trailing `/`.
pub fn api_url(text: &str) -> Result<url::Url, String> {
    url::Url::parse(text.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| format!("{text:?} is not an http(s) URL"))
}

/// `auto` or a comma-separated list of bottle tags.
pub fn tags(text: &str) -> Result<bottlesync_core::plan::select::TagSelection, String> {
    bottlesync_core::plan::select::TagSelection::parse("tags", text).map_err(|e| problem_of(&e))
}

/// `auto`, a version (`4.0.6`) or `off`.
pub fn portable_ruby(
    text: &str,
) -> Result<bottlesync_core::plan::portable_ruby::PortableRubySetting, String> {
    bottlesync_core::plan::portable_ruby::PortableRubySetting::parse("portable ruby", text)
        .map_err(|e| problem_of(&e))
}

/// How metrics go out: `auto`, `emf` or `off`.
pub fn metrics(text: &str) -> Result<String, String> {
    match text {
        "auto" | "emf" | "off" => Ok(text.to_string()),
        other => Err(format!("{other:?} is not emf or off")),
    }
}
