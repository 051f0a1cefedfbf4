//! What must hold for every input to the three parsers that take untrusted
//! bytes: the formula index, an SQS message body, a hash file. Shared by the
//! fuzz targets (`fuzz/fuzz_targets/*.rs`) and the regression suite
//! (`adapters/tests/hostile_input.rs`, via `#[path]`), so a corpus file replayed
//! in CI is judged exactly as the fuzzer judged it. Each `check_*` panics on
//! a violation and otherwise returns the parser's verdict.

#![allow(dead_code)] // each user needs only some of the checks

use bottlesync_core::model::hash_file::{ExternalHashes, MirrorRecord, parse_external};
use bottlesync_core::model::index::{FormulaIndex, HostPolicy, parse_index};
use bottlesync_core::model::message::{BottleMessage, validate_run_id};
use bottlesync_core::model::naming::{
    image_name, mirror_file_name, pkg_version, validate_formula_name, validate_version,
};
use bottlesync_core::{ObjectKey, Sha256Digest, Tag};
use chrono::NaiveDate;
use url::Url;

/// The API the fuzzed inputs are judged against; allowed hosts are ghcr.io
/// and this one.
pub const API_URL: &str = "https://formulae.brew.sh/api";
/// Longest error text a parser may produce: errors quote bounded excerpts,
/// never the (possibly huge) input.
pub const MAX_ERROR_CHARS: usize = 2_000;
/// The usual file-name limit (NAME_MAX): a mirror file name longer than this
/// cannot be stored in a directory mirror.
pub const MAX_FILE_NAME_BYTES: usize = 255;

pub fn hosts() -> HostPolicy {
    HostPolicy::new(&Url::parse(API_URL).expect("constant URL"), &[])
}

fn run_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).expect("constant date")
}

fn assert_bounded_error(what: &str, error: &str) {
    assert!(!error.trim().is_empty(), "{what}: empty error message");
    assert!(
        error.chars().count() <= MAX_ERROR_CHARS,
        "{what}: error message of {} chars (echoes the input?): {}",
        error.chars().count(),
        error.chars().take(300).collect::<String>()
    );
}

/// A key that cannot leave the mirror root, whatever store it lands in.
pub fn assert_safe_key(key: &str) {
    assert!(!key.is_empty(), "empty key");
    assert!(!key.starts_with('/'), "absolute key {key:?}");
    assert!(
        !key.chars().any(|c| c.is_control() || c == '\\'),
        "key {key:?} has a control character or backslash"
    );
    for part in key.split('/') {
        assert!(
            !matches!(part, "" | "." | ".."),
            "key {key:?} has component {part:?}"
        );
    }
    // The parser must agree, and must give the same key back.
    let parsed = ObjectKey::parse(key).unwrap_or_else(|e| panic!("safe key {key:?} refused: {e}"));
    assert_eq!(parsed.as_str(), key);
}

/// `<YYYY-MM-DD>/<file name>`, with a file name a directory can hold.
fn assert_dated_key(key: &str, expected_file: &str) {
    assert_safe_key(key);
    let (date, file) = key
        .split_once('/')
        .unwrap_or_else(|| panic!("key {key:?} is not <date>/<file>"));
    assert!(
        NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date.len() == 10,
        "key {key:?} does not start with a date"
    );
    assert_eq!(file, expected_file, "key {key:?} is not the mirror name");
    assert!(
        file.len() <= MAX_FILE_NAME_BYTES,
        "mirror file name of {} bytes: {file:?}",
        file.len()
    );
}

pub fn assert_sha(sha: &Sha256Digest) {
    let text = sha.as_str();
    assert!(
        text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "digest {text:?} is not 64 lowercase hex digits"
    );
    assert_eq!(Sha256Digest::from_bytes(&sha.to_bytes()), *sha);
}

/// A bottle URL the worker may fetch: http(s) on an allowed host, no
/// credentials or query, and naming exactly this image's blob.
pub fn assert_bottle_url(url: &Url, name: &str, sha: &Sha256Digest, hosts: &HostPolicy) {
    assert!(
        matches!(url.scheme(), "http" | "https"),
        "url {url} is not http(s)"
    );
    assert!(hosts.allows(url), "url {url} is off the allowed hosts");
    let host = url.host_str().unwrap_or("");
    assert!(
        hosts
            .allowed_hosts()
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host)),
        "url {url} host {host:?} is not literally one of {:?}",
        hosts.allowed_hosts()
    );
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "url {url} carries credentials"
    );
    assert!(url.query().is_none(), "url {url} has a query");
    assert!(
        url.path()
            .ends_with(&format!("/{}/blobs/sha256:{sha}", image_name(name))),
        "url {url} does not name {name}'s blob {sha}"
    );
}

