//! The body of one SQS message: one bottle of one run. Parsing is strict
//! (unknown fields refused, sizes bounded) and validation re-checks
//! everything a hostile or broken producer could get wrong, because the key
//! and URL in it decide what is written where.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::index::{HostPolicy, check_bottle_url};
use crate::model::job::BottleJob;
use crate::model::naming::{
    checked_mirror_file_name, image_name, validate_formula_name, validate_version,
};
use crate::serde_problem;

/// SQS's own limit on a message body.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleMessage {
    /// Message format version.
    pub v: u32,
    pub run_id: String,
    #[serde(flatten)]
    pub job: BottleJob,
}

pub const MESSAGE_VERSION: u32 = 1;

/// A run id: `YYYYMMDDTHHMMSSZ-xxxxxxxx` or any short `[A-Za-z0-9_-]` word.
pub fn validate_run_id(run_id: &str) -> std::result::Result<(), String> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 64
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "run id {:?} is not 1-64 of A-Z a-z 0-9 - _",
            crate::shorten(run_id, 80)
        ))
    }
}

impl BottleMessage {
    pub fn new(run_id: &str, job: BottleJob) -> Self {
        BottleMessage {
            v: MESSAGE_VERSION,
            run_id: run_id.to_string(),
            job,
        }
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("messages serialise")
    }

    /// Parses and validates a body. The error says what is wrong.
    pub fn parse(body: &str, hosts: &HostPolicy) -> Result<Self> {
        let bad = |problem: String| Error::message(problem);
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(bad(format!(
                "body is {} bytes, over {MAX_MESSAGE_BYTES}",
                body.len()
            )));
        }
        let message: BottleMessage = serde_json::from_str(body)
            .map_err(|e| bad(format!("not a bottle message: {}", serde_problem(&e))))?;
        if message.v != MESSAGE_VERSION {
            return Err(bad(format!(
                "message version {} is not supported",
                message.v
            )));
        }
        validate_run_id(&message.run_id).map_err(bad)?;
        message.validate_job(hosts).map_err(bad)?;
        Ok(message)
    }

    fn validate_job(&self, hosts: &HostPolicy) -> std::result::Result<(), String> {
        let job = &self.job;
        validate_formula_name(&job.name)?;
        validate_version(&job.version)?;
        let expected_name =
            checked_mirror_file_name(&job.name, &job.pkg_version(), job.tag.as_str(), job.rebuild)?;
        if job.key.file_name() != expected_name {
            return Err(format!(
                "key {} does not end in the bottle's mirror name {expected_name}",
                job.key
            ));
        }
        // Exactly `<YYYY-MM-DD>/<file>`, as the planner writes it: anything
        // else could place a bottle in the mirror's internal folder or
        // beside bottles_hash.json.
        if !job.key.is_dated() {
            return Err(format!("key {} is not <YYYY-MM-DD>/<file name>", job.key));
        }
        if !matches!(job.url.scheme(), "http" | "https") || !hosts.allows(&job.url) {
            return Err(format!(
                "url {} is not on an allowed host ({})",
                crate::shorten(job.url.as_str(), 200),
                hosts.allowed_hosts().join(", ")
            ));
        }
        // The rest as for index entries: no credentials, no query, this blob.
        check_bottle_url(&job.url, &image_name(&job.name), &job.sha256, hosts)
    }
}

/// The run id and sha256 of a body that failed validation, when they can
/// be read, so the failure can still be counted for its run.
pub fn salvage_ids(body: &str) -> Option<(String, crate::Sha256Digest)> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let run_id = value.get("run_id")?.as_str()?.to_string();
    validate_run_id(&run_id).ok()?;
    let sha = crate::Sha256Digest::parse(value.get("sha256")?.as_str()?).ok()?;
    Some((run_id, sha))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectKey, Sha256Digest, SizeSource, Tag};

    fn hosts() -> HostPolicy {
        HostPolicy::new(&"https://formulae.brew.sh/api".parse().unwrap(), &[])
    }

    fn message() -> BottleMessage {
        let sha = Sha256Digest::parse(&"ab".repeat(32)).unwrap();
        BottleMessage::new(
            "20261129T030000Z-1a2b3c4d",
            BottleJob {
                name: "openssl@3".into(),
                version: "3.6.0".into(),
                revision: 1,
                rebuild: 0,
                tag: Tag::parse("arm64_tahoe").unwrap(),
                url: format!("https://ghcr.io/v2/homebrew/core/openssl/3/blobs/sha256:{sha}")
                    .parse()
                    .unwrap(),
                sha256: sha,
                size: 10,
                size_source: SizeSource::Manifest,
                key: ObjectKey::parse("2026-11-29/openssl@3-3.6.0_1.arm64_tahoe.bottle.tar.gz")
                    .unwrap(),
            },
        )
    }

    #[test]
    fn round_trips() {
        let m = message();
        assert_eq!(BottleMessage::parse(&m.to_body(), &hosts()).unwrap(), m);
        let body: serde_json::Value = serde_json::from_str(&m.to_body()).unwrap();
        assert_eq!(body["sha256"], "ab".repeat(32));
        assert_eq!(body["run_id"], "20261129T030000Z-1a2b3c4d");
    }

    #[test]
    fn refuses_what_could_write_elsewhere_or_fetch_elsewhere() {
        let mut v: serde_json::Value = serde_json::from_str(&message().to_body()).unwrap();
        let cases = [
            (
                "key",
                serde_json::json!("../../etc/openssl@3-3.6.0_1.arm64_tahoe.bottle.tar.gz"),
            ),
            ("key", serde_json::json!("2026-11-29/other.tar.gz")),
            (
                "key",
                serde_json::json!("a/b/openssl@3-3.6.0_1.arm64_tahoe.bottle.tar.gz"),
            ),
            (
                "url",
                serde_json::json!(format!(
                    "https://evil.example/v2/homebrew/core/openssl/3/blobs/sha256:{}",
                    "ab".repeat(32)
                )),
            ),
            (
                "url",
                serde_json::json!(format!(
                    "https://ghcr.io/v2/homebrew/core/other/blobs/sha256:{}",
                    "ab".repeat(32)
                )),
            ),
            ("sha256", serde_json::json!("zz")),
            ("run_id", serde_json::json!("../x")),
            ("name", serde_json::json!("../openssl")),
            ("extra", serde_json::json!(1)),
        ];
        for (field, value) in cases {
            let original = v.get(field).cloned();
            v[field] = value.clone();
            let err = BottleMessage::parse(&v.to_string(), &hosts());
            assert!(err.is_err(), "{field}={value} accepted");
            match original {
                Some(o) => v[field] = o,
                None => {
                    v.as_object_mut().unwrap().remove(field);
                }
            }
        }
        assert!(BottleMessage::parse("{", &hosts()).is_err());
        assert!(BottleMessage::parse(&"x".repeat(MAX_MESSAGE_BYTES + 1), &hosts()).is_err());
        assert_eq!(
            salvage_ids(&v.to_string()).unwrap().0,
            "20261129T030000Z-1a2b3c4d"
        );
    }
}
