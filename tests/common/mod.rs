//! What the integration tests share: running the `bottlesync` binary,
//! `moto_server` (a real S3 API on loopback, from the loadtest crate), and the expected
//! mirror computed from the stand-in's own ground truth (not from our code).

#![allow(dead_code)]

pub mod stack;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

#[allow(unused_imports)]
pub use bottlesync_aws_harness::moto::Moto;
use bottlesync_loadtest::{BottleInfo, StandIn};
use sha2::{Digest, Sha256};

pub const DATE: &str = "2026-11-29";
/// `--tags auto` on the tricky catalog: the three newest macOS releases.
pub const AUTO_TAGS: [&str; 5] = [
    "arm64_golden_gate",
    "arm64_tahoe",
    "tahoe",
    "arm64_sequoia",
    "sequoia",
];

/// A `bottlesync` command with a clean environment (no stray BOTTLESYNC_*,
/// no real AWS credentials) and plain log lines.
pub fn bottlesync() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bottlesync"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BOTTLESYNC_") || key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("BOTTLESYNC_PROGRESS", "log").env("NO_COLOR", "1");
    cmd
}

/// The bytes of the S3 object `key`.
pub async fn s3_object_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let body = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject {key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap();
    body.into_bytes().to_vec()
}

/// The tags of the S3 object `key`, as `name=value`, sorted: a dated
/// bottle carries `bottlesync-archive=dated` (what the archive lifecycle
/// rule expires), nothing else carries any.
pub async fn object_tags(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<String> {
    let tagging = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObjectTagging {key}: {e:?}"));
    let mut tags: Vec<String> = tagging
        .tag_set()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect();
    tags.sort();
    tags
}

pub fn sync_args(standin: &StandIn, dest: &str) -> Vec<String> {
    vec![
        "sync".into(),
        "--dest".into(),
        dest.into(),
        "--api-url".into(),
        standin.api_url(),
        "--date".into(),
        DATE.into(),
    ]
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into(),
            stderr: String::from_utf8_lossy(&output.stderr).into(),
        }
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs the binary to completion off the async runtime (the stand-in
/// serves from the test's runtime meanwhile).
pub async fn run(mut cmd: Command) -> Run {
    tokio::task::spawn_blocking(move || Run::from(cmd.output().expect("bottlesync runs")))
        .await
        .unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// The bottles a mirror for `client_tags` must hold, by sha256: the
/// formulae's, and Portable Ruby's (`--portable-ruby auto`: every version
/// the stand-in serves, two at most).
pub fn expected_bottles(
    standin: &StandIn,
    client_tags: &[&str],
    include_disabled: bool,
) -> BTreeMap<String, BottleInfo> {
    let mut expected = standin.expected_mirror(client_tags, include_disabled);
    for ruby in standin.expected_portable_ruby(client_tags, None) {
        expected.insert(ruby.sha256.clone(), ruby);
    }
    expected
}

/// Every regular file below `root`, relative, `/`-separated.
pub fn files_below(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The archive view of a mirror (dated bottles and the hash file), leaving
/// out `.bottlesync/` and the brew view under `bottles/` and `api/`
/// (`tests/brew_mirror.rs` checks that one as brew uses it).
pub fn mirror_files(root: &Path) -> BTreeSet<String> {
    files_below(root)
        .into_iter()
        .filter(|f| {
            [".bottlesync/", "bottles/", "api/"]
                .iter()
                .all(|dir| !f.starts_with(dir))
        })
        .collect()
}

/// Bottles recorded in a directory mirror's journal (`.bottlesync/journal/`,
/// objects of one entry or a list of them), counted from the files.
pub fn journaled_bottles(root: &Path) -> usize {
    let journal = root.join(".bottlesync/journal");
    files_below(&journal)
        .iter()
        .filter_map(|name| std::fs::read(journal.join(name)).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .map(|object| object.as_array().map_or(1, Vec::len))
        .sum()
}

pub fn read_hash_file(root: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(root.join("bottles_hash.json")).expect("bottles_hash.json exists"),
    )
    .unwrap()
}

pub fn read_report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).unwrap()
}

/// A fresh machine on `client_tag` starts brew from `mirror`: brew's
/// `vendor-install.sh` gets every Portable Ruby version the stand-in serves
/// for that tag's family (the current one, and the one clients a release
/// behind pin), byte for byte.
#[allow(dead_code)] // not every test binary replays clients
pub async fn assert_fresh_machines_start(
    mirror: &dyn bottlesync_loadtest::brew_client::MirrorReader,
    standin: &StandIn,
    client_tag: &str,
) {
    let rubies = standin.expected_portable_ruby(&[client_tag], None);
    assert_eq!(
        rubies.len(),
        2,
        "{client_tag}: the stand-in serves two Ruby versions"
    );
    for ruby in rubies {
        if let Err(problem) =
            bottlesync_loadtest::brew_client::replay_vendor_install(mirror, &ruby).await
        {
            panic!("{client_tag}: {}: {problem}", ruby.mirror_file_name);
        }
    }
}
