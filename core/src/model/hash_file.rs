//! `bottles_hash.json`: the record of what a mirror holds, keyed by sha256,
//! and the external hash-file formats accepted by `--hash-file`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::digest::Sha256Digest;
use crate::model::key::ObjectKey;
use crate::model::naming::{validate_formula_name, validate_version};
use crate::model::tag::Tag;

/// The record's name at the mirror root.
pub const HASH_FILE_NAME: &str = "bottles_hash.json";
pub const SCHEMA_VERSION: u32 = 1;
/// Larger hash files are refused rather than read into memory.
pub const MAX_HASH_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// One bottle the mirror holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredBottle {
    pub name: String,
    /// The package version: `version`, or `version_revision` (as in file names).
    pub version: String,
    pub rebuild: u32,
    pub tag: Tag,
    /// Where the mirror keeps the bottle: its flat key `bottles/<file>`,
    /// the object that stays. Records written before bottlesync recorded
    /// flat keys name the dated key (`<YYYY-MM-DD>/<file>`), which may
    /// since have expired: read it through [`MirroredBottle::flat_key`].
    pub key: ObjectKey,
    pub size: u64,
    pub downloaded_at: DateTime<Utc>,
}

impl MirroredBottle {
    /// The record of `job`'s bottle, stored with `size` bytes at `at`: it
    /// names the flat key, which the worker made before recording it.
    pub fn from_job(job: &crate::BottleJob, size: u64, at: DateTime<Utc>) -> Self {
        MirroredBottle {
            name: job.name.clone(),
            version: job.pkg_version(),
            rebuild: job.rebuild,
            tag: job.tag.clone(),
            key: job.flat_key(),
            size,
            downloaded_at: at,
        }
    }

    /// `bottles/<file name>`: the object that stays, whatever key the
    /// record names (an older record's dated key maps by its file name).
    pub fn flat_key(&self) -> ObjectKey {
        crate::model::layout::flat_key_of(&self.key)
    }

    /// The recorded key when it is not the flat key (an older record's
    /// dated key): the source a missing flat copy can still be made from,
    /// while it has not expired.
    pub fn archived_key(&self) -> Option<&ObjectKey> {
        (self.key != self.flat_key()).then_some(&self.key)
    }
}

/// The whole of `bottles_hash.json` (schema 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRecord {
    pub schema: u32,
    pub updated_at: DateTime<Utc>,
    pub bottles: BTreeMap<Sha256Digest, MirroredBottle>,
}

impl Default for MirrorRecord {
    fn default() -> Self {
        MirrorRecord {
            schema: SCHEMA_VERSION,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            bottles: BTreeMap::new(),
        }
    }
}

impl MirrorRecord {
    /// Parses and validates our own schema; any problem is an error naming it.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let record: MirrorRecord = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a valid schema-1 record: {}", crate::serde_problem(&e)))?;
        record.validate()?;
        Ok(record)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.schema != SCHEMA_VERSION {
            return Err(format!(
                "schema {} is not supported (expected {SCHEMA_VERSION})",
                self.schema
            ));
        }
        for (sha, bottle) in &self.bottles {
            validate_formula_name(&bottle.name)
                .and_then(|_| validate_version(&bottle.version))
                .map_err(|e| format!("bottle {sha}: {e}"))?;
        }
        Ok(())
    }

    /// Serialises, then parses the result back: what we write is what we can read.
    pub fn to_validated_json(&self) -> Result<Vec<u8>, String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        MirrorRecord::parse(&bytes)?;
        Ok(bytes)
    }
}

/// The sha256s an external hash file says are already mirrored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalHashes {
    pub digests: BTreeSet<Sha256Digest>,
    /// Full records, when the file was a schema-1 `bottles_hash.json`.
    pub bottles: BTreeMap<Sha256Digest, MirroredBottle>,
    /// Which of the accepted formats it was, for reports.
    pub format: &'static str,
}

