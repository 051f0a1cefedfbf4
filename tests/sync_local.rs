//! `bottlesync sync` into a directory, against the Homebrew stand-in.

mod common;

use std::collections::BTreeSet;

use bottlesync_loadtest::{Catalog, Fault, StandIn, StandInConfig};
use common::*;
use serde_json::json;

async fn tricky() -> StandIn {
    StandIn::start(StandInConfig::new(Catalog::tricky()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_every_expected_bottle_then_downloads_nothing_on_rerun() {
    let standin = tricky().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()));
    run(cmd).await.assert_code(0);

    let expected = expected_bottles(&standin, &AUTO_TAGS, false);
    assert!(
        expected.len() >= 20,
        "fixture too small: {}",
        expected.len()
    );
    let mut wanted_files: BTreeSet<String> = expected
        .values()
        .map(|b| format!("{DATE}/{}", b.mirror_file_name))
        .collect();
    wanted_files.insert("bottles_hash.json".into());
    assert_eq!(mirror_files(&dest), wanted_files);
    for bottle in expected.values() {
        let path = dest.join(DATE).join(&bottle.mirror_file_name);
        assert_eq!(
            sha256_file(&path),
            bottle.sha256,
            "{}",
            bottle.mirror_file_name
        );
    }
    // The names Homebrew clients request, spelled out for a few tricky cases.
    for name in [
        "curl-8.17.0.arm64_tahoe.bottle.1.tar.gz",
        "openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz",
        "libidn2-2.3.8_1.arm64_tahoe.bottle.tar.gz",
        "ca-certificates-2025-09-09.all.bottle.tar.gz",
        "old-tool-1.0.arm64_sequoia.bottle.tar.gz",
        "gtk+3-3.24.51.arm64_tahoe.bottle.tar.gz",
    ] {
        assert!(dest.join(DATE).join(name).is_file(), "{name} missing");
    }

    let record = read_hash_file(&dest);
    assert_eq!(record["schema"], 1);
    let bottles = record["bottles"].as_object().unwrap();
    assert_eq!(
        bottles.keys().cloned().collect::<BTreeSet<_>>(),
        expected.keys().cloned().collect()
    );
    for (sha, entry) in bottles {
        let bottle = &expected[sha];
        // The flat key: the object that stays (the dated one is archive).
        assert_eq!(entry["key"], format!("bottles/{}", bottle.mirror_file_name));
        assert_eq!(entry["name"], bottle.name.as_str());
        assert_eq!(entry["tag"], bottle.tag.as_str());
        assert_eq!(entry["size"], bottle.size);
        assert_eq!(entry["rebuild"], bottle.rebuild);
    }
    assert!(
        files_below(&dest.join(".bottlesync/journal")).is_empty(),
        "journal folded into the hash file"
    );

    standin.reset_stats();
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()));
    let rerun = run(cmd).await;
    rerun.assert_code(0);
    let stats = standin.stats();
    assert_eq!(
        (stats.blob_requests, stats.storage_gets, stats.bytes_served),
        (0, 0, 0)
    );
    assert!(rerun.stdout.contains("0 new"), "{}", rerun.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tags_fallbacks_and_disabled_formulae() {
    let standin = tricky().await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("plan.json");
    let dest = dir.path().join("mirror");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap())).args([
        "--dry-run",
        "--report",
        report.to_str().unwrap(),
    ]);
    run(cmd).await.assert_code(0);
    assert!(
        !dest.exists(),
        "a dry run writes nothing, not even the directory"
    );

    let plan = read_report(&report);
    assert_eq!(plan["tags"], json!(AUTO_TAGS));
    let planned: BTreeSet<String> = plan["bottles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sha256"].as_str().unwrap().to_string())
        .collect();
    let expected = expected_bottles(&standin, &AUTO_TAGS, false);
    assert_eq!(planned, expected.keys().cloned().collect());
    // Fallbacks: formulae without bottles for the newest macOS are served
    // by older ones, and `all` bottles cover every tag.
    let tags_of = |name: &str| -> BTreeSet<String> {
        plan["bottles"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["name"] == name)
            .map(|b| b["tag"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        tags_of("old-tool"),
        ["arm64_sequoia", "sequoia"].map(String::from).into()
    );
    assert_eq!(
        tags_of("ancient"),
        ["arm64_sonoma", "sonoma"].map(String::from).into()
    );
    assert_eq!(tags_of("ca-certificates"), ["all"].map(String::from).into());
    assert!(tags_of("gone").is_empty(), "disabled formula planned");
    assert!(tags_of("linux-only").is_empty());
    assert!(
        !tags_of("old-but-ok").is_empty(),
        "deprecated formulae are still mirrored"
    );
    // Sizes come from manifests, or from Content-Length where a manifest lacks them.
    for bottle in plan["bottles"].as_array().unwrap() {
        let truth = &expected[bottle["sha256"].as_str().unwrap()];
        assert_eq!(bottle["size"], truth.size, "{}", truth.mirror_file_name);
        let source = if truth.legacy_manifest {
            "content_length"
        } else {
            "manifest"
        };
        assert_eq!(bottle["size_source"], source, "{}", truth.mirror_file_name);
    }

    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap())).args([
        "--dry-run",
        "--include-disabled",
        "--report",
        report.to_str().unwrap(),
    ]);
    run(cmd).await.assert_code(0);
    let plan = read_report(&report);
    assert!(
        plan["bottles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "gone")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_filter_with_dependencies() {
    let standin = tricky().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap())).args([
        "--formula",
        "wget",
        "--with-deps",
        "--tags",
        "arm64_tahoe",
    ]);
    run(cmd).await.assert_code(0);
    let names: BTreeSet<String> = read_hash_file(&dest)["bottles"]
        .as_object()
        .unwrap()
        .values()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    // Portable Ruby comes with any subset: a fresh client needs it first.
    assert_eq!(
        names,
        [
            "ca-certificates",
            "libidn2",
            "openssl@3",
            "portable-ruby",
            "wget"
        ]
        .map(String::from)
        .into()
    );

    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()))
        .args(["--formula", "no-such-formula"]);
    let run = run(cmd).await;
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("\"no-such-formula\" is not in the formula index"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_recover_and_a_corrupt_bottle_is_never_stored() {
    let standin = tricky().await;
    let expected = expected_bottles(&standin, &AUTO_TAGS, false);
    let pick = |name: &str, tag: &str| standin.bottle(name, tag).unwrap();
    let flaky_5xx = pick("wget", "arm64_tahoe");
    let throttled = pick("openssl@3", "arm64_tahoe");
    let truncated = pick("curl", "arm64_tahoe");
    let reset = pick("libidn2", "tahoe");
    let corrupt = pick("python@3.13", "arm64_sequoia");
    standin.set_fault(
        &flaky_5xx.sha256,
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    standin.set_fault(
        &throttled.sha256,
        Fault::TooManyRequests {
            retry_after_secs: 1,
            times: 1,
        },
    );
    standin.set_fault(&truncated.sha256, Fault::Truncate { times: 2 });
    standin.set_fault(&reset.sha256, Fault::ResetConnection { times: 1 });
    standin.set_fault(&corrupt.sha256, Fault::Corrupt);

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let report = dir.path().join("summary.json");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()))
        .args(["--report", report.to_str().unwrap()]);
    let first = run(cmd).await;
    first.assert_code(1);

    let summary = read_report(&report);
    let failed = summary["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{summary:#}");
    assert_eq!(failed[0]["sha256"], corrupt.sha256.as_str());
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("sha256 mismatch")
    );
    assert!(
        first.stdout.contains(&format!(
            "failed: python@3.13 3.13.9 arm64_sequoia ({})",
            corrupt.sha256
        )),
        "{}",
        first.stdout
    );
    assert_eq!(summary["new"], expected.len() - 1);

    let files = mirror_files(&dest);
    assert!(
        !files.iter().any(|f| f.contains(&corrupt.mirror_file_name)),
        "corrupt bottle stored"
    );
    assert!(
        files_below(&dest.join(".bottlesync/tmp")).is_empty(),
        "temp files left behind"
    );
    assert!(
        !read_hash_file(&dest)["bottles"]
            .as_object()
            .unwrap()
            .contains_key(&corrupt.sha256)
    );
    for recovered in [&flaky_5xx, &throttled, &truncated, &reset] {
        assert_eq!(
            sha256_file(&dest.join(DATE).join(&recovered.mirror_file_name)),
            recovered.sha256
        );
    }
    let stats = standin.stats();
    assert_eq!(
        stats.bottle(&flaky_5xx.sha256).blob_requests,
        3,
        "two 503s then success"
    );
    assert!(
        stats.bottle(&truncated.sha256).range_requests >= 2,
        "truncated downloads resume with Range"
    );

    // The rerun fetches only the bottle that failed.
    standin.clear_faults();
    standin.reset_stats();
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()));
    run(cmd).await.assert_code(0);
    let stats = standin.stats();
    assert_eq!(
        stats.bottles.keys().cloned().collect::<Vec<_>>(),
        vec![corrupt.sha256.clone()]
    );
    assert_eq!(
        sha256_file(&dest.join(DATE).join(&corrupt.mirror_file_name)),
        corrupt.sha256
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_challenge_is_answered() {
    let standin = tricky().await;
    standin.set_require_token(true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap())).args([
        "--formula",
        "wget",
        "--tags",
        "arm64_tahoe",
    ]);
    run(cmd).await.assert_code(0);
    let wget = standin.bottle("wget", "arm64_tahoe").unwrap();
    assert_eq!(
        sha256_file(&dest.join(DATE).join(&wget.mirror_file_name)),
        wget.sha256
    );
    assert!(standin.stats().token_requests >= 1);
    assert_eq!(
        standin.stats().storage_auth_rejections,
        0,
        "credentials never follow the redirect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_index_is_rejected_entry_by_entry() {
    let standin = tricky().await;
    let good = standin.bottle("wget", "arm64_tahoe").unwrap();
    let entry = |name: &str, version: &str, url: &str, sha: &str| {
        json!({
            "name": name, "full_name": name, "tap": "homebrew/core",
            "versions": {"stable": version, "bottle": true}, "revision": 0,
            "dependencies": [], "deprecated": false, "disabled": false,
            "bottle": {"stable": {"rebuild": 0, "root_url": "x", "files": {
                "arm64_tahoe": {"cellar": ":any", "url": url, "sha256": sha}}}}
        })
    };
    let evil_url = good.url.replace("127.0.0.1", "evil.example");
    let index = json!([
        entry("wget", &good.version, &good.url, &good.sha256),
        entry("../../../tmp/pwned", "1.0", &good.url, &good.sha256),
        entry("a/b", "1.0", &good.url, &good.sha256),
        entry("ctl\u{7}name", "1.0", &good.url, &good.sha256),
        entry("versioned", "../../x", &good.url, &good.sha256),
        entry("foreign", "1.0", &evil_url, &good.sha256),
        entry("baddigest", "1.0", &good.url, "1234"),
        entry(
            "wrongdigest",
            "1.0",
            &good.url.replace("/wget/", "/wrongdigest/"),
            &"0".repeat(64)
        ),
        json!({"name": 42}),
        json!("not an object"),
    ]);
    standin.set_index_json(index);

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let report = dir.path().join("summary.json");
    let mut cmd = bottlesync();
    // Without Portable Ruby: only what the index names is fetched.
    cmd.args(sync_args(&standin, dest.to_str().unwrap())).args([
        "--tags",
        "arm64_tahoe",
        "--portable-ruby",
        "off",
        "--report",
        report.to_str().unwrap(),
    ]);
    let result = run(cmd).await;
    result.assert_code(0);
    let log = result.all_output();
    for needle in [
        "\"../../../tmp/pwned\" rejected: formula name",
        "\"a/b\" rejected",
        "\"versioned\" rejected: version",
        "host \"evil.example\" is not allowed",
        "\"1234\" is not a sha256",
        "registry shape",
        "malformed entry",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in\n{log}");
    }
    assert_eq!(
        read_report(&report)["rejected_entries"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    // Only the one good bottle (its dated file, its flat copy and its
    // manifest), the index it came from and our own files exist, all
    // inside --dest.
    assert_eq!(
        files_below(dir.path())
            .into_iter()
            .filter(|f| !f.starts_with("mirror/.bottlesync/"))
            .collect::<BTreeSet<_>>(),
        [
            format!("mirror/{DATE}/{}", good.mirror_file_name),
            format!("mirror/bottles/{}", good.mirror_file_name),
            "mirror/bottles/wget/manifests/1.25.0".into(),
            "mirror/api/formula.jws.json".into(),
            "mirror/bottles_hash.json".into(),
            "summary.json".into()
        ]
        .into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_exit_2_and_change_nothing() {
    let standin = tricky().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");

    // Unreachable index: nothing is created.
    let mut cmd = bottlesync();
    cmd.args([
        "sync",
        "--dest",
        dest.to_str().unwrap(),
        "--api-url",
        "http://127.0.0.1:9/api",
        "--retries",
        "0",
    ]);
    let result = run(cmd).await;
    result.assert_code(2);
    assert!(
        result
            .stderr
            .contains("formula index http://127.0.0.1:9/api/formula.jws.json"),
        "{}",
        result.stderr
    );
    assert!(!dest.exists());

    // A corrupt bottles_hash.json is named and left as it is.
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(
        dest.join("bottles_hash.json"),
        b"{\"schema\": 1, \"bottles\": [",
    )
    .unwrap();
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()));
    let result = run(cmd).await;
    result.assert_code(2);
    assert!(
        result.stderr.contains("bottles_hash.json") && result.stderr.contains("not a valid"),
        "{}",
        result.stderr
    );
    assert_eq!(
        std::fs::read(dest.join("bottles_hash.json")).unwrap(),
        b"{\"schema\": 1, \"bottles\": ["
    );
    assert_eq!(standin.stats().storage_gets, 0);
    std::fs::remove_file(dest.join("bottles_hash.json")).unwrap();

    // An external hash file in no accepted format.
    let bad_hashes = dir.path().join("hashes.json");
    std::fs::write(&bad_hashes, b"{\"wget\": \"not-a-sha\"}").unwrap();
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()))
        .args(["--hash-file", bad_hashes.to_str().unwrap()]);
    let result = run(cmd).await;
    result.assert_code(2);
    assert!(
        result.stderr.contains("hashes.json") && result.stderr.contains("object key"),
        "{}",
        result.stderr
    );

    // Bad flags.
    for (flag, value, needle) in [
        ("--tags", "Arm64/../x", "--tags"),
        ("--dest", "s3://Bad_Bucket", "--dest"),
        ("--date", "2026-13-01", "--date"),
    ] {
        let mut cmd = bottlesync();
        let mut args = sync_args(&standin, dest.to_str().unwrap());
        args.extend([flag.to_string(), value.to_string()]);
        cmd.args(args);
        let result = run(cmd).await;
        result.assert_code(2);
        assert!(result.stderr.contains(needle), "{flag}: {}", result.stderr);
    }
    assert_eq!(mirror_files(&dest), BTreeSet::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_hash_files_skip_their_bottles() {
    let standin = tricky().await;
    let wget = standin.bottle("wget", "arm64_tahoe").unwrap();
    let curl = standin.bottle("curl", "arm64_tahoe").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hashes = dir.path().join("hashes.json");
    std::fs::write(
        &hashes,
        json!([wget.sha256, curl.sha256.to_uppercase()]).to_string(),
    )
    .unwrap();
    let dest = dir.path().join("mirror");
    let report = dir.path().join("summary.json");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap())).args([
        "--tags",
        "arm64_tahoe",
        "--hash-file",
        hashes.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    run(cmd).await.assert_code(0);
    assert_eq!(read_report(&report)["in_hash_file"], 2);
    let stats = standin.stats();
    assert_eq!(stats.bottle(&wget.sha256).storage_gets, 0);
    assert_eq!(stats.bottle(&curl.sha256).storage_gets, 0);
    assert!(
        !mirror_files(&dest)
            .iter()
            .any(|f| f.contains("wget-") || f.contains("curl-"))
    );
}
