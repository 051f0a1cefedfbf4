//! Hostile input to the three parsers that take untrusted bytes (the formula
//! index, SQS message bodies, hash files): the fuzz corpus and hand-made
//! regressions replayed under the fuzz targets' invariants, proptest
//! properties, and inputs at and over the size limits.

#[path = "../../fuzz/invariants.rs"]
mod invariants;

use std::path::{Path, PathBuf};
use std::time::Instant;

use bottlesync_core::model::hash_file::{MAX_HASH_FILE_BYTES, parse_external};
use bottlesync_core::model::message::{BottleMessage, MAX_MESSAGE_BYTES};
use proptest::prelude::*;

use invariants::{check_hash_file, check_index, check_message};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every committed input of a target: seeds and regressions.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for dir in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(dir).join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            found.push((name, std::fs::read(&path).unwrap()));
        }
    }
    found.sort();
    found
}

/// What a hand-made regression must come to.
#[derive(Debug)]
enum Expect {
    /// Accepted with this many bottles (index), digests (hash file) or at
    /// all (message).
    Accept(usize),
    /// Refused, the error (or a rejection) containing this text.
    Reject(&'static str),
}
use Expect::{Accept, Reject};
use bottlesync_core::ports::store::DocumentStore;

fn regression(target: &str, file: &str) -> Vec<u8> {
    let path = fuzz_dir().join("regressions").join(target).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_table(
    target: &str,
    table: &[(&str, Expect)],
    outcome: impl Fn(&[u8]) -> Result<usize, String>,
) {
    let mut failures = Vec::new();
    for (file, expect) in table {
        let result = outcome(&regression(target, file));
        let ok = match (expect, &result) {
            (Accept(n), Ok(m)) => n == m,
            (Reject(text), Err(error)) => error.contains(text),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{target}/{file}: expected {expect:?}, got {result:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every committed regression is in the table, so none is replayed
    // without a stated expectation (crash artifacts get one when added).
    for (name, _) in inputs(target) {
        if !name.starts_with("seed-") {
            assert!(
                table.iter().any(|(file, _)| *file == name),
                "{target}/{name} has no expectation in hostile_input.rs"
            );
        }
    }
}

#[test]
fn corpus_and_regressions_keep_the_invariants() {
    let mut counts = Vec::new();
    for target in ["index", "message", "hash_file"] {
        let files = inputs(target);
        for (name, bytes) in &files {
            let run = std::panic::catch_unwind(|| match target {
                "index" => drop(check_index(bytes)),
                "message" => {
                    if let Ok(body) = std::str::from_utf8(bytes) {
                        drop(check_message(body));
                    }
                }
                _ => drop(check_hash_file(bytes)),
            });
            assert!(run.is_ok(), "{target}/{name} broke an invariant");
        }
        counts.push(files.len());
    }
    assert!(
        counts.iter().all(|&n| n >= 5),
        "corpus went missing: {counts:?}"
    );
}

#[test]
fn seeds_are_accepted() {
    let index = check_index(&regression_or_seed("index", "seed-formula.json")).unwrap();
    assert!(index.rejections.is_empty(), "{:?}", index.rejections);
    assert_eq!(index.formulae.len(), 7);
    let bottles: usize = index.formulae.iter().map(|f| f.bottles.len()).sum();
    assert_eq!(bottles, 1 + 4 * 4 + 2);
    let body = String::from_utf8(regression_or_seed("message", "seed-openssl.json")).unwrap();
    check_message(&body).unwrap();
    let hashes =
        check_hash_file(&regression_or_seed("hash_file", "seed-bottles_hash.json")).unwrap();
    assert_eq!(hashes.bottles.len(), 3);
}

fn regression_or_seed(target: &str, file: &str) -> Vec<u8> {
    std::fs::read(fuzz_dir().join("corpus").join(target).join(file)).unwrap()
}

fn index_outcome(bytes: &[u8]) -> Result<usize, String> {
    let index = check_index(bytes)?;
    let bottles: usize = index.formulae.iter().map(|f| f.bottles.len()).sum();
    if index.rejections.is_empty() {
        Ok(bottles)
    } else {
        // Only a duplicate entry leaves its first copy standing.
        let duplicate_only = index
            .rejections
            .iter()
            .all(|r| r.problem.starts_with("duplicate formula name"));
        assert!(
            bottles == 0 || duplicate_only,
            "a hostile case accepted a bottle: {index:#?}"
        );
        Err(index
            .rejections
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

#[test]
fn hostile_index_entries() {
    check_table(
        "index",
        &[
            (
                "name-traversal.json",
                Reject("\"../../etc\" rejected: formula name"),
            ),
            ("name-slash.json", Reject("contains '/'")),
            ("name-nul.json", Reject("contains '\\0'")),
            ("name-lookalike.json", Reject("contains 'е'")),
            // Image `x/..`: the URL parser normalises `..` away, so the
            // registry shape can never match.
            ("name-dotdot-image.json", Reject("registry shape")),
            (
                "version-traversal.json",
                Reject("version \"1.0/../../x\" contains '/'"),
            ),
            (
                "version-absurd-length.json",
                Reject("must be 1 to 128 characters"),
            ),
            ("rebuild-huge.json", Reject("malformed entry")),
            (
                "rebuild-negative.json",
                Reject("malformed entry: invalid value: integer `-1`"),
            ),
            (
                "revision-negative.json",
                Reject("malformed entry: invalid value: integer `-1`"),
            ),
            (
                "file-name-too-long.json",
                Reject("more than the 255 a file name may have"),
            ),
            ("tag-traversal.json", Reject("\"../x\" is not a bottle tag")),
            // Digests are case-insensitive; the URL path carries the
            // lowercase form.
            ("sha-uppercase.json", Accept(1)),
            ("sha-uppercase-in-url.json", Reject("registry shape")),
            ("sha-short.json", Reject("is not a sha256")),
            ("sha-nonhex.json", Reject("is not a sha256")),
            ("url-userinfo-host.json", Reject("url carries credentials")),
            // An allowed host on another port: the host is ours to trust and
            // the blob is verified against the index's sha256 anyway.
            ("url-port.json", Accept(1)),
            ("url-idn-lookalike.json", Reject("host \"xn--")),
            (
                "url-trailing-dot.json",
                Reject("host \"ghcr.io.\" is not allowed"),
            ),
            ("url-other-blob.json", Reject("registry shape")),
            ("url-other-image.json", Reject("registry shape")),
            ("url-query.json", Reject("registry shape")),
            ("url-fragment.json", Reject("registry shape")),
            ("url-file-scheme.json", Reject("is not http(s)")),
            ("url-huge.json", Reject("registry shape")),
            (
                "no-stable-version.json",
                Reject("has bottles but no stable version"),
            ),
            ("duplicate-field.json", Reject("duplicate field `name`")),
            ("duplicate-formula.json", Reject("duplicate formula name")),
            // Duplicate keys in a JSON object: the last one wins, as in
            // every JSON reader; both are valid bottles.
            ("duplicate-tag.json", Accept(1)),
            // Entries are split with RawValue, whose skipping is iterative:
            // depth costs a byte of memory per level, never stack.
            (
                "deep-nesting-top.json",
                Reject("index entry \"#0\" rejected: malformed entry"),
            ),
            ("deep-nesting-entry.json", Accept(0)),
            // The name as a deep value: serde_json's recursion limit (128).
            (
                "deep-nesting-name.json",
                Reject("index entry \"#0\" rejected: malformed entry"),
            ),
            ("field-name-huge.json", Reject("malformed entry")),
            ("not-an-array.json", Reject("not a JSON array of formulae")),
            // Invalid UTF-8 anywhere refuses the whole document, with its position.
            (
                "not-utf8.json",
                Reject("not a JSON array of formulae: invalid unicode code point at line 1"),
            ),
            (
                "jws-hostile-payload.json",
                Reject("\"../x\" rejected: formula name"),
            ),
            ("name-not-a-string.json", Reject("malformed entry")),
        ],
        index_outcome,
    );
}

fn message_outcome(bytes: &[u8]) -> Result<usize, String> {
    let body = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    check_message(body).map(|_| 1)
}

#[test]
fn hostile_messages() {
    check_table(
        "message",
        &[
            ("valid.json", Accept(1)),
            ("key-traversal.json", Reject("has a '.' or '..' component")),
            ("key-absolute.json", Reject("empty path component")),
            (
                "key-internal-folder.json",
                Reject("is not <YYYY-MM-DD>/<file name>"),
            ),
            (
                "key-beside-hash-file.json",
                Reject("is not <YYYY-MM-DD>/<file name>"),
            ),
            (
                "key-bad-date.json",
                Reject("is not <YYYY-MM-DD>/<file name>"),
            ),
            (
                "key-unpadded-date.json",
                Reject("is not <YYYY-MM-DD>/<file name>"),
            ),
            ("key-nul.json", Reject("control character")),
            (
                "key-backslash.json",
                Reject("control character or backslash"),
            ),
            (
                "key-other-file.json",
                Reject("does not end in the bottle's mirror name"),
            ),
            ("url-credentials.json", Reject("url carries credentials")),
            (
                "url-userinfo-host.json",
                Reject("url https://ghcr.io@evil.com/v2/homebrew/core/openssl/3/blobs/sha256:"),
            ),
            ("url-query.json", Reject("registry shape")),
            ("url-port.json", Accept(1)),
            (
                "url-idn-lookalike.json",
                Reject("is not on an allowed host"),
            ),
            ("url-other-blob.json", Reject("registry shape")),
            (
                "url-huge-invalid.json",
                Reject("not a bottle message: invalid international domain name"),
            ),
            ("sha-uppercase.json", Accept(1)),
            ("sha-short.json", Reject("is not a sha256")),
            ("rebuild-huge.json", Reject("not a bottle message")),
            (
                "size-negative.json",
                Reject("not a bottle message: invalid value: integer `-1`"),
            ),
            ("size-source-huge.json", Reject("unknown variant")),
            (
                "name-traversal.json",
                Reject("formula name \"../openssl\" contains '/'"),
            ),
            ("name-lookalike.json", Reject("formula name")),
            ("run-id-traversal.json", Reject("run id \"../x\"")),
            (
                "version-unsupported.json",
                Reject("message version 2 is not supported"),
            ),
            ("unknown-field-huge.json", Reject("unknown field")),
            ("duplicate-field.json", Reject("duplicate field `name`")),
            ("deep-nesting.json", Reject("not a bottle message")),
            (
                "file-name-too-long.json",
                Reject("more than the 255 a file name may have"),
            ),
        ],
        message_outcome,
    );
}

#[test]
fn hostile_hash_files() {
    check_table(
        "hash_file",
        &[
            (
                "record-key-traversal.json",
                Reject("has a '.' or '..' component"),
            ),
            ("record-key-absolute.json", Reject("empty path component")),
            (
                "record-key-backslash.json",
                Reject("control character or backslash"),
            ),
            ("record-key-nul.json", Reject("control character")),
            (
                "record-name-traversal.json",
                Reject("formula name \"../curl\""),
            ),
            (
                "record-version-slash.json",
                Reject("version \"1/2\" contains '/'"),
            ),
            (
                "record-size-negative.json",
                Reject("invalid value: integer `-1`"),
            ),
            (
                "record-rebuild-huge.json",
                Reject("not a valid schema-1 record"),
            ),
            ("record-schema-2.json", Reject("schema 2 is not supported")),
            // Two spellings of one digest are one bottle.
            ("record-sha-uppercase-duplicate.json", Accept(1)),
            ("record-sha-short.json", Reject("\"abc\" is not a sha256")),
            ("record-leap-second.json", Accept(1)),
            ("array-nonhex.json", Reject("item 0: \"zzzz")),
            (
                "array-number.json",
                Reject("item 0 is 1, not a sha256 string"),
            ),
            ("array-huge-item.json", Reject("not a sha256 string")),
            (
                "object-keyed-by-name.json",
                Reject("object key: \"wget\" is not a sha256"),
            ),
            (
                "object-schema-only.json",
                Reject("not a valid schema-1 record"),
            ),
            // Only the top level is parsed generically: depth is skipped, not recursed.
            ("deep-nesting.json", Reject("item 0 is [[[[")),
            (
                "top-level-string.json",
                Reject("expected a schema-1 record"),
            ),
            ("empty.json", Reject("not JSON: EOF")),
        ],
        |bytes| check_hash_file(bytes).map(|h| h.digests.len()),
    );
}

// ---- properties -----------------------------------------------------------

/// Text a hostile producer would try in a name, version, tag or key.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9@+._-]{0,12}",
        "[A-Za-z0-9._~+-]{1,10}",
        Just("..".to_string()),
        Just("../../etc".to_string()),
        Just("a/b".to_string()),
        Just("a\\b".to_string()),
        Just("a\u{0}b".to_string()),
        Just("wg\u{435}t".to_string()),
        Just(String::new()),
        "\\PC{0,20}",
        any::<String>(),
    ]
}

fn hex_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{64}",
        "[0-9A-F]{64}",
        "[0-9a-f]{0,70}",
        "[0-9a-z]{64}",
        any::<String>(),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("https://ghcr.io".to_string()),
        Just("http://ghcr.io:1234".to_string()),
        Just("https://formulae.brew.sh".to_string()),
        Just("https://ghcr.io@evil.com".to_string()),
        Just("https://user:pw@ghcr.io".to_string()),
        Just("https://evil.com".to_string()),
        Just("https://gh\u{441}r.io".to_string()),
        Just("ftp://ghcr.io".to_string()),
        Just("https://GHCR.IO".to_string()),
    ]
}

fn is_good_name(name: &str) -> bool {
    bottlesync_core::model::naming::validate_formula_name(name).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn index_of_arbitrary_bytes_keeps_invariants(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = check_index(&bytes);
    }

    /// Entries built from hostile parts: accepted ones are safe (the
    /// invariants), and an entry made only of good parts is accepted.
    #[test]
    fn index_entries_from_hostile_parts(
        name in hostile_text(),
        version in hostile_text(),
        tag in prop_oneof!["[a-z0-9_]{1,12}", hostile_text()],
        sha in hex_like(),
        url_sha in prop_oneof![Just(None), hex_like().prop_map(Some)],
        host in host(),
        rebuild in any::<i64>(),
        revision in 0u32..3,
    ) {
        let image = bottlesync_core::model::naming::image_name(&name);
        let url = format!("{host}/v2/homebrew/core/{image}/blobs/sha256:{}", url_sha.as_deref().unwrap_or(&sha.to_ascii_lowercase()));
        let entry = serde_json::json!([{
            "name": name, "versions": {"stable": version}, "revision": revision,
            "bottle": {"stable": {"rebuild": rebuild, "files": {tag.clone(): {"url": url, "sha256": sha}}}}
        }]);
        let index = check_index(entry.to_string().as_bytes()).expect("an array of objects parses");
        let good = is_good_name(&name)
            && bottlesync_core::model::naming::validate_version(&version).is_ok()
            && bottlesync_core::Tag::parse(&tag).is_ok()
            && bottlesync_core::Sha256Digest::parse(&sha).is_ok()
            && url_sha.is_none()
            && (0..=i64::from(u32::MAX)).contains(&rebuild)
            && matches!(host.as_str(), "https://ghcr.io" | "http://ghcr.io:1234" | "https://formulae.brew.sh" | "https://GHCR.IO")
            && url::Url::parse(&url).is_ok_and(|u| u.path().ends_with(&format!("/{image}/blobs/sha256:{}", sha.to_ascii_lowercase())))
            && name.len() + version.len() + tag.len() + 40 < 255;
        let accepted: usize = index.formulae.iter().map(|f| f.bottles.len()).sum();
        prop_assert_eq!(accepted, usize::from(good), "{:?}", index.rejections);
        prop_assert_eq!(index.rejections.is_empty(), good);
    }

    #[test]
    fn message_of_arbitrary_text_keeps_invariants(body in "\\PC{0,300}") {
        let _ = check_message(&body);
    }

    /// A valid message with one field replaced by hostile text: refused
    /// unless the replacement happens to be valid (then it is safe).
    #[test]
    fn message_with_one_hostile_field(
        field in prop_oneof![Just("name"), Just("version"), Just("tag"), Just("sha256"), Just("url"), Just("key"), Just("run_id"), Just("size_source"), Just("extra")],
        value in prop_oneof![
            hostile_text().prop_map(serde_json::Value::from),
            hex_like().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            (host(), hostile_text()).prop_map(|(h, p)| serde_json::Value::from(format!("{h}/{p}"))),
        ],
    ) {
        let mut body: serde_json::Value = serde_json::from_slice(&regression("message", "valid.json")).unwrap();
        let original = body.get(field).cloned();
        body[field] = value.clone();
        let result = check_message(&body.to_string());
        if original.as_ref() != Some(&value) && field != "run_id" && field != "size_source" {
            // Only a change that keeps the bottle's identity can pass: the
            // same digest in another case.
            let same_sha = field == "sha256"
                && value.as_str().is_some_and(|s| s.eq_ignore_ascii_case(original.as_ref().unwrap().as_str().unwrap()));
            prop_assert!(result.is_err() || same_sha, "{} = {} accepted", field, value);
        }
    }

    #[test]
    fn hash_file_of_arbitrary_bytes_keeps_invariants(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = check_hash_file(&bytes);
    }

    /// A record whose key, name and version are hostile: accepted only when
    /// each is valid, and then the key is safe (the invariants).
    #[test]
    fn hash_records_from_hostile_parts(
        key in prop_oneof![hostile_text(), (hostile_text(), hostile_text()).prop_map(|(a, b)| format!("{a}/{b}"))],
        name in hostile_text(),
        version in hostile_text(),
        sha in hex_like(),
    ) {
        let record = serde_json::json!({
            "schema": 1, "updated_at": "2026-11-29T00:00:00Z",
            "bottles": {sha.clone(): {"name": name, "version": version, "rebuild": 0, "tag": "all",
                "key": key, "size": 1, "downloaded_at": "2026-11-29T00:00:00Z"}}
        });
        let result = check_hash_file(record.to_string().as_bytes());
        let good = bottlesync_core::ObjectKey::parse(&key).is_ok()
            && is_good_name(&name)
            && bottlesync_core::model::naming::validate_version(&version).is_ok()
            && bottlesync_core::Sha256Digest::parse(&sha).is_ok();
        prop_assert_eq!(result.is_ok(), good, "{:?}", result);
    }

    #[test]
    fn digest_arrays(items in proptest::collection::vec(hex_like(), 0..20)) {
        let result = check_hash_file(serde_json::to_string(&items).unwrap().as_bytes());
        let good = items.iter().all(|s| bottlesync_core::Sha256Digest::parse(s).is_ok());
        prop_assert_eq!(result.is_ok(), good);
        if let Ok(hashes) = result {
            let distinct: std::collections::BTreeSet<String> = items.iter().map(|s| s.to_ascii_lowercase()).collect();
            prop_assert_eq!(hashes.digests.len(), distinct.len());
        }
    }
}

// ---- size limits ----------------------------------------------------------

#[test]
fn message_bodies_at_and_over_the_sqs_limit() {
    let valid = String::from_utf8(regression("message", "valid.json")).unwrap();
    let hosts = invariants::hosts();

    // A valid message padded with JSON whitespace to exactly the limit.
    let mut padded = valid.trim_end_matches('}').to_string();
    padded.push_str(&" ".repeat(MAX_MESSAGE_BYTES - padded.len() - 1));
    padded.push('}');
    assert_eq!(padded.len(), MAX_MESSAGE_BYTES);
    BottleMessage::parse(&padded, &hosts).expect("a body of exactly 256 KiB is read");

    // Exactly at the limit but not a message: refused for what it is.
    let junk = "x".repeat(MAX_MESSAGE_BYTES);
    let error = BottleMessage::parse(&junk, &hosts).unwrap_err().to_string();
    assert!(
        error.contains("message") && error.contains("not a bottle message"),
        "{error}"
    );
    assert!(error.len() < 500, "{error}");

    // One byte over: refused before parsing, naming the limit.
    padded.insert(padded.len() - 1, ' ');
    let error = BottleMessage::parse(&padded, &hosts)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("message")
            && error.contains(&format!(
                "body is {} bytes, over {MAX_MESSAGE_BYTES}",
                MAX_MESSAGE_BYTES + 1
            )),
        "{error}"
    );
}

/// `{"schema":1,...}` with `count` bottles, written to `path`.
fn write_hash_file(path: &Path, count: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write!(
        out,
        r#"{{"schema":1,"updated_at":"2026-11-29T00:00:00Z","bottles":{{"#
    )
    .unwrap();
    for i in 0..count {
        let sep = if i == 0 { "" } else { "," };
        write!(
            out,
            r#"{sep}"{i:064x}":{{"name":"formula-{i}","version":"1.{i}","rebuild":0,"tag":"arm64_tahoe","key":"2026-11-29/formula-{i}-1.{i}.arm64_tahoe.bottle.tar.gz","size":{i},"downloaded_at":"2026-11-29T00:00:00Z"}}"#
        )
        .unwrap();
    }
    write!(out, "}}}}").unwrap();
    out.flush().unwrap();
}

async fn read_external(
    path: &Path,
) -> bottlesync_core::Result<bottlesync_core::model::hash_file::ExternalHashes> {
    let registry =
        bottlesync_adapters::http::registry::RegistryClient::new(&Default::default()).unwrap();
    let documents = bottlesync_adapters::wiring::LocationReader {
        registry: std::sync::Arc::new(registry),
    };
    bottlesync_core::model::hash_file::read_external_hashes(
        &bottlesync_core::model::location::Location::Dir(path.to_path_buf()),
        &documents,
    )
    .await
}

#[tokio::test]
async fn a_hash_file_with_100k_entries_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bottles_hash.json");
    write_hash_file(&path, 100_000);
    let started = Instant::now();
    let hashes = read_external(&path).await.unwrap();
    assert_eq!(hashes.digests.len(), 100_000);
    assert_eq!(hashes.bottles.len(), 100_000);
    eprintln!("100k-entry hash file read in {:?}", started.elapsed());
}

/// The million-entry case (~220 MB): run by scripts/fuzz.sh under
/// `/usr/bin/time -v`, or by hand with `--ignored`. Reads
/// `$BOTTLESYNC_BIG_HASH_FILE` when set (so the measurement excludes
/// writing it), otherwise writes one.
#[tokio::test]
#[ignore = "writes and reads ~220 MB; see scripts/fuzz.sh"]
async fn a_hash_file_with_a_million_entries_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var_os("BOTTLESYNC_BIG_HASH_FILE") {
        Some(path) => PathBuf::from(path),
        None => {
            let path = dir.path().join("bottles_hash.json");
            write_hash_file(&path, 1_000_000);
            path
        }
    };
    let started = Instant::now();
    let hashes = read_external(&path).await.unwrap();
    assert_eq!(hashes.digests.len(), 1_000_000);
    eprintln!(
        "1M-entry hash file ({} bytes) read in {:?}",
        std::fs::metadata(&path).unwrap().len(),
        started.elapsed()
    );
}

/// Generates the million-entry file for the measured run above.
#[test]
#[ignore = "writes ~220 MB to $BOTTLESYNC_BIG_HASH_FILE; see scripts/fuzz.sh"]
fn write_a_million_entry_hash_file() {
    let path = std::env::var_os("BOTTLESYNC_BIG_HASH_FILE").expect("BOTTLESYNC_BIG_HASH_FILE");
    write_hash_file(Path::new(&path), 1_000_000);
}

#[tokio::test]
async fn an_oversized_hash_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    // Sparse: no disk or memory is spent on the 512 MiB.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(MAX_HASH_FILE_BYTES + 1)
        .unwrap();
    let started = Instant::now();
    let error = read_external(&path).await.unwrap_err().to_string();
    assert!(
        error.contains(&format!("hash file {}", path.display()))
            && error.contains(&format!(
                "{} bytes is more than the {MAX_HASH_FILE_BYTES} allowed",
                MAX_HASH_FILE_BYTES + 1
            )),
        "{error}"
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "read it instead of refusing"
    );
}

