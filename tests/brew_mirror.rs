//! A mirror brew installs from (issue 11), end to end: `bottlesync sync`
//! into a directory and into S3 (moto), then brew 6.0's own requests
//! replayed against what it wrote (`bottlesync_loadtest::brew_client`),
//! for a catalogue with `openssl@3`, `gtk+3`, a revision and a rebuild, a
//! fallback to an older macOS, an `all` bottle and a Linux-only formula.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bottlesync_aws_harness::s3_mirror::S3Mirror;
use bottlesync_loadtest::brew_client::{
    DirectoryMirror, MirrorReader, bottle_request, parse_packages_file, replay_install,
};
use bottlesync_loadtest::{Catalog, Fault, SizeModel, StandIn, StandInConfig};
use common::stack::{BUCKET, PREFIX, Stack};
use common::*;

/// Apple silicon and Intel on the newest macOS, and Linux: `old-tool` falls
/// back to sequoia on both macOS tags, `linux-only` has a bottle only for
/// Linux, `ca-certificates` is one `all` bottle for every tag.
const TAGS: [&str; 3] = ["arm64_tahoe", "tahoe", "x86_64_linux"];
const SYNC_BUCKET: &str = "brew-mirror";

async fn standin(catalog: Catalog) -> StandIn {
    StandIn::start(StandInConfig::new(catalog)).await.unwrap()
}

