//! Portable Ruby in the mirror (issue 17): a fresh machine's first `brew`
//! run downloads `$HOMEBREW_BOTTLE_DOMAIN/portable-ruby-<version>.<tag>.bottle.tar.gz`
//! (brew's `cmd/vendor-install.sh`) before it can do anything else. `sync`
//! mirrors it from the stand-in's `portable-ruby` image, `verify` checks it.

mod common;

use std::path::Path;

use bottlesync_aws_harness::s3_mirror::S3Mirror;
use bottlesync_loadtest::brew_client::MirrorReader;
use bottlesync_loadtest::{BottleInfo, Catalog, StandIn, StandInConfig};
use common::stack::{BUCKET, PREFIX, Stack};
use common::*;

/// Apple silicon and Intel macOS, and Intel Linux: three of the four Ruby
/// families (no arm64_linux).
const TAGS: [&str; 3] = ["arm64_tahoe", "tahoe", "x86_64_linux"];

async fn standin() -> StandIn {
    StandIn::start(StandInConfig::new(Catalog::brew_mirror()))
        .await
        .unwrap()
}

fn sync(standin: &StandIn, dest: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = bottlesync();
    cmd.args(sync_args(standin, dest.to_str().unwrap()))
        .args(["--tags", &TAGS.join(",")])
        .args(extra);
    cmd
}

fn verify(dest: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = bottlesync();
    cmd.args(["verify", "--dest", dest.to_str().unwrap()])
        .args(extra);
    cmd
}

/// The flat Ruby files under `bottles/`.
fn ruby_files(dest: &Path) -> Vec<String> {
    let mut files: Vec<String> = files_below(&dest.join("bottles"))
        .into_iter()
        .filter(|f| f.starts_with("portable-ruby-"))
        .collect();
    files.sort();
    files
}

fn file_names(bottles: &[BottleInfo]) -> Vec<String> {
    let mut names: Vec<String> = bottles.iter().map(|b| b.mirror_file_name.clone()).collect();
    names.sort();
    names
}

/// Both versions for the synced tags' families, under brew's flat names,
/// with their image indexes, in the hash file and the published record;
/// `verify` checks them (exit 0), and fails naming one that goes missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mirrors_both_versions_for_the_synced_families_and_verify_checks_them() {
    let standin = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let synced = run(sync(
        &standin,
        &dest,
        &["--report", dir.path().join("report.json").to_str().unwrap()],
    ))
    .await;
    synced.assert_code(0);

    let expected = standin.expected_portable_ruby(&TAGS, None);
    assert_eq!(expected.len(), 6, "2 versions x 3 families");
    assert_eq!(
        ruby_files(&dest),
        [
            "portable-ruby-3.4.8.arm64_big_sur.bottle.tar.gz",
            "portable-ruby-3.4.8.catalina.bottle.tar.gz",
            "portable-ruby-3.4.8.x86_64_linux.bottle.tar.gz",
            "portable-ruby-4.0.6.arm64_big_sur.bottle.tar.gz",
            "portable-ruby-4.0.6.catalina.bottle.tar.gz",
            "portable-ruby-4.0.6.x86_64_linux.bottle.tar.gz",
        ]
    );
    assert_eq!(ruby_files(&dest), file_names(&expected));
    let hash_file = read_hash_file(&dest);
    for bottle in &expected {
        let flat = dest.join("bottles").join(&bottle.mirror_file_name);
        assert_eq!(
            sha256_file(&flat),
            bottle.sha256,
            "{}",
            bottle.mirror_file_name
        );
        assert_eq!(
            hash_file["bottles"][&bottle.sha256]["key"],
            format!("bottles/{}", bottle.mirror_file_name)
        );
        let manifest = std::fs::read_to_string(
            dest.join("bottles/portable-ruby/manifests")
                .join(&bottle.version),
        )
        .unwrap();
        assert!(manifest.contains(&bottle.sha256), "{}", bottle.version);
        assert!(manifest.contains(&format!("\"{}.{}\"", bottle.version, bottle.tag)));
    }
    // Not a formula: no API file names it.
    for api_file in files_below(&dest.join("api")) {
        let text = std::fs::read_to_string(dest.join("api").join(&api_file)).unwrap();
        assert!(!text.contains("portable-ruby"), "{api_file}");
    }
    let published: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join(".bottlesync/published.json")).unwrap())
            .unwrap();
    assert_eq!(published["portable_ruby"].as_array().unwrap().len(), 6);
    assert!(
        synced
            .stdout
            .contains("portable-ruby: 4.0.6, 3.4.8 (6 bottles"),
        "{}",
        synced.stdout
    );
    let report = read_report(&dir.path().join("report.json"));
    assert_eq!(
        report["portable_ruby"]["versions"],
        serde_json::json!(["4.0.6", "3.4.8"])
    );

    let checked = run(verify(&dest, &[])).await;
    checked.assert_code(0);
    assert!(
        checked
            .stdout
            .contains("portable-ruby: 6/6 bottles complete"),
        "{}",
        checked.stdout
    );
    let json = run(verify(&dest, &["--json"])).await;
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["portable_ruby"]["complete"], 6);

    // A rerun downloads no Ruby again.
    standin.reset_stats();
    run(sync(&standin, &dest, &[])).await.assert_code(0);
    let stats = standin.stats();
    for bottle in &expected {
        assert_eq!(
            stats.bottle(&bottle.sha256).storage_gets,
            0,
            "{}",
            bottle.mirror_file_name
        );
    }

    let gone = "portable-ruby-4.0.6.catalina.bottle.tar.gz";
    std::fs::remove_file(dest.join("bottles").join(gone)).unwrap();
    let checked = run(verify(&dest, &[])).await;
    checked.assert_code(1);
    assert!(
        checked
            .stdout
            .contains("portable-ruby: 5/6 bottles complete")
            && checked.stdout.contains(&format!("{gone} ("))
            && checked.stdout.contains("missing from bottles/"),
        "{}",
        checked.stdout
    );
}