/// Accepts our schema-1 record, a JSON array of sha256 strings, or a JSON
/// object keyed by sha256. Anything else is an error that says why.
pub fn parse_external(bytes: &[u8]) -> Result<ExternalHashes, String> {
    use serde_json::value::RawValue;
    let not_json = |e: serde_json::Error| format!("not JSON: {}", crate::serde_problem(&e));
    // Only the top level is read generically (values stay raw slices of
    // `bytes`): a record of a million bottles is parsed once, straight into
    // its structs, not first into a `serde_json::Value` tree several times
    // the file's size.
    match bytes.iter().find(|b| !b" \t\r\n".contains(b)) {
        Some(b'{') => {
            let map: BTreeMap<String, &RawValue> =
                serde_json::from_slice(bytes).map_err(not_json)?;
            if map.contains_key("schema") {
                drop(map);
                let record = MirrorRecord::parse(bytes)?;
                return Ok(ExternalHashes {
                    digests: record.bottles.keys().cloned().collect(),
                    bottles: record.bottles,
                    format: "bottles_hash.json schema 1",
                });
            }
            let digests = map
                .keys()
                .map(|k| Sha256Digest::parse(k).map_err(|e| format!("object key: {e}")))
                .collect::<Result<_, _>>()?;
            Ok(ExternalHashes {
                digests,
                bottles: BTreeMap::new(),
                format: "object keyed by sha256",
            })
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(not_json)?;
            let digests = items
                .iter()
                .enumerate()
                .map(
                    |(i, item)| match serde_json::from_str::<String>(item.get()) {
                        Ok(s) => Sha256Digest::parse(&s).map_err(|e| format!("item {i}: {e}")),
                        Err(_) => Err(format!(
                            "item {i} is {}, not a sha256 string",
                            crate::shorten(item.get(), 80)
                        )),
                    },
                )
                .collect::<Result<_, _>>()?;
            Ok(ExternalHashes {
                digests,
                bottles: BTreeMap::new(),
                format: "array of sha256 strings",
            })
        }
        _ => {
            let other: serde_json::Value = serde_json::from_slice(bytes).map_err(not_json)?;
            Err(format!(
                "expected a schema-1 record, an array of sha256 strings or an object keyed by sha256, got {}",
                crate::shorten(&other.to_string(), 40)
            ))
        }
    }
}

