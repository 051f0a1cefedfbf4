//! Object keys inside the mirror: relative, `/`-separated, and unable to
//! escape the destination directory or prefix whatever the input was.

use std::fmt;

use chrono::NaiveDate;

/// A key relative to the mirror's root (directory or `s3://bucket/prefix`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Accepts `a/b/c` whose components are non-empty, not `.` or `..`, and
    /// free of backslashes and control characters.
    pub fn parse(key: &str) -> Result<Self, crate::Error> {
        let bad = |problem: &str| crate::Error::Key {
            key: crate::shorten(key, 200),
            problem: problem.to_string(),
        };
        if key.is_empty() || key.len() > 900 {
            return Err(bad("must be 1 to 900 bytes"));
        }
        if key.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad("contains a control character or backslash"));
        }
        for part in key.split('/') {
            match part {
                "" => {
                    return Err(bad(
                        "has an empty path component (leading, trailing or double '/')",
                    ));
                }
                "." | ".." => return Err(bad("has a '.' or '..' component")),
                _ => {}
            }
        }
        Ok(ObjectKey(key.to_string()))
    }

    /// `<YYYY-MM-DD>/<file name>`: where a run stores the bottles it downloads.
    pub fn dated(date: NaiveDate, file_name: &str) -> Result<Self, crate::Error> {
        if file_name.contains('/') {
            return Err(crate::Error::Key {
                key: file_name.to_string(),
                problem: "a file name must not contain '/'".into(),
            });
        }
        ObjectKey::parse(&format!("{}/{file_name}", date.format("%Y-%m-%d")))
    }

    /// Whether this is exactly `<YYYY-MM-DD>/<file name>` (a real date,
    /// written as [`ObjectKey::dated`] writes it): a run's archive folder.
    pub fn is_dated(&self) -> bool {
        self.0.split_once('/').is_some_and(|(date, file)| {
            !file.contains('/')
                && NaiveDate::parse_from_str(date, "%Y-%m-%d")
                    .is_ok_and(|d| d.format("%Y-%m-%d").to_string() == date)
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl serde::Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ObjectKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for bad in [
            "", "/abs", "a/../b", "..", "a//b", "a/", "a\\..\\b", "a/\u{0}b", "./a",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        ObjectKey::parse("2026-11-29/curl-8.17.0.arm64_tahoe.bottle.1.tar.gz").unwrap();
        ObjectKey::parse("a/..b/c..").unwrap();
    }

    #[test]
    fn dated_keys() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let key = ObjectKey::dated(date, "wget-1.0.tahoe.bottle.tar.gz").unwrap();
        assert_eq!(key.as_str(), "2026-11-29/wget-1.0.tahoe.bottle.tar.gz");
        assert_eq!(key.file_name(), "wget-1.0.tahoe.bottle.tar.gz");
        assert!(ObjectKey::dated(date, "../x").is_err());
        assert!(key.is_dated());
        for not_dated in [
            "bottles/wget-1.0.tahoe.bottle.tar.gz",
            "bottles_hash.json",
            "api/formula.jws.json",
            "2026-13-01/wget-1.0.tahoe.bottle.tar.gz",
            "2026-1-29/wget-1.0.tahoe.bottle.tar.gz",
            "2026-11-29/sub/wget-1.0.tahoe.bottle.tar.gz",
            ".bottlesync/journal/x.json",
        ] {
            assert!(
                !ObjectKey::parse(not_dated).unwrap().is_dated(),
                "{not_dated}"
            );
        }
    }
}
