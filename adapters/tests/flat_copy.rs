//! Flat copies (`bottles/<mirror file name>`, what brew requests) of
//! committed bottles, and the content types objects are stored with: a hard
//! link in a directory (no extra bytes), a server-side copy on S3 (moto),
//! multipart (`UploadPartCopy`) above the store's threshold, never leaving
//! an incomplete upload behind. On S3 a dated bottle carries the archive tag
//! the lifecycle rule expires, and nothing else does: not its flat copy (a
//! copy would inherit the source's tags by default), not the API files,
//! manifests or `bottles_hash.json`.

use std::os::unix::fs::MetadataExt;

use aws_sdk_s3::config::retry::RetryConfig;
use bottlesync_adapters::aws::s3_store::S3Store;
use bottlesync_adapters::local::local_store::LocalStore;
use bottlesync_aws_harness::aws_counter::AwsRequestCounter;
use bottlesync_aws_harness::moto::Moto;
use bottlesync_core::model::layout::{
    CONTENT_TYPE_BOTTLE, CONTENT_TYPE_IMAGE_INDEX, CONTENT_TYPE_JSON, flat_bottle_key,
    manifest_key, packages_key,
};
use bottlesync_core::ports::store::BlobWriter;
use bottlesync_core::ports::store::DocumentStore;
use bottlesync_core::ports::store::{BlobStore, Precondition, PutIf};
use bottlesync_core::{ObjectKey, Sha256Digest, Tag};
use sha2::{Digest, Sha256};

const BUCKET: &str = "mirror-bucket";
const PREFIX: &str = "brew";
const MIB: usize = 1024 * 1024;

const OPENSSL: &str = "openssl@3-3.4.0_1.arm64_sequoia.bottle.tar.gz";
const GTK: &str = "gtk+3-3.24.43.arm64_sequoia.bottle.tar.gz";

fn dated_key(flat_name: &str) -> ObjectKey {
    // The dated name has `--` between name and version; the flat one `-`.
    let (name, rest) = flat_name.split_once('-').unwrap();
    ObjectKey::parse(&format!("2026-12-01/{name}--{rest}")).unwrap()
}

/// Deterministic bytes, different per seed.
fn bottle_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