fn names(standin: &StandIn) -> Vec<String> {
    standin
        .catalog()
        .formulae()
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

fn sync(standin: &StandIn, dest: &str) -> std::process::Command {
    let mut cmd = bottlesync();
    cmd.args(sync_args(standin, dest))
        .args(["--tags", &TAGS.join(",")]);
    cmd
}

fn verify(dest: &str) -> std::process::Command {
    let mut cmd = bottlesync();
    cmd.args(["verify", "--dest", dest]);
    cmd
}

/// brew install of every formula, on every tag: complete, and the API file
/// it read is upstream's, byte for byte.
async fn assert_brew_installs_everything(mirror: &dyn MirrorReader, standin: &StandIn) {
    let names = names(standin);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for tag in TAGS {
        let report = replay_install(mirror, tag, &names).await.unwrap();
        assert!(report.is_complete(), "{tag}: {report}");
        assert_eq!(
            report.refused(),
            ["gone"],
            "{tag}: brew refuses the disabled formula"
        );
        assert_fresh_machines_start(mirror, standin, tag).await;
        assert_eq!(
            report.api_file,
            standin.packages_file(tag),
            "{tag}: the API file is upstream's, byte for byte"
        );
        let bottles = report
            .formulae
            .iter()
            .filter(|f| f.bottle.is_some())
            .count();
        assert!(bottles >= 5, "{tag}: only {bottles} bottles replayed");
    }
}

async fn upstream(standin: &StandIn, path: &str) -> Vec<u8> {
    reqwest::get(format!("{}/{path}", standin.api_url()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// The per-tag file and formula.jws.json were each fetched once.
fn assert_api_files_fetched_once(standin: &StandIn) {
    let stats = standin.stats();
    for tag in TAGS {
        let path = format!("/api/internal/packages.{tag}.jws.json");
        assert_eq!(stats.path(&path), 1, "{path}: {:?}", stats.paths);
    }
    assert_eq!(stats.path("/api/formula.jws.json"), 1, "{:?}", stats.paths);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_directory_is_a_mirror_brew_installs_from() {
    let standin = standin(Catalog::brew_mirror()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    run(sync(&standin, dest)).await.assert_code(0);

    assert_brew_installs_everything(&DirectoryMirror(dir.path().into()), &standin).await;
    assert_api_files_fetched_once(&standin);
    assert_eq!(
        std::fs::read(dir.path().join("api/formula.jws.json")).unwrap(),
        upstream(&standin, "formula.jws.json").await,
        "formula.jws.json for older clients, byte for byte"
    );
    // Every flat bottle is the dated file itself (a hard link: no extra
    // bytes), under a name with a literal `@` or `+`.
    let flat: Vec<String> = files_below(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("bottles/") && f.ends_with(".tar.gz"))
        .collect();
    let dated: Vec<String> = files_below(dir.path())
        .into_iter()
        .filter(|f| f.starts_with(&format!("{DATE}/")))
        .collect();
    assert_eq!(flat.len(), dated.len(), "{flat:?}\n{dated:?}");
    assert!(flat.iter().any(|f| f.contains("openssl@3-")), "{flat:?}");
    assert!(flat.iter().any(|f| f.contains("gtk+3-")), "{flat:?}");
    for file in &flat {
        let name = file.strip_prefix("bottles/").unwrap();
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(
            inode(&dir.path().join(file)),
            inode(&dir.path().join(DATE).join(name)),
            "{file} is a hard link of {DATE}/{name}"
        );
    }
    // `gone` is disabled (`disable_args`): skipped and counted, not missing.
    let checked = run(verify(dest)).await;
    checked.assert_code(0);
    assert!(
        checked
            .stdout
            .contains("arm64_tahoe: 10/10 bottles complete, 1 disabled formulae skipped"),
        "{}",
        checked.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_s3_prefix_is_a_mirror_brew_installs_from() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(SYNC_BUCKET).send().await.unwrap();
    let standin = standin(Catalog::brew_mirror()).await;
    let dest = format!("s3://{SYNC_BUCKET}/mirror");
    let mut cmd = sync(&standin, &dest);
    moto.apply(&mut cmd);
    run(cmd).await.assert_code(0);

    let mirror = S3Mirror::new(s3.clone(), SYNC_BUCKET, "mirror");
    assert_brew_installs_everything(&mirror, &standin).await;
    assert_api_files_fetched_once(&standin);
    // What a server (or CloudFront) hands clients: the right types, never
    // a Content-Encoding on a bottle.
    let head = |key: String| {
        let s3 = s3.clone();
        async move {
            s3.head_object()
                .bucket(SYNC_BUCKET)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}"))
        }
    };
    let openssl = standin.bottle("openssl@3", "arm64_tahoe").unwrap();
    let bottle = head(format!("mirror/bottles/{}", openssl.mirror_file_name)).await;
    assert_eq!(bottle.content_type(), Some("application/gzip"));
    assert_eq!(bottle.content_encoding(), None);
    let api = head("mirror/api/internal/packages.arm64_tahoe.jws.json".into()).await;
    assert_eq!(api.content_type(), Some("application/json"));
    let manifest = head("mirror/bottles/openssl/3/manifests/3.6.0".into()).await;
    assert_eq!(
        manifest.content_type(),
        Some("application/vnd.oci.image.index.v1+json")
    );
    let mut cmd = verify(&dest);
    moto.apply(&mut cmd);
    run(cmd).await.assert_code(0);
}

/// A version bump upstream: the old flat file stays (clients that have not
/// updated still fetch it), the new one appears, and the API file names
/// the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_bump_adds_the_new_bottle_and_keeps_the_old() {
    let before = standin(Catalog::brew_mirror()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    run(sync(&before, dest)).await.assert_code(0);
    let old = before.bottle("wget", "arm64_tahoe").unwrap();

    let after = standin(Catalog::brew_mirror().with_version("wget", "1.26.0")).await;
    let second = run(sync(&after, dest)).await;
    second.assert_code(0);
    let new = after.bottle("wget", "arm64_tahoe").unwrap();
    assert_ne!(old.sha256, new.sha256);
    for bottle in [&old, &new] {
        let path = dir.path().join("bottles").join(&bottle.mirror_file_name);
        assert_eq!(sha256_file(&path), bottle.sha256, "{}", path.display());
    }
    assert_brew_installs_everything(&DirectoryMirror(dir.path().into()), &after).await;
    run(verify(dest)).await.assert_code(0);
}

/// A bottle whose bytes are wrong upstream is stored nowhere; the API
/// files are still published (every other bottle is good), and both the
/// summary and `verify` name the one bottle clients will fetch upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_bottle_is_stored_nowhere_and_named_by_the_summary_and_verify() {
    let standin = standin(Catalog::brew_mirror()).await;
    let corrupt = standin.bottle("gtk+3", "arm64_tahoe").unwrap();
    standin.set_fault(&corrupt.sha256, Fault::Corrupt);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    let report_path = dir.path().join("report.json");
    let mut cmd = sync(&standin, dest);
    cmd.args(["--report", report_path.to_str().unwrap()]);
    let first = run(cmd).await;
    first.assert_code(1);
    assert!(
        first.stdout.contains(&format!(
            "missing from mirror (brew fetches it upstream): {}",
            corrupt.mirror_file_name
        )),
        "{}",
        first.all_output()
    );
    let report = read_report(&report_path);
    let missing = report["missing_from_mirror"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{report}");
    assert_eq!(missing[0]["sha256"], corrupt.sha256.as_str());
    let stored: Vec<String> = files_below(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(&corrupt.mirror_file_name))
        .collect();
    assert!(stored.is_empty(), "stored: {stored:?}");
    assert_eq!(
        std::fs::read(
            dir.path()
                .join("api/internal/packages.arm64_tahoe.jws.json")
        )
        .ok(),
        standin.packages_file("arm64_tahoe"),
        "published anyway"
    );

    let checked = run(verify(dest)).await;
    checked.assert_code(1);
    assert!(
        checked.stdout.contains(&corrupt.mirror_file_name)
            && checked.stdout.contains("missing from bottles/")
            && checked.stdout.contains("INCOMPLETE"),
        "{}",
        checked.all_output()
    );
    let mut json = verify(dest);
    json.arg("--json");
    let json = run(json).await;
    json.assert_code(1);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let findings = json["tags"]["arm64_tahoe"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json}");
    assert_eq!(findings[0]["problem"], "missing");
    assert!(
        json["tags"]["tahoe"]["findings"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{json}"
    );
}

/// A tag upstream has no per-tag file for is planned from the index and
/// gets no API file, and the run says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_without_a_per_tag_file_is_planned_from_the_index_and_not_published() {
    let standin = standin(Catalog::brew_mirror()).await;
    standin.set_packages_tags(Some(vec!["arm64_tahoe".into(), "x86_64_linux".into()]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    let first = run(sync(&standin, dest)).await;
    first.assert_code(0);
    assert!(
        first
            .all_output()
            .contains("packages.tahoe.jws.json does not exist"),
        "{}",
        first.all_output()
    );
    assert!(
        !dir.path()
            .join("api/internal/packages.tahoe.jws.json")
            .exists()
    );
    // Its bottles are mirrored all the same (from formula.json's fallbacks).
    let old_tool = standin.bottle("old-tool", "sequoia").unwrap();
    assert_eq!(
        sha256_file(&dir.path().join("bottles").join(&old_tool.mirror_file_name)),
        old_tool.sha256
    );
    run(verify(dest)).await.assert_code(0);
}

/// `--formula gtk+3 --with-deps`: the closure from the per-tag file's
/// runtime `stable_dependencies` (not the build-only `pkgconf`), and
/// `verify` checks that scope only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_closure_follows_runtime_dependencies_and_verify_checks_that_scope() {
    let standin = standin(Catalog::brew_mirror()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    let mut cmd = sync(&standin, dest);
    cmd.args(["--formula", "gtk+3", "--with-deps"]);
    run(cmd).await.assert_code(0);
    let flat: Vec<String> = files_below(&dir.path().join("bottles"))
        .into_iter()
        .filter(|f| f.ends_with(".tar.gz"))
        .collect();
    assert!(
        flat.iter().any(|f| f.starts_with("libsigc++-3.6.0_2.")),
        "{flat:?}"
    );
    assert!(
        flat.iter().any(|f| f.starts_with("ca-certificates-")),
        "{flat:?}"
    );
    assert!(!flat.iter().any(|f| f.starts_with("pkgconf-")), "{flat:?}");
    assert!(!flat.iter().any(|f| f.starts_with("wget-")), "{flat:?}");
    let report = replay_install(
        &DirectoryMirror(dir.path().into()),
        "arm64_tahoe",
        &["gtk+3"],
    )
    .await
    .unwrap();
    assert!(report.is_complete(), "{report}");
    run(verify(dest)).await.assert_code(0);
}

/// The fleet (plan, then `work --drain` workers on moto) publishes the same
/// brew view: workers put the flat copy at commit, the planner stores the
/// manifests and stages the API files, the finisher publishes them after
/// compaction, and its summary names the one bottle that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_run_publishes_the_same_brew_view_and_names_what_it_lacks() {
    let stack = Stack::start(Catalog::brew_mirror()).await;
    let corrupt = stack.standin.bottle("gtk+3", "arm64_tahoe").unwrap();
    stack.standin.set_fault(&corrupt.sha256, Fault::Corrupt);
    let tags = TAGS.join(",");
    let env = [("BOTTLESYNC_TAGS", tags.as_str())];
    run(stack.command_with(&["plan", "--date", DATE], &env))
        .await
        .assert_code(0);
    let workers = (0..2)
        .map(|_| stack.spawn_worker(&["--concurrency", "3"]))
        .collect();
    for worker in Stack::wait_all(workers).await {
        worker.assert_code(0);
    }

    let mirror = S3Mirror::new(stack.moto.s3(), BUCKET, PREFIX);
    let names = names(&stack.standin);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for tag in TAGS {
        let report = replay_install(&mirror, tag, &names).await.unwrap();
        assert_eq!(report.api_file, stack.standin.packages_file(tag), "{tag}");
        assert_fresh_machines_start(&mirror, &stack.standin, tag).await;
        let problems = report.problems();
        if tag == "arm64_tahoe" {
            assert_eq!(problems, [("gtk+3".to_string(), "missing")], "{report}");
        } else {
            assert!(report.is_complete(), "{tag}: {report}");
        }
    }
    let titles = stack.webhook.titles();
    assert_eq!(titles.len(), 2, "{titles:?}");
    let summary = stack.webhook.messages()[1]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains("Missing from mirror: 1") && summary.contains(&corrupt.mirror_file_name),
        "{summary}"
    );
    let mut verify = stack.command(&["verify", "--dest", &format!("s3://{BUCKET}/{PREFIX}")]);
    verify.env_remove("BOTTLESYNC_DEST");
    let checked = run(verify).await;
    checked.assert_code(1);
    assert!(
        checked.stdout.contains(&corrupt.mirror_file_name),
        "{}",
        checked.all_output()
    );
}

/// SIGKILL while a run publishes (right after it wrote
/// `.bottlesync/published.json`, the step before the API files): every API
/// file is the old one or the new one, whole, never a part; the rerun
/// publishes the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_publication_leaves_each_api_file_old_or_new_never_partial() {
    // Big enough API files (thousands of formulae) that writing them takes
    // a moment; one tag keeps the first sync short.
    let catalog = Catalog::generated(1500, 11, SizeModel::fixed(200));
    let bumped_name = catalog.formulae()[0].name.clone();
    let before = standin(catalog.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap().to_string();
    let one_tag = |standin: &StandIn| {
        let mut cmd = bottlesync();
        cmd.args(sync_args(standin, &dest))
            .args(["--tags", "arm64_tahoe"]);
        cmd
    };
    run(one_tag(&before)).await.assert_code(0);
    let api = |file: &str| dir.path().join("api").join(file);
    let files = ["internal/packages.arm64_tahoe.jws.json", "formula.jws.json"];
    let old: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(api(f)).unwrap())
        .collect();
    let record = dir.path().join(".bottlesync/published.json");
    let old_record = std::fs::read(&record).unwrap();

    let after = standin(catalog.with_version(&bumped_name, "99.0")).await;
    let new: Vec<Vec<u8>> = vec![
        after.packages_file("arm64_tahoe").unwrap(),
        upstream(&after, "formula.jws.json").await,
    ];
    assert_ne!(old, new);
    let mut child = one_tag(&after)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if std::fs::read(&record).is_ok_and(|now| now != old_record) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before publishing"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never reached publication"
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for (i, file) in files.iter().enumerate() {
        let now = std::fs::read(api(file)).unwrap();
        let which = if now == new[i] { "new" } else { "old" };
        eprintln!("after the kill: {file} is the {which} file");
        assert!(
            now == old[i] || now == new[i],
            "{file}: {} bytes, neither the old ({}) nor the new ({}) file",
            now.len(),
            old[i].len(),
            new[i].len()
        );
    }
    run(one_tag(&after)).await.assert_code(0);
    for (i, file) in files.iter().enumerate() {
        assert_eq!(
            std::fs::read(api(file)).unwrap(),
            new[i],
            "{file} after the rerun"
        );
    }
}

/// A stored image index that lacks a mirrored bottle's digest (stored
/// before upstream added the bottle), or that is gone, is fetched again by
/// the next run, byte for byte; one that names everything is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_or_missing_manifest_is_fetched_again_by_the_next_run() {
    let standin = standin(Catalog::brew_mirror()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    run(sync(&standin, dest)).await.assert_code(0);
    let manifests = dir.path().join("bottles");
    let stale = manifests.join("openssl/3/manifests/3.6.0");
    let gone = manifests.join("gtkx3/manifests/3.24.51");
    let kept = manifests.join("wget/manifests/1.25.0");
    std::fs::write(&stale, br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    std::fs::remove_file(&gone).unwrap();
    let kept_before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    run(verify(dest)).await.assert_code(1);
    standin.reset_stats();

    run(sync(&standin, dest)).await.assert_code(0);
    assert_eq!(
        std::fs::read(&stale).unwrap(),
        standin.image_index("openssl/3", "3.6.0").unwrap()
    );
    assert_eq!(
        std::fs::read(&gone).unwrap(),
        standin.image_index("gtkx3", "3.24.51").unwrap()
    );
    assert_eq!(
        std::fs::metadata(&kept).unwrap().modified().unwrap(),
        kept_before
    );
    // Every plan also reads Portable Ruby's image index of each version
    // (3.4.8, 4.0.6) for its digests.
    assert_eq!(
        standin.stats().manifest_requests,
        2 + 2,
        "only the two fetched again, and Portable Ruby's"
    );
    run(verify(dest)).await.assert_code(0);
}

/// With `HOMEBREW_NO_AUTO_UPDATE=1` alone brew keeps the first API file it
/// downloaded forever (brew's `api.rb` `fetch_api_files!`), so after the
/// next sync `brew upgrade` sees nothing new: every client block the docs
/// give (serve, nginx, a static server, CloudFront's output) also sets
/// `HOMEBREW_FORCE_API_AUTO_UPDATE=1`.
#[test]
fn every_client_block_of_the_docs_revalidates_the_api_file() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut blocks = 0;
    for doc in ["README.md", "terraform/README.md"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        for block in text.split("```").skip(1).step_by(2) {
            if !block.contains("export HOMEBREW_API_DOMAIN=") {
                continue;
            }
            blocks += 1;
            for setting in [
                "export HOMEBREW_BOTTLE_DOMAIN=",
                "export HOMEBREW_NO_AUTO_UPDATE=1",
                "export HOMEBREW_FORCE_API_AUTO_UPDATE=1",
            ] {
                assert!(
                    block.contains(setting),
                    "{doc}: a client block lacks {setting}:\n{block}"
                );
            }
        }
    }
    assert!(blocks >= 4, "found only {blocks} client blocks");
    let output =
        std::fs::read_to_string(format!("{root}/terraform/modules/cdn/outputs.tf")).unwrap();
    assert!(
        output.contains("\\nHOMEBREW_FORCE_API_AUTO_UPDATE=1\""),
        "homebrew_client_env lacks HOMEBREW_FORCE_API_AUTO_UPDATE=1"
    );
}

/// brew writes symbols with a leading colon (`"bottle_tag": ":all"`,
/// `":arm64_sequoia"`): a mirror of the default tags holds every `all` and
/// fallback bottle its published files name, `verify` agrees, and names
/// one that is removed. (Before issue 17 every such entry was rejected: the
/// run said "0 index entries rejected" and verify "complete".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_of_the_default_tags_holds_every_all_and_fallback_bottle_its_files_name() {
    let standin = standin(Catalog::tricky()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest));
    let synced = run(cmd).await;
    synced.assert_code(0);
    assert!(
        synced.stdout.contains(", 0 index entries rejected,"),
        "{}",
        synced.stdout
    );
    let (mut all, mut fallback) = (0, 0);
    for tag in AUTO_TAGS {
        let bytes = std::fs::read(
            dir.path()
                .join(format!("api/internal/packages.{tag}.jws.json")),
        )
        .unwrap();
        let payload = parse_packages_file(&bytes).unwrap();
        for (name, entry) in payload["formulae"].as_object().unwrap() {
            if entry.get("disable_args").is_some() {
                continue;
            }
            let Some(bottle) = bottle_request(name, entry, tag).unwrap() else {
                continue;
            };
            match entry["bottle_tag"].as_str() {
                Some(":all") => all += 1,
                Some(_) => fallback += 1,
                None => {}
            }
            let file = dir.path().join("bottles").join(&bottle.file_name);
            assert!(
                file.exists(),
                "{tag}: {name}: {} not mirrored",
                bottle.file_name
            );
            assert_eq!(sha256_file(&file), bottle.sha256, "{tag}: {name}");
        }
    }
    assert!(
        all >= AUTO_TAGS.len() && fallback >= AUTO_TAGS.len(),
        "the catalog names {all} all and {fallback} fallback bottles"
    );
    run(verify(dest)).await.assert_code(0);

    let removed = "ca-certificates-2025-09-09.all.bottle.tar.gz";
    std::fs::remove_file(dir.path().join("bottles").join(removed)).unwrap();
    let checked = run(verify(dest)).await;
    checked.assert_code(1);
    assert!(
        checked.stdout.contains(&format!("  {removed} (")) && checked.stdout.contains("INCOMPLETE"),
        "{}",
        checked.stdout
    );
}

/// `--with-deps` mirrors what brew installs on each tag: plain and
/// `:recommended` dependencies, not `:build`, `:test` or `:optional` ones,
/// no requirement taken for a formula; `uses_from_macos` on Linux and on
/// macOS older than its bound; glibc and gcc on Linux unless
/// `--linux-host-formulae off`. Then brew's replay installs from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_deps_mirrors_what_brew_installs_on_each_tag() {
    let standin = standin(Catalog::brew_mirror()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().to_str().unwrap();
    let tags = ["x86_64_linux", "arm64_tahoe", "arm64_sequoia"];
    let sync_curl = |extra: &[&str]| {
        let mut cmd = bottlesync();
        cmd.args(sync_args(&standin, dest))
            .args([
                "--tags",
                &tags.join(","),
                "--formula",
                "curl",
                "--with-deps",
                // The formula closure only (tests/portable_ruby.rs has Ruby).
                "--portable-ruby",
                "off",
            ])
            .args(extra);
        cmd
    };
    let planned = |hosts: &'static str| {
        let report = dir.path().join(format!("plan-{hosts}.json"));
        let cmd = sync_curl(&[
            "--dry-run",
            "--linux-host-formulae",
            hosts,
            "--report",
            report.to_str().unwrap(),
        ]);
        async move {
            let out = run(cmd).await;
            out.assert_code(0);
            assert!(
                !out.stderr.contains("is not in the formula index"),
                "{}",
                out.stderr
            );
            let plan: serde_json::Value =
                serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
            let mut bottles: Vec<String> = plan["bottles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    format!(
                        "{} {}",
                        b["name"].as_str().unwrap(),
                        b["tag"].as_str().unwrap()
                    )
                })
                .collect();
            bottles.sort();
            bottles
        }
    };
    let runtime = [
        "ca-certificates all",
        "curl arm64_sequoia",
        "curl arm64_tahoe",
        "curl x86_64_linux",
        "libxml2 arm64_sequoia",
        "libxml2 x86_64_linux",
        "openssl@3 arm64_sequoia",
        "openssl@3 arm64_tahoe",
        "openssl@3 x86_64_linux",
        "zlib x86_64_linux",
    ];
    let mut with_hosts: Vec<&str> = runtime.to_vec();
    with_hosts.extend(["gcc x86_64_linux", "glibc x86_64_linux"]);
    with_hosts.sort();
    assert_eq!(planned("off").await, runtime);
    assert_eq!(planned("on").await, with_hosts);

    run(sync_curl(&[])).await.assert_code(0);
    for tag in tags {
        let report = replay_install(&DirectoryMirror(dir.path().into()), tag, &["curl"])
            .await
            .unwrap();
        assert!(report.is_complete(), "{report}");
    }
    run(verify(dest)).await.assert_code(0);
}

