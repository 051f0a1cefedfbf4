//! Large bottles come down in segments over several connections
//! (`--segment-size`, `--connections-per-bottle`): faults on single ranges
//! are resumed alone, an expired signed URL is asked for again, a server
//! that ignores Range gets one stream, a kill leaves nothing partial, and
//! an S3 destination gets its segments as multipart parts.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bottlesync_loadtest::{BottleInfo, Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use common::*;

const MIB: u64 = 1024 * 1024;

async fn standin_with(bottles: &[(&str, u64)]) -> StandIn {
    let formulae = bottles
        .iter()
        .map(|(name, size)| FormulaSpec::new(*name, "1.0").bottle("arm64_tahoe", *size))
        .collect();
    StandIn::start(StandInConfig::new(Catalog::from_formulae(formulae)))
        .await
        .unwrap()
}

fn segmented_sync(standin: &StandIn, dest: &str, segment: &str) -> std::process::Command {
    let mut cmd = bottlesync();
    cmd.args(sync_args(standin, dest))
        .args(["--tags", "arm64_tahoe", "--segment-size", segment])
        .args(["--connections-per-bottle", "4", "--retries", "4"]);
    cmd
}

/// The sha256 of an object of the `mirror` bucket.
async fn object_sha256(s3: &aws_sdk_s3::Client, key: &str) -> String {
    sha256_hex(&s3_object_bytes(s3, "mirror", key).await)
}