/// Stores a verified bottle the way a worker does: begin, write, commit.
async fn commit(store: &dyn BlobStore, key: &ObjectKey, bytes: &[u8]) {
    let sha = Sha256Digest::from_bytes(&Sha256::digest(bytes));
    let mut upload = store.begin(key, &sha, bytes.len() as u64).await.unwrap();
    for chunk in bytes.chunks(300 * 1024 + 11) {
        upload
            .write(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    upload.commit().await.unwrap();
}

fn staging_is_empty(root: &std::path::Path) -> bool {
    std::fs::read_dir(root.join(".bottlesync/tmp"))
        .unwrap()
        .next()
        .is_none()
}

#[tokio::test]
async fn a_flat_copy_in_a_directory_is_a_hard_link_to_the_dated_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    for (seed, name) in [OPENSSL, GTK].into_iter().enumerate() {
        let bytes = bottle_bytes(64 * 1024 + seed, seed as u8);
        let (dated, flat) = (dated_key(name), flat_bottle_key(name).unwrap());
        commit(&store, &dated, &bytes).await;
        store.put_flat_copy(&dated, &flat).await.unwrap();

        // The stored name keeps its literal `@` / `+`.
        let flat_path = dir.path().join("bottles").join(name);
        let dated_path = store.path_of(&dated);
        let (flat_meta, dated_meta) = (
            std::fs::metadata(&flat_path).unwrap(),
            std::fs::metadata(&dated_path).unwrap(),
        );
        assert_eq!(
            flat_meta.ino(),
            dated_meta.ino(),
            "{name}: the flat file is not a hard link to the dated one"
        );
        assert_eq!(
            dated_meta.nlink(),
            2,
            "{name}: one dated file, one flat link"
        );
        assert!(
            std::fs::read(&flat_path).unwrap() == bytes,
            "{name}: bytes differ"
        );

        // Again: nothing changes, nothing is left in staging.
        store.put_flat_copy(&dated, &flat).await.unwrap();
        assert_eq!(
            std::fs::metadata(&flat_path).unwrap().ino(),
            dated_meta.ino()
        );
        assert_eq!(std::fs::metadata(&dated_path).unwrap().nlink(), 2);
        assert!(staging_is_empty(dir.path()));
    }
}

#[tokio::test]
async fn a_directory_flat_copy_leaves_a_same_size_file_and_replaces_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let bytes = bottle_bytes(10_000, 1);
    let (dated, flat) = (dated_key(OPENSSL), flat_bottle_key(OPENSSL).unwrap());
    commit(&store, &dated, &bytes).await;
    let flat_path = dir.path().join("bottles").join(OPENSSL);
    std::fs::create_dir_all(flat_path.parent().unwrap()).unwrap();

    // A file of the same size (an earlier copy): left alone.
    let same_size = bottle_bytes(10_000, 2);
    std::fs::write(&flat_path, &same_size).unwrap();
    store.put_flat_copy(&dated, &flat).await.unwrap();
    assert!(std::fs::read(&flat_path).unwrap() == same_size);

    // Another size (a partial or foreign file): replaced by the link.
    std::fs::write(&flat_path, b"not the bottle").unwrap();
    store.put_flat_copy(&dated, &flat).await.unwrap();
    assert_eq!(
        std::fs::metadata(&flat_path).unwrap().ino(),
        std::fs::metadata(store.path_of(&dated)).unwrap().ino()
    );
    assert!(staging_is_empty(dir.path()));
}

#[tokio::test]
async fn a_directory_flat_copy_of_a_missing_bottle_names_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let (dated, flat) = (dated_key(GTK), flat_bottle_key(GTK).unwrap());
    let error = store
        .put_flat_copy(&dated, &flat)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(dated.as_str()) && error.contains(flat.as_str()),
        "{error}"
    );
    assert!(!dir.path().join("bottles").join(GTK).exists());
    assert!(staging_is_empty(dir.path()));

    let read_only = LocalStore::open_read_only(dir.path());
    assert!(read_only.put_flat_copy(&dated, &flat).await.is_err());
}

/// moto behind the request-counting proxy, with the SDK's own retries off
/// so the store's retries are what is seen.
async fn s3_behind_proxy() -> (Moto, AwsRequestCounter, aws_sdk_s3::Client) {
    let moto = Moto::start().await;
    moto.s3()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let proxy = AwsRequestCounter::start(&moto.endpoint).await.unwrap();
    let config = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
        .endpoint_url(proxy.url())
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .build();
    (moto, proxy, aws_sdk_s3::Client::from_conf(config))
}

async fn read_object(s3: &aws_sdk_s3::Client, key: &ObjectKey) -> Vec<u8> {
    s3.get_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}/{key}"))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

async fn head(
    s3: &aws_sdk_s3::Client,
    key: &ObjectKey,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    s3.head_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}/{key}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("HeadObject {key}: {e:?}"))
}

/// The content type brew needs, and no `Content-Encoding` (a client or a
/// CDN would decompress the bottle and its sha256 would not match).
async fn assert_stored_as(s3: &aws_sdk_s3::Client, key: &ObjectKey, wanted: &str) {
    let head = head(s3, key).await;
    assert_eq!(head.content_type(), Some(wanted), "{key}");
    assert_eq!(head.content_encoding(), None, "{key}");
}

/// The object's tags as `name=value`.
async fn tags(s3: &aws_sdk_s3::Client, key: &ObjectKey) -> Vec<String> {
    s3.get_object_tagging()
        .bucket(BUCKET)
        .key(format!("{PREFIX}/{key}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObjectTagging {key}: {e:?}"))
        .tag_set()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect()
}