/// A formula subset still gets Ruby (a fresh machine needs it before
/// anything); `--portable-ruby off` gets none; a pinned version only that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_subsets_get_ruby_unless_off_and_a_version_pins_it() {
    let standin = standin().await;
    let dir = tempfile::tempdir().unwrap();

    let subset = dir.path().join("subset");
    run(sync(
        &standin,
        &subset,
        &["--formula", "wget", "--with-deps"],
    ))
    .await
    .assert_code(0);
    assert_eq!(
        ruby_files(&subset),
        file_names(&standin.expected_portable_ruby(&TAGS, None))
    );

    let off = dir.path().join("off");
    let done = run(sync(
        &standin,
        &off,
        &["--formula", "wget", "--portable-ruby", "off"],
    ))
    .await;
    done.assert_code(0);
    assert_eq!(ruby_files(&off), Vec::<String>::new());
    assert!(!off.join("bottles/portable-ruby").exists());
    assert!(
        files_below(&off.join(DATE))
            .iter()
            .all(|f| !f.starts_with("portable-ruby"))
    );
    assert!(
        done.stdout.contains("portable-ruby: none planned"),
        "{}",
        done.stdout
    );
    run(verify(&off, &[])).await.assert_code(0);

    let pinned = dir.path().join("pinned");
    let mut cmd = sync(&standin, &pinned, &["--formula", "wget"]);
    cmd.env("BOTTLESYNC_PORTABLE_RUBY", "3.4.8");
    run(cmd).await.assert_code(0);
    assert_eq!(
        ruby_files(&pinned),
        file_names(&standin.expected_portable_ruby(&TAGS, Some(&["3.4.8"])))
    );
}

/// A version the registry lacks, or a setting that is no version: exit 2,
/// the error names it, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_version_is_a_clear_error_and_writes_nothing() {
    let standin = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let failed = run(sync(&standin, &dest, &["--portable-ruby", "9.9.9"])).await;
    failed.assert_code(2);
    assert!(
        failed.stderr.contains("--portable-ruby")
            && failed.stderr.contains("no Portable Ruby 9.9.9")
            && failed.stderr.contains("4.0.6, 3.4.8"),
        "{}",
        failed.stderr
    );
    assert!(files_below(&dest).is_empty(), "{:?}", files_below(&dest));
    assert_eq!(standin.stats().storage_gets, 0);

    let bad = run(sync(&standin, &dest, &["--portable-ruby", "latest"])).await;
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("--portable-ruby") && bad.stderr.contains("latest"),
        "{}",
        bad.stderr
    );
    assert!(files_below(&dest).is_empty());
}

