//! `bottlesync sync --dest s3://...` against moto_server: the same layout as
//! a directory, multipart for large bottles, nothing left half-uploaded.

mod common;

use std::collections::BTreeSet;

use bottlesync_loadtest::{Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use common::*;

const BUCKET: &str = "mirror-bucket";

/// The archive view (dated bottles, the hash file); the brew view under
/// `bottles/` and `api/` and the bookkeeping are left out.
async fn objects(s3: &aws_sdk_s3::Client) -> BTreeSet<String> {
    let listed = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .filter(|key| {
            ["/.bottlesync/", "/bottles/", "/api/"]
                .iter()
                .all(|dir| !key.contains(dir))
        })
        .collect()
}

async fn object_sha256(s3: &aws_sdk_s3::Client, key: &str) -> String {
    sha256_hex(&s3_object_bytes(s3, BUCKET, key).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_destination_gets_the_same_layout() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut formulae = Catalog::tricky().formulae().to_vec();
    // Larger than one 8 MiB part: goes up as a multipart upload.
    formulae.push(FormulaSpec::new("large", "2.0").bottle("arm64_tahoe", 19 * 1024 * 1024 + 7));
    let standin = StandIn::start(StandInConfig::new(Catalog::from_formulae(formulae)))
        .await
        .unwrap();
    let corrupt = standin.bottle("gtk+3", "arm64_tahoe").unwrap();
    standin.set_fault(&corrupt.sha256, Fault::Corrupt);

    let dest = format!("s3://{BUCKET}/brew/mirror");
    let mut cmd = bottlesync();
    moto.apply(&mut cmd);
    cmd.args(sync_args(&standin, &dest));
    let first = run(cmd).await;
    first.assert_code(1);
    assert!(first.stdout.contains(&corrupt.sha256), "{}", first.stdout);

    let mut expected = expected_bottles(&standin, &AUTO_TAGS, false);
    expected.remove(&corrupt.sha256);
    let mut wanted: BTreeSet<String> = expected
        .values()
        .map(|b| format!("brew/mirror/{DATE}/{}", b.mirror_file_name))
        .collect();
    wanted.insert("brew/mirror/bottles_hash.json".into());
    assert_eq!(
        objects(&s3).await,
        wanted,
        "exactly the bottles and the hash file"
    );
    for bottle in expected.values() {
        let key = format!("brew/mirror/{DATE}/{}", bottle.mirror_file_name);
        assert_eq!(object_sha256(&s3, &key).await, bottle.sha256, "{key}");
    }
    let uploads = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "incomplete multipart uploads left: {:?}",
        uploads.uploads()
    );

    let hash_file = s3
        .get_object()
        .bucket(BUCKET)
        .key("brew/mirror/bottles_hash.json")
        .send()
        .await
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&hash_file.body.collect().await.unwrap().into_bytes()).unwrap();
    let keys: BTreeSet<String> = record["bottles"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, expected.keys().cloned().collect());

    // Rerun after the fix: only the corrupt one is fetched.
    standin.clear_faults();
    standin.reset_stats();
    let mut cmd = bottlesync();
    moto.apply(&mut cmd);
    cmd.args(sync_args(&standin, &dest));
    run(cmd).await.assert_code(0);
    assert_eq!(
        standin.stats().bottles.keys().cloned().collect::<Vec<_>>(),
        vec![corrupt.sha256.clone()]
    );
    let key = format!("brew/mirror/{DATE}/{}", corrupt.mirror_file_name);
    assert_eq!(object_sha256(&s3, &key).await, corrupt.sha256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_an_unusable_destination() {
    let moto = Moto::start().await;
    let standin = StandIn::start(StandInConfig::new(Catalog::tricky()))
        .await
        .unwrap();
    let mut cmd = bottlesync();
    moto.apply(&mut cmd);
    cmd.args(sync_args(&standin, "s3://no-such-bucket/x"));
    let result = run(cmd).await;
    result.assert_code(2);
    assert!(
        result.stderr.contains("s3://no-such-bucket/x"),
        "{}",
        result.stderr
    );
    assert_eq!(standin.stats().storage_gets, 0);
}

/// The lock object of `s3://BUCKET/brew/mirror`, if there is one: its JSON
/// and its ETag.
async fn lock_object(s3: &aws_sdk_s3::Client) -> Option<(serde_json::Value, String)> {
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("brew/mirror/.bottlesync/lock")
        .send()
        .await
        .ok()?;
    let etag = got.e_tag().unwrap_or_default().to_string();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    Some((serde_json::from_slice(&bytes).unwrap(), etag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_to_the_same_prefix_is_refused_until_the_lock_expires() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let formulae = vec![
        FormulaSpec::new("slow", "1.0").bottle("arm64_tahoe", 4 * 1024 * 1024),
        FormulaSpec::new("quick", "1.0").bottle("arm64_tahoe", 30_000),
    ];
    let standin = StandIn::start(StandInConfig::new(Catalog::from_formulae(formulae)))
        .await
        .unwrap();
    let slow = standin.bottle("slow", "arm64_tahoe").unwrap();
    // Long enough that the first run is still going when the second starts
    // and after it is killed (it never finishes: it is killed first).
    standin.set_fault(
        &slow.sha256,
        Fault::Slow {
            bytes_per_sec: 64 * 1024,
        },
    );
    let dest = format!("s3://{BUCKET}/brew/mirror");
    let lease_seconds = 6;
    let sync = |out: Stdio| {
        let mut cmd = bottlesync();
        moto.apply(&mut cmd);
        cmd.env("BOTTLESYNC_STORE_LEASE_SECONDS", lease_seconds.to_string())
            .args(sync_args(&standin, &dest))
            .args(["--tags", "arm64_tahoe"])
            .stdout(out);
        cmd
    };

    let mut first = sync(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (held, first_etag) = loop {
        if let Some(lock) = lock_object(&s3).await {
            break lock;
        }
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        assert!(first.try_wait().unwrap().is_none(), "the first run ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(held["pid"], first.id(), "{held}");

    let refused = run(sync(Stdio::piped())).await;
    refused.assert_code(2);
    for needle in [
        "s3://mirror-bucket/brew/mirror",
        ".bottlesync/lock",
        "another bottlesync run holds",
        &format!("pid {}", first.id()),
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle:?} in {}",
            refused.stderr
        );
    }

    // The holder renews while it runs (every third of the lease).
    loop {
        let (_, etag) = lock_object(&s3).await.expect("the lock is still there");
        if etag != first_etag {
            break;
        }
        assert!(Instant::now() < deadline, "the lock was never renewed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    first.kill().unwrap(); // SIGKILL: the lock stays behind
    first.wait().unwrap();
    let (stale, _) = lock_object(&s3)
        .await
        .expect("a killed run leaves its lock");
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(stale["expires_at"].clone()).unwrap();
    // Wait for the expiry itself (an outcome, not a duration).
    while chrono::Utc::now() <= expires + chrono::Duration::milliseconds(200) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    standin.clear_faults();
    let taken_over = run(sync(Stdio::piped())).await;
    taken_over.assert_code(0);
    assert!(
        taken_over.stderr.contains("taking over an expired lock"),
        "{}",
        taken_over.stderr
    );
    assert!(
        lock_object(&s3).await.is_none(),
        "the lock is deleted at the end of the run"
    );
    let listed = objects(&s3).await;
    assert!(
        listed.contains(&format!("brew/mirror/{DATE}/{}", slow.mirror_file_name)),
        "{listed:?}"
    );
}