/// A per-tag entry the parser must set aside is counted and named by the
/// summary and `--report`, and `verify` reports the mirror incomplete with
/// it named: its bottle is never mirrored, so clients would miss it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_per_tag_entry_is_named_by_the_summary_the_report_and_verify() {
    let standin = standin(Catalog::brew_mirror()).await;
    let tag = "arm64_tahoe";
    let mut payload: serde_json::Value =
        serde_json::from_str(&standin.packages_payload(tag)).unwrap();
    payload["formulae"]["evil"] = serde_json::json!({
        "desc": "d", "homepage": "https://example.invalid", "license": "MIT",
        "stable_version": "1.0", "stable_url_args": ["https://example.invalid/evil-1.0.tar.gz"],
        "bottle_tag": ":../../etc", "bottle_checksum": "ab".repeat(32)
    });
    standin.set_packages_payload(tag, &payload.to_string());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let dest = dest.to_str().unwrap();
    let report = dir.path().join("report.json");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest))
        .args(["--tags", tag, "--report", report.to_str().unwrap()]);
    let synced = run(cmd).await;
    synced.assert_code(0);
    assert!(
        synced.stdout.contains(", 1 index entries rejected,"),
        "{}",
        synced.stdout
    );
    assert!(
        synced.stdout.contains(
            "rejected (not mirrored): packages.arm64_tahoe.jws.json: index entry \"evil\""
        ),
        "{}",
        synced.stdout
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rejected = summary["rejected_entries"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].as_str().unwrap().contains("\"evil\""),
        "{rejected:?}"
    );
    let checked = run(verify(dest)).await;
    checked.assert_code(1);
    assert!(
        checked
            .stdout
            .contains("api/internal/packages.arm64_tahoe.jws.json: ")
            && checked.stdout.contains("\"evil\""),
        "{}",
        checked.stdout
    );
}
