//! `bottlesync sync --dest s3://...` against moto_server: the same layout as
//! a directory, multipart for large bottles, nothing left half-uploaded.

mod common;

use std::collections::BTreeSet;

use bottlesync_loadtest::{Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use common::*;

const BUCKET: &str = "mirror-bucket";

async fn objects(s3: &aws_sdk_s3::Client) -> BTreeSet<String> {
    let listed = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

async fn object_sha256(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let body = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    sha256_hex(&body.into_bytes())
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