/// Parses `bytes` as an index; every accepted bottle must be safe to fetch
/// and to store.
pub fn check_index(bytes: &[u8]) -> Result<FormulaIndex, String> {
    let hosts = hosts();
    let index = match parse_index(bytes, &hosts) {
        Ok(index) => index,
        Err(error) => {
            assert_bounded_error("index", &error);
            return Err(error);
        }
    };
    let mut names = std::collections::HashSet::new();
    for formula in &index.formulae {
        validate_formula_name(&formula.name)
            .unwrap_or_else(|e| panic!("accepted formula with bad name: {e}"));
        assert!(names.insert(&formula.name), "duplicate {:?}", formula.name);
        if !formula.bottles.is_empty() {
            validate_version(&formula.version)
                .unwrap_or_else(|e| panic!("accepted bottles with bad version: {e}"));
        }
        let pkg = pkg_version(&formula.version, formula.revision);
        for bottle in &formula.bottles {
            Tag::parse(bottle.tag.as_str()).expect("accepted tag reparses");
            let _ = bottle.tag.kind();
            assert_sha(&bottle.sha256);
            assert_bottle_url(&bottle.url, &formula.name, &bottle.sha256, &hosts);
            let file = mirror_file_name(&formula.name, &pkg, bottle.tag.as_str(), formula.rebuild);
            let key = ObjectKey::dated(run_date(), &file)
                .unwrap_or_else(|e| panic!("accepted bottle has no key: {e}"));
            assert_dated_key(key.as_str(), &file);
        }
    }
    for rejection in &index.rejections {
        assert_bounded_error("index rejection", &rejection.to_string());
    }
    // Tag selection runs over whatever was accepted; it must not panic.
    let tags: Vec<Tag> = index.formulae.iter().flat_map(|f| f.tags()).collect();
    let _ = bottlesync_core::model::tag::auto_tags(tags.iter());
    Ok(index)
}

/// Parses `body` as an SQS message; an accepted one must be safe to act on
/// and must survive a round trip unchanged.
pub fn check_message(body: &str) -> Result<BottleMessage, String> {
    let hosts = hosts();
    let message = match BottleMessage::parse(body, &hosts) {
        Ok(message) => message,
        Err(error) => {
            let error = error.to_string();
            assert_bounded_error("message", &error);
            assert!(
                error.contains("message"),
                "error does not name the message: {error}"
            );
            return Err(error);
        }
    };
    let job = &message.job;
    validate_run_id(&message.run_id).expect("accepted run id");
    validate_formula_name(&job.name).expect("accepted name");
    validate_version(&job.version).expect("accepted version");
    assert_sha(&job.sha256);
    assert_bottle_url(&job.url, &job.name, &job.sha256, &hosts);
    let file = mirror_file_name(&job.name, &job.pkg_version(), job.tag.as_str(), job.rebuild);
    assert_dated_key(job.key.as_str(), &file);
    let again = BottleMessage::parse(&message.to_body(), &hosts)
        .unwrap_or_else(|e| panic!("accepted message does not round-trip: {e}"));
    assert_eq!(again, message);
    Ok(message)
}

/// Parses `bytes` as an external hash file (and, separately, as our own
/// record); what is accepted has canonical digests and safe keys, and a
/// record we accept is one we can write back and read again.
pub fn check_hash_file(bytes: &[u8]) -> Result<ExternalHashes, String> {
    if let Ok(record) = MirrorRecord::parse(bytes) {
        for (sha, bottle) in &record.bottles {
            assert_sha(sha);
            assert_safe_key(bottle.key.as_str());
            validate_formula_name(&bottle.name).expect("accepted name");
            validate_version(&bottle.version).expect("accepted version");
        }
        let written = record
            .to_validated_json()
            .unwrap_or_else(|e| panic!("accepted record cannot be written back: {e}"));
        assert_eq!(MirrorRecord::parse(&written).expect("rereads"), record);
    }
    match parse_external(bytes) {
        Ok(hashes) => {
            for sha in &hashes.digests {
                assert_sha(sha);
            }
            for (sha, bottle) in &hashes.bottles {
                assert!(hashes.digests.contains(sha), "record {sha} not in digests");
                assert_safe_key(bottle.key.as_str());
            }
            Ok(hashes)
        }
        Err(error) => {
            assert_bounded_error("hash file", &error);
            Err(error)
        }
    }
}
