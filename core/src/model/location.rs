//! Parsing where things are: `--dest DIR | s3://BUCKET[/PREFIX]` and hash
//! file locations (`PATH | s3://... | https://...`).

use std::path::PathBuf;

use url::Url;

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
    Http(Url),
}

impl Location {
    /// `setting` names the flag or variable in error messages.
    pub fn parse(setting: &str, text: &str, allow_http: bool) -> Result<Self> {
        let bad = |problem: String| Error::config(setting, problem);
        if text.trim().is_empty() {
            return Err(bad("is empty".into()));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket).map_err(|p| bad(format!("{text:?}: {p}")))?;
            let prefix = prefix.trim_matches('/').to_string();
            if !prefix.is_empty() {
                crate::model::key::ObjectKey::parse(&prefix)
                    .map_err(|e| bad(format!("{text:?}: prefix: {e}")))?;
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            if !allow_http {
                return Err(bad(format!(
                    "{text:?}: must be a directory or s3://BUCKET[/PREFIX]"
                )));
            }
            let url = Url::parse(text).map_err(|e| bad(format!("{text:?}: {e}")))?;
            return Ok(Location::Http(url));
        }
        if text.contains("://") {
            return Err(bad(format!("{text:?}: unsupported scheme")));
        }
        Ok(Location::Dir(PathBuf::from(text)))
    }
}

/// S3 bucket naming rules (the subset that matters for safety and clarity).
fn validate_bucket(bucket: &str) -> std::result::Result<(), String> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bucket name {bucket:?} is invalid (3-63 lowercase letters, digits, '-' or '.')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            Location::parse("--dest", "s3://my-bucket/a/b/", false).unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            Location::parse("--dest", "./mirror", false).unwrap(),
            Location::Dir("./mirror".into())
        );
        assert!(matches!(
            Location::parse("--hash-file", "https://x.example/h.json", true).unwrap(),
            Location::Http(_)
        ));
    }

    #[test]
    fn rejects_bad_forms_naming_the_setting() {
        for bad in [
            "",
            "s3://",
            "s3://UPPER",
            "s3://ok-bucket/../x",
            "ftp://x",
            "https://x",
        ] {
            let err = Location::parse("--dest", bad, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("--dest"), "{bad:?}: {err}");
        }
    }
}