/// Reads and parses an external hash file from a path, s3:// or https://.
pub async fn read_external_hashes(
    location: &crate::model::location::Location,
    documents: &dyn crate::ports::documents::Documents,
) -> Result<ExternalHashes, crate::error::Error> {
    use crate::model::location::Location;
    let shown = match location {
        Location::Dir(path) => path.display().to_string(),
        Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        Location::Http(url) => url.to_string(),
    };
    let fail = |problem: String| crate::error::Error::hash_file(&shown, problem);
    let bytes = documents
        .read(location, MAX_HASH_FILE_BYTES)
        .await
        .map_err(fail)?;
    parse_external(&bytes).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bottle() -> MirroredBottle {
        MirroredBottle {
            name: "curl".into(),
            version: "8.17.0".into(),
            rebuild: 1,
            tag: Tag::parse("arm64_tahoe").unwrap(),
            key: ObjectKey::parse("bottles/curl-8.17.0.arm64_tahoe.bottle.1.tar.gz").unwrap(),
            size: 347618,
            downloaded_at: Utc::now(),
        }
    }

    #[test]
    fn record_round_trips_and_has_the_documented_shape() {
        let mut record = MirrorRecord::default();
        record
            .bottles
            .insert(Sha256Digest::parse(&"a".repeat(64)).unwrap(), bottle());
        let bytes = record.to_validated_json().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let entry = &value["bottles"]["a".repeat(64)];
        assert_eq!(value["schema"], 1);
        assert_eq!(
            entry["key"],
            "bottles/curl-8.17.0.arm64_tahoe.bottle.1.tar.gz"
        );
        assert_eq!(entry["rebuild"], 1);
        assert_eq!(entry["size"], 347618);
        assert_eq!(MirrorRecord::parse(&bytes).unwrap(), record);
    }

    #[test]
    fn a_stored_job_is_recorded_under_its_flat_key() {
        let job = crate::BottleJob {
            name: "curl".into(),
            version: "8.17.0".into(),
            revision: 0,
            rebuild: 1,
            tag: Tag::parse("arm64_tahoe").unwrap(),
            sha256: Sha256Digest::parse(&"a".repeat(64)).unwrap(),
            url: "https://ghcr.io/v2/homebrew/core/curl/blobs/sha256:aa"
                .parse()
                .unwrap(),
            size: 347618,
            size_source: crate::model::job::SizeSource::Manifest,
            key: ObjectKey::parse("2026-11-29/curl-8.17.0.arm64_tahoe.bottle.1.tar.gz").unwrap(),
        };
        let recorded = MirroredBottle::from_job(&job, 347618, Utc::now());
        assert_eq!(
            recorded.key.as_str(),
            "bottles/curl-8.17.0.arm64_tahoe.bottle.1.tar.gz"
        );
        assert_eq!(recorded.flat_key(), recorded.key);
        assert_eq!(recorded.archived_key(), None);
    }

    /// Records written before bottlesync recorded flat keys name the dated
    /// key, which the archive rule may have expired since: every reader
    /// goes through `flat_key`, and the dated key is only a copy source.
    #[test]
    fn an_older_record_naming_a_dated_key_reads_as_its_flat_key() {
        let sha = "b".repeat(64);
        let older = format!(
            r#"{{"schema":1,"updated_at":"2026-11-29T03:12:00Z","bottles":{{"{sha}":{{"name":"openssl@3","version":"3.6.0","rebuild":0,"tag":"arm64_tahoe","key":"2026-11-29/openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz","size":1,"downloaded_at":"2026-11-29T03:11:58Z"}}}}}}"#
        );
        let record = MirrorRecord::parse(older.as_bytes()).unwrap();
        let bottle = &record.bottles[&Sha256Digest::parse(&sha).unwrap()];
        assert_eq!(
            bottle.flat_key().as_str(),
            "bottles/openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz"
        );
        assert_eq!(
            bottle.archived_key().map(ObjectKey::as_str),
            Some("2026-11-29/openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz")
        );
        // Written back unchanged: what it names is decided by publication,
        // which knows whether the flat copy exists.
        let again = MirrorRecord::parse(&record.to_validated_json().unwrap()).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn invalid_records_are_errors() {
        assert!(
            MirrorRecord::parse(b"{")
                .unwrap_err()
                .contains("not a valid")
        );
        let wrong_schema = br#"{"schema":2,"updated_at":"2026-01-01T00:00:00Z","bottles":{}}"#;
        assert!(
            MirrorRecord::parse(wrong_schema)
                .unwrap_err()
                .contains("schema 2")
        );
        let bad_key = format!(
            r#"{{"schema":1,"updated_at":"2026-01-01T00:00:00Z","bottles":{{"{}":{{"name":"x","version":"1","rebuild":0,"tag":"all","key":"../x","size":1,"downloaded_at":"2026-01-01T00:00:00Z"}}}}}}"#,
            "a".repeat(64)
        );
        assert!(MirrorRecord::parse(bad_key.as_bytes()).is_err());
    }

    #[test]
    fn external_formats() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let array = format!(r#"["{a}","{b}"]"#);
        assert_eq!(parse_external(array.as_bytes()).unwrap().digests.len(), 2);
        let object = format!(r#"{{"{a}":{{"anything":1}}}}"#);
        assert_eq!(
            parse_external(object.as_bytes()).unwrap().format,
            "object keyed by sha256"
        );
        assert!(
            parse_external(br#"["nothex"]"#)
                .unwrap_err()
                .contains("item 0")
        );
        assert!(
            parse_external(br#"{"wget":"x"}"#)
                .unwrap_err()
                .contains("object key")
        );
        assert!(parse_external(b"42").unwrap_err().contains("expected"));
        assert!(
            parse_external(b"[1]")
                .unwrap_err()
                .contains("not a sha256 string")
        );
    }
}