/// A registry without the image (this catalog has no Ruby): a warning
/// naming it, and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_without_ruby_warns_and_the_run_goes_on() {
    let standin = StandIn::start(StandInConfig::new(Catalog::single("wget", 1000)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap())).args([
        "--tags",
        "arm64_tahoe",
        "--dry-run",
    ]);
    let done = run(cmd).await;
    done.assert_code(0);
    assert!(
        done.stdout
            .contains("portable-ruby warning: the registry has no portable-ruby image"),
        "{}",
        done.all_output()
    );
}

/// The fleet: the planner reads `BOTTLESYNC_PORTABLE_RUBY`, its Ruby jobs
/// are ordinary messages of the run, the finisher publishes the record of
/// them after they are stored, and `verify` checks them in S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_run_mirrors_the_pinned_version_and_verify_checks_it() {
    let stack = Stack::start(Catalog::brew_mirror()).await;
    let env = [
        ("BOTTLESYNC_TAGS", "arm64_tahoe,x86_64_linux"),
        ("BOTTLESYNC_PORTABLE_RUBY", "4.0.6"),
    ];
    let planned = run(stack.command_with(&["plan", "--date", DATE], &env)).await;
    planned.assert_code(0);
    let outcome: serde_json::Value = serde_json::from_str(&planned.stdout).unwrap();
    assert_eq!(
        outcome["portable_ruby"],
        serde_json::json!([
            "portable-ruby 4.0.6 arm64_big_sur",
            "portable-ruby 4.0.6 x86_64_linux"
        ])
    );
    let workers = (0..2)
        .map(|_| stack.spawn_worker(&["--concurrency", "3"]))
        .collect();
    for worker in Stack::wait_all(workers).await {
        worker.assert_code(0);
    }

    let mirror = S3Mirror::new(stack.moto.s3(), BUCKET, PREFIX);
    let expected = stack
        .standin
        .expected_portable_ruby(&["arm64_tahoe", "x86_64_linux"], Some(&["4.0.6"]));
    assert_eq!(expected.len(), 2);
    for bottle in &expected {
        let got = mirror
            .request("GET", &format!("/bottles/{}", bottle.mirror_file_name), &[])
            .await
            .unwrap();
        assert_eq!(got.status, 200, "{}", bottle.mirror_file_name);
        assert_eq!(sha256_hex(&got.body), bottle.sha256);
    }
    let other = mirror
        .request(
            "GET",
            "/bottles/portable-ruby-3.4.8.arm64_big_sur.bottle.tar.gz",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(other.status, 404, "only the pinned version");
    let index = mirror
        .request("GET", "/bottles/portable-ruby/manifests/4.0.6", &[])
        .await
        .unwrap();
    assert_eq!(index.status, 200);

    let mut verify = stack.command(&["verify", "--dest", &format!("s3://{BUCKET}/{PREFIX}")]);
    verify.env_remove("BOTTLESYNC_DEST");
    let checked = run(verify).await;
    checked.assert_code(0);
    assert!(
        checked
            .stdout
            .contains("portable-ruby: 2/2 bottles complete"),
        "{}",
        checked.all_output()
    );
}

/// What brew's `cmd/vendor-install.sh` asks a mirror for, served by
/// `bottlesync serve`: `$HOMEBREW_ARTIFACT_DOMAIN/v2/homebrew/core/portable-ruby/blobs/sha256:<sha>`
/// first, then `$HOMEBREW_BOTTLE_DOMAIN/portable-ruby-<version>.<tag>.bottle.tar.gz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_both_urls_vendor_install_tries() {
    let standin = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    run(sync(&standin, &dest, &[])).await.assert_code(0);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = bottlesync();
    cmd.args(["serve", "--root", dest.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Killed(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut up = false;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "serve did not come up");

    let expected = standin.expected_portable_ruby(&TAGS, None);
    assert_eq!(expected.len(), 6);
    for bottle in &expected {
        for path in [
            format!(
                "/v2/homebrew/core/portable-ruby/blobs/sha256:{}",
                bottle.sha256
            ),
            format!("/bottles/{}", bottle.mirror_file_name),
        ] {
            let got = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(got.status(), 200, "{path}");
            assert_eq!(
                sha256_hex(&got.bytes().await.unwrap()),
                bottle.sha256,
                "{path}"
            );
        }
    }
}