#[tokio::test]
async fn endless_files_are_cut_at_the_limit() {
    // /dev/zero says it holds 0 bytes and never ends: the size on disk
    // cannot be trusted, only the count of bytes read.
    let zero = Path::new("/dev/zero");
    assert_eq!(
        bottlesync_adapters::local::local_store::read_at_most(zero, 1 << 20)
            .await
            .unwrap(),
        None
    );
    let small = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(small.path(), b"[]").unwrap();
    assert_eq!(
        bottlesync_adapters::local::local_store::read_at_most(small.path(), 2)
            .await
            .unwrap(),
        Some(b"[]".to_vec())
    );
    assert_eq!(
        bottlesync_adapters::local::local_store::read_at_most(small.path(), 1)
            .await
            .unwrap(),
        None
    );

    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(zero, dir.path().join("bottles_hash.json")).unwrap();
    let store = bottlesync_adapters::local::local_store::LocalStore::open_read_only(dir.path());
    let key = bottlesync_core::ObjectKey::parse("bottles_hash.json").unwrap();
    let error = store.get(&key, 1 << 20).await.unwrap_err().to_string();
    assert!(
        error.contains("bottles_hash.json is more than the 1048576 bytes allowed"),
        "{error}"
    );
}

#[test]
fn external_hash_formats_parse_a_large_array() {
    // 100k digests as a bare array (the cheapest external format).
    let items: Vec<String> = (0..100_000u64).map(|i| format!("{i:064x}")).collect();
    let hashes = parse_external(serde_json::to_string(&items).unwrap().as_bytes()).unwrap();
    assert_eq!(hashes.digests.len(), 100_000);
    assert_eq!(hashes.format, "array of sha256 strings");
}