const ARCHIVED: &str = "bottlesync-archive=dated";

async fn no_incomplete_uploads(s3: &aws_sdk_s3::Client) -> bool {
    s3.list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap()
        .uploads()
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flat_copy_on_s3_is_a_server_side_copy_served_as_gzip() {
    let (moto, proxy, s3) = s3_behind_proxy().await;
    let store = S3Store::new(s3, BUCKET, PREFIX);
    let plain = moto.s3();
    for (seed, name) in [GTK, OPENSSL].into_iter().enumerate() {
        let bytes = bottle_bytes(MIB + seed, seed as u8);
        let (dated, flat) = (dated_key(name), flat_bottle_key(name).unwrap());
        commit(&store, &dated, &bytes).await;
        proxy.reset();
        store.put_flat_copy(&dated, &flat).await.unwrap();

        let counts = proxy.counts();
        let count = |api: &str| counts.get(api).copied().unwrap_or(0);
        assert_eq!(count("S3.CopyObject"), 1, "{name}: {counts:?}");
        assert_eq!(
            count("S3.GetObject") + count("S3.PutObject") + count("S3.UploadPart"),
            0,
            "{name}: bytes went through the process: {counts:?}"
        );
        assert!(
            read_object(&plain, &flat).await == bytes,
            "{name}: bytes differ"
        );
        assert_stored_as(&plain, &flat, CONTENT_TYPE_BOTTLE).await;
        assert_eq!(tags(&plain, &dated).await, [ARCHIVED], "{name}");
        assert!(
            tags(&plain, &flat).await.is_empty(),
            "{name}: the flat copy inherited the archive tag: it would expire"
        );
        let listed = store.list("bottles").await.unwrap();
        assert!(
            listed.contains(&flat),
            "{name}: not listed as {flat}: {listed:?}"
        );

        // Again: a HEAD sees the copy there, nothing is copied.
        proxy.reset();
        store.put_flat_copy(&dated, &flat).await.unwrap();
        assert_eq!(
            proxy.counts().get("S3.CopyObject"),
            None,
            "{name}: copied twice"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_carry_the_content_type_of_their_key() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let store = S3Store::new(s3.clone(), BUCKET, PREFIX).with_min_part_size(5 * MIB);

    // Bottles: one PutObject, and a multipart upload (12 MiB in 5 MiB parts).
    let small = dated_key(OPENSSL);
    commit(&store, &small, &bottle_bytes(1000, 1)).await;
    assert_stored_as(&s3, &small, CONTENT_TYPE_BOTTLE).await;
    let large = dated_key(GTK);
    commit(&store, &large, &bottle_bytes(12 * MIB, 2)).await;
    assert!(
        head(&s3, &large)
            .await
            .e_tag()
            .is_some_and(|etag| etag.trim_matches('"').ends_with("-3")),
        "the large bottle was not a multipart upload: the test proves nothing"
    );
    assert_stored_as(&s3, &large, CONTENT_TYPE_BOTTLE).await;
    // Both ways of committing a dated bottle tag it for the archive rule.
    assert_eq!(tags(&s3, &small).await, [ARCHIVED]);
    assert_eq!(tags(&s3, &large).await, [ARCHIVED]);

    // Small objects: put_atomic and put_if.
    let manifest = manifest_key("openssl@3", "3.4.0_1").unwrap();
    store
        .put_atomic(&manifest, br#"{"schemaVersion":2}"#.to_vec())
        .await
        .unwrap();
    assert_stored_as(&s3, &manifest, CONTENT_TYPE_IMAGE_INDEX).await;
    let api = packages_key(&Tag::parse("arm64_sequoia").unwrap());
    store.put_atomic(&api, b"{}".to_vec()).await.unwrap();
    assert_stored_as(&s3, &api, CONTENT_TYPE_JSON).await;
    let record = ObjectKey::parse("bottles_hash.json").unwrap();
    assert!(matches!(
        store
            .put_if(&record, b"{}".to_vec(), Precondition::Absent)
            .await
            .unwrap(),
        PutIf::Written(_)
    ));
    assert_stored_as(&s3, &record, CONTENT_TYPE_JSON).await;
    for kept in [&manifest, &api, &record] {
        assert!(tags(&s3, kept).await.is_empty(), "{kept} is tagged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flat_copy_above_the_threshold_is_a_multipart_copy_with_a_retried_part() {
    let (moto, proxy, s3) = s3_behind_proxy().await;
    // 12 MiB above a 5 MiB threshold, in 5 MiB parts: 3 UploadPartCopy.
    let store = S3Store::new(s3, BUCKET, PREFIX).with_copy_limits(5 * MIB as u64, 5 * MIB as u64);
    let plain = moto.s3();
    let bytes = bottle_bytes(12 * MIB + 3, 7);
    let (dated, flat) = (dated_key(GTK), flat_bottle_key(GTK).unwrap());
    commit(&store, &dated, &bytes).await;

    proxy.reset();
    // The counter files UploadPartCopy under UploadPart (a partNumber PUT).
    proxy.answer_500_to_next("S3.UploadPart", 1);
    store.put_flat_copy(&dated, &flat).await.unwrap();

    let counts = proxy.counts();
    let count = |api: &str| counts.get(api).copied().unwrap_or(0);
    assert_eq!(count("S3.CreateMultipartUpload"), 1, "{counts:?}");
    assert_eq!(
        count("S3.UploadPart"),
        3 + 1,
        "three parts, one sent twice: {counts:?}"
    );
    assert_eq!(count("S3.CompleteMultipartUpload"), 1, "{counts:?}");
    assert_eq!(
        count("S3.CopyObject") + count("S3.GetObject") + count("S3.PutObject"),
        0,
        "{counts:?}"
    );
    let copied = head(&plain, &flat).await;
    assert!(
        copied
            .e_tag()
            .is_some_and(|etag| etag.trim_matches('"').ends_with("-3")),
        "not a three-part copy: {:?}",
        copied.e_tag()
    );
    assert_eq!(copied.content_length(), Some(bytes.len() as i64));
    assert_stored_as(&plain, &flat, CONTENT_TYPE_BOTTLE).await;
    assert!(read_object(&plain, &flat).await == bytes, "bytes differ");
    assert!(tags(&plain, &flat).await.is_empty(), "the copy is tagged");
    assert!(no_incomplete_uploads(&plain).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_copy_is_aborted_and_names_the_keys() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    // 2 MiB parts are below S3's (and moto's) 5 MiB minimum: the
    // CompleteMultipartUpload is refused with EntityTooSmall.
    let store =
        S3Store::new(s3.clone(), BUCKET, PREFIX).with_copy_limits(5 * MIB as u64, 2 * MIB as u64);
    let bytes = bottle_bytes(12 * MIB, 3);
    let (dated, flat) = (dated_key(OPENSSL), flat_bottle_key(OPENSSL).unwrap());
    commit(&store, &dated, &bytes).await;

    let error = store
        .put_flat_copy(&dated, &flat)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(flat.as_str())
            && error.contains(dated.as_str())
            && error.contains("CompleteMultipartUpload"),
        "{error}"
    );
    assert!(
        no_incomplete_uploads(&s3).await,
        "the failed copy was not aborted"
    );
    let absent = s3
        .head_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}/{flat}"))
        .send()
        .await;
    assert!(absent.is_err(), "a failed copy left an object at {flat}");

    // A missing source is named, and nothing is written.
    let missing = dated_key(GTK);
    let error = store
        .put_flat_copy(&missing, &flat_bottle_key(GTK).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(missing.as_str()), "{error}");
}