fn assert_stored(dest: &Path, bottle: &BottleInfo) {
    let path = dest.join(DATE).join(&bottle.mirror_file_name);
    assert_eq!(sha256_file(&path), bottle.sha256, "{}", bottle.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_range_fault_is_resumed_alone_and_every_bottle_ends_whole() {
    let standin = standin_with(&[
        ("truncated", 9 * MIB + 3),
        ("refused", 9 * MIB + 5),
        ("expiring", 9 * MIB + 7),
        ("norange", 9 * MIB + 11),
        ("small", 500_000),
    ])
    .await;
    let bottle = |name: &str| standin.bottle(name, "arm64_tahoe").unwrap();
    // Two ranges of this one are cut off halfway (the Content-Length
    // promised more).
    standin.set_fault(&bottle("truncated").sha256, Fault::Truncate { times: 2 });
    // The storage answers 503 to two of its ranges.
    standin.set_fault(
        &bottle("refused").sha256,
        Fault::StorageStatus {
            code: 503,
            times: 2,
        },
    );
    // Slow enough that its signed URL (valid 1 s, counted in whole seconds)
    // has surely expired when the fifth range starts: the first four take
    // 2 s each. (At 2 MiB/s they took 1 s, and a range starting a few ms
    // early, within the pacing's slack, sometimes still got through: the
    // test failed about once in a loaded run.)
    standin.set_fault(
        &bottle("expiring").sha256,
        Fault::Slow { bytes_per_sec: MIB },
    );
    standin.set_signed_url_ttl(Duration::from_secs(1));
    // This server sends the whole bottle whatever the Range.
    standin.set_fault(&bottle("norange").sha256, Fault::IgnoreRange);

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let run = run(segmented_sync(&standin, dest.to_str().unwrap(), "2MiB")).await;
    run.assert_code(0);

    for name in ["truncated", "refused", "expiring", "norange", "small"] {
        assert_stored(&dest, &bottle(name));
    }
    let stats = standin.stats();
    let log = run.all_output();
    // 5 segments each: more ranged requests than segments where a range
    // was resumed.
    let ranges = |name: &str| stats.bottle(&bottle(name).sha256).range_requests;
    assert!(ranges("truncated") >= 5 + 2, "truncated: {stats:#?}");
    assert!(ranges("refused") >= 5, "refused: {stats:#?}");
    assert!(ranges("expiring") >= 5, "expiring: {stats:#?}");
    assert!(
        log.matches("segment interrupted: resuming its range alone")
            .count()
            >= 4,
        "two truncations and two 503s are resumed:\n{log}"
    );
    assert!(
        stats.storage_signature_rejections >= 1,
        "a cached signed URL expired and was refused: {stats:#?}"
    );
    assert!(
        log.contains("the signed storage URL was refused (expired?)"),
        "{log}"
    );
    assert!(
        log.contains("cannot download this bottle in segments: fetching it as one stream"),
        "{log}"
    );
    assert_eq!(
        stats.bottle(&bottle("small").sha256).range_requests,
        0,
        "a bottle below the segment size is one plain GET"
    );
    assert!(
        files_below(&dest.join(".bottlesync/tmp")).is_empty(),
        "no temp file is left"
    );
    let record = read_hash_file(&dest);
    assert_eq!(record["bottles"].as_object().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_segmented_bottle_is_never_stored() {
    let standin = standin_with(&[("big", 6 * MIB + 1)]).await;
    let big = standin.bottle("big", "arm64_tahoe").unwrap();
    standin.set_fault(&big.sha256, Fault::Corrupt);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let run = run(segmented_sync(&standin, dest.to_str().unwrap(), "1MiB")).await;
    assert_ne!(run.code, 0, "{}", run.all_output());
    assert!(run.all_output().contains("sha256"), "{}", run.all_output());
    assert!(
        standin.stats().bottle(&big.sha256).range_requests >= 7,
        "it was segmented"
    );
    assert!(!dest.join(DATE).join(&big.mirror_file_name).exists());
    assert!(!dest.join("bottles").join(&big.mirror_file_name).exists());
    assert!(files_below(&dest.join(".bottlesync/tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_segmented_download_leaves_nothing_partial_and_the_rerun_completes() {
    const BIG: u64 = 48 * MIB;
    let standin = standin_with(&[("big", BIG)]).await;
    let big = standin.bottle("big", "arm64_tahoe").unwrap();
    standin.set_conn_rate(Some(4 * MIB));

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let mut cmd = segmented_sync(&standin, dest.to_str().unwrap(), "8MiB");
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let served = standin.stats().bottle(&big.sha256);
        // Several connections at once, well into the bottle.
        if served.range_requests >= 4 && served.bytes_served > BIG / 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached the kill point: {served:?}"
        );
        assert!(child.try_wait().unwrap().is_none(), "sync ended early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let path = dest.join(DATE).join(&big.mirror_file_name);
    assert!(!path.exists(), "a partial bottle reached its final name");
    assert!(!dest.join("bottles").join(&big.mirror_file_name).exists());

    standin.set_conn_rate(None);
    let run = run(segmented_sync(&standin, dest.to_str().unwrap(), "8MiB")).await;
    run.assert_code(0);
    assert_stored(&dest, &big);
    assert!(
        files_below(&dest.join(".bottlesync/tmp")).is_empty(),
        "the rerun clears what the killed run left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_into_s3_become_multipart_parts_of_a_verified_object() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket("mirror").send().await.unwrap();
    let standin = standin_with(&[("big", 20 * MIB + 9), ("ranged", 17 * MIB)]).await;
    let big = standin.bottle("big", "arm64_tahoe").unwrap();
    let ranged = standin.bottle("ranged", "arm64_tahoe").unwrap();
    standin.set_fault(&ranged.sha256, Fault::Truncate { times: 1 });
    // Segments are capped at the S3 part size (8 MiB): 3 parts each.
    let mut cmd = segmented_sync(&standin, "s3://mirror/brew", "16MiB");
    moto.apply(&mut cmd);
    let run = run(cmd).await;
    run.assert_code(0);
    for bottle in [&big, &ranged] {
        let key = format!("brew/{DATE}/{}", bottle.mirror_file_name);
        assert_eq!(object_sha256(&s3, &key).await, bottle.sha256, "{key}");
        // Tagged from the CreateMultipartUpload on: the archive rule's mark.
        assert_eq!(
            object_tags(&s3, "mirror", &key).await,
            ["bottlesync-archive=dated"],
            "{key}"
        );
        let flat = format!("brew/bottles/{}", bottle.mirror_file_name);
        assert!(object_tags(&s3, "mirror", &flat).await.is_empty(), "{flat}");
        assert!(
            standin.stats().bottle(&bottle.sha256).range_requests >= 3,
            "{} was segmented",
            bottle.name
        );
    }
    // Segments shorter than a part: each part is filled by several
    // connections, and read back while it is still filling.
    let mut cmd = segmented_sync(&standin, "s3://mirror/short-segments", "3MiB");
    moto.apply(&mut cmd);
    common::run(cmd).await.assert_code(0);
    let key = format!("short-segments/{DATE}/{}", big.mirror_file_name);
    assert_eq!(object_sha256(&s3, &key).await, big.sha256, "{key}");

    let open = s3
        .list_multipart_uploads()
        .bucket("mirror")
        .send()
        .await
        .unwrap();
    assert!(
        open.uploads().is_empty(),
        "no multipart upload is left open: {open:?}"
    );
}
