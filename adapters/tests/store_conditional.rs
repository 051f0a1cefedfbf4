//! The stores under the faults real S3 has: concurrent compactions of
//! `bottles_hash.json` lose no bottle (S3 conditional writes on moto_server,
//! the flock-guarded compare-and-replace of a directory), conditional puts
//! refuse a stale version, multipart uploads carry a CRC64NVME that S3 can
//! check, and an `UploadPart` answered 500 is sent again alone.

use std::sync::Arc;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
use base64::Engine;
use bottlesync_adapters::aws::s3_store::S3Store;
use bottlesync_adapters::local::local_store::LocalStore;
use bottlesync_aws_harness::aws_counter::AwsRequestCounter;
use bottlesync_aws_harness::moto::Moto;
use bottlesync_core::mirror_record::{merge_into_hash_file, read_hash_file};
use bottlesync_core::model::hash_file::{HASH_FILE_NAME, MirroredBottle};
use bottlesync_core::ports::store::BlobWriter;
use bottlesync_core::ports::store::{BlobStore, Precondition, PutIf};
use bottlesync_core::{ObjectKey, Sha256Digest, Tag};
use sha2::{Digest, Sha256};

const BUCKET: &str = "mirror-bucket";
const WRITERS: usize = 8;
const BOTTLES_PER_WRITER: usize = 5;

fn bottle(writer: usize, n: usize) -> (Sha256Digest, MirroredBottle) {
    let name = format!("formula{writer}x{n}");
    let sha = Sha256Digest::from_bytes(&Sha256::digest(name.as_bytes()));
    let bottle = MirroredBottle {
        name: name.clone(),
        version: "1.0".into(),
        rebuild: 0,
        tag: Tag::parse("arm64_tahoe").unwrap(),
        key: ObjectKey::parse(&format!("2026-11-29/{name}--1.0.arm64_tahoe.bottle.tar.gz"))
            .unwrap(),
        size: 1000 + n as u64,
        downloaded_at: chrono::Utc::now(),
    };
    (sha, bottle)
}

/// `WRITERS` compactions at once, each of its own bottles: all must end up
/// in the file, and the race must actually have happened (conflicts).
async fn race_compactions(store: Arc<dyn BlobStore>) {
    let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (store, start) = (store.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let bottles: Vec<_> = (0..BOTTLES_PER_WRITER).map(|n| bottle(writer, n)).collect();
            start.wait().await;
            merge_into_hash_file(store.as_ref(), bottles).await
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap().expect("compaction succeeds").conflicts;
    }
    let record = read_hash_file(store.as_ref()).await.unwrap();
    for writer in 0..WRITERS {
        for n in 0..BOTTLES_PER_WRITER {
            let (sha, expected) = bottle(writer, n);
            assert_eq!(
                record.bottles.get(&sha).map(|b| &b.name),
                Some(&expected.name),
                "bottle {n} of writer {writer} was lost ({} of {} in the file)",
                record.bottles.len(),
                WRITERS * BOTTLES_PER_WRITER
            );
        }
    }
    assert_eq!(record.bottles.len(), WRITERS * BOTTLES_PER_WRITER);
    assert!(
        conflicts > 0,
        "the compactions never overlapped: the test proves nothing"
    );
}

/// moto on the serial server: threaded moto checks `If-Match` and stores
/// the object in separate steps on per-request threads (as its DynamoDB
/// does conditions), so two conditional puts can both pass there; S3's
/// are atomic.
fn serial_s3(moto: &Moto, endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compactions_on_s3_lose_no_bottle() {
    let moto = Moto::start().await;
    let s3 = serial_s3(&moto, &moto.dynamodb_endpoint);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(S3Store::new(s3, BUCKET, "brew/mirror"));
    race_compactions(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compactions_in_a_directory_lose_no_bottle() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(LocalStore::open(dir.path()).unwrap());
    race_compactions(store).await;
}

/// The port's contract, the same for both stores.
async fn conditional_puts_refuse_a_stale_version(store: &dyn BlobStore) {
    let key = ObjectKey::parse(".bottlesync/test-object").unwrap();
    let PutIf::Written(first) = store
        .put_if(&key, b"one".to_vec(), Precondition::Absent)
        .await
        .unwrap()
    else {
        panic!("creating an absent key is refused");
    };
    assert_eq!(
        store
            .put_if(&key, b"again".to_vec(), Precondition::Absent)
            .await
            .unwrap(),
        PutIf::PreconditionFailed,
        "created over an existing key"
    );
    let (bytes, read) = store.get_versioned(&key, 100).await.unwrap().unwrap();
    assert_eq!((bytes.as_slice(), &read), (&b"one"[..], &first));
    let PutIf::Written(second) = store
        .put_if(&key, b"two".to_vec(), Precondition::Matches(first.clone()))
        .await
        .unwrap()
    else {
        panic!("replacing the current version is refused");
    };
    assert_eq!(
        store
            .put_if(
                &key,
                b"three".to_vec(),
                Precondition::Matches(first.clone())
            )
            .await
            .unwrap(),
        PutIf::PreconditionFailed,
        "replaced a version that is no longer there"
    );
    assert_eq!(store.get(&key, 100).await.unwrap().unwrap(), b"two");
    assert!(!store.delete_if(&key, &first).await.unwrap());
    assert!(store.delete_if(&key, &second).await.unwrap());
    assert_eq!(store.get(&key, 100).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_on_s3_refuse_a_stale_version() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    conditional_puts_refuse_a_stale_version(&S3Store::new(s3, BUCKET, "p")).await;
}

#[tokio::test]
async fn conditional_puts_in_a_directory_refuse_a_stale_version() {
    let dir = tempfile::tempdir().unwrap();
    conditional_puts_refuse_a_stale_version(&LocalStore::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn an_invalid_hash_file_is_named_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    std::fs::write(dir.path().join(HASH_FILE_NAME), b"{ not json").unwrap();
    let error = merge_into_hash_file(&store, vec![bottle(0, 0)])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(HASH_FILE_NAME), "{error}");
    assert_eq!(
        std::fs::read(dir.path().join(HASH_FILE_NAME)).unwrap(),
        b"{ not json"
    );
}

/// A bottle of three parts (8 + 8 + 3 MiB), deterministic bytes.
fn multipart_bottle() -> Vec<u8> {
    (0..19 * 1024 * 1024 + 7)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

async fn upload(store: &S3Store, key: &ObjectKey, bytes: &[u8]) -> bottlesync_core::Result<()> {
    let sha = Sha256Digest::from_bytes(&Sha256::digest(bytes));
    let mut upload = store.begin(key, &sha, bytes.len() as u64).await?;
    for chunk in bytes.chunks(300 * 1024 + 11) {
        upload.write(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    upload.commit().await
}

fn crc64nvme_base64(bytes: &[u8]) -> String {
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    crc.update(bytes);
    base64::engine::general_purpose::STANDARD.encode(crc.finalize().to_be_bytes())
}

#[test]
fn crc64nvme_is_the_published_check_value() {
    // CRC-64/NVME of "123456789" (the catalogue's check value).
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    crc.update(b"123456789");
    assert_eq!(crc.finalize(), 0xae8b_1486_0a79_9888);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_carries_a_full_object_crc64nvme() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let store = S3Store::new(s3.clone(), BUCKET, "m");
    let bytes = multipart_bottle();
    let key = ObjectKey::parse("2026-11-29/big--1.0.arm64_tahoe.bottle.tar.gz").unwrap();
    upload(&store, &key, &bytes).await.unwrap();

    // moto computes the stored checksum itself (in Python) from the parts
    // it assembled, with the algorithm and type the upload declared.
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(format!("m/{key}"))
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(bytes.len() as i64));
    assert_eq!(
        head.checksum_crc64_nvme(),
        Some(crc64nvme_base64(&bytes).as_str()),
        "the object carries no CRC64NVME of its bytes"
    );
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_part_answered_500_is_sent_again_alone() {
    let moto = Moto::start().await;
    moto.s3()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let proxy = AwsRequestCounter::start(&moto.endpoint).await.unwrap();
    // No SDK retries: the store's own part retry is what is under test.
    let config = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
        .endpoint_url(proxy.url())
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    let store = S3Store::new(s3, BUCKET, "m");
    let bytes = multipart_bottle();
    let key = ObjectKey::parse("2026-11-29/big--1.0.arm64_tahoe.bottle.tar.gz").unwrap();

    proxy.answer_500_to_next("S3.UploadPart", 1);
    upload(&store, &key, &bytes)
        .await
        .expect("the failed part is retried, the bottle stored");

    let counts = proxy.counts();
    let count = |api: &str| counts.get(api).copied().unwrap_or(0);
    assert_eq!(count("S3.CreateMultipartUpload"), 1, "{counts:?}");
    assert_eq!(
        count("S3.UploadPart"),
        3 + 1,
        "three parts, one sent twice: {counts:?}"
    );
    assert_eq!(count("S3.CompleteMultipartUpload"), 1, "{counts:?}");
    assert_eq!(count("S3.AbortMultipartUpload"), 0, "{counts:?}");
    assert_eq!(count("S3.PutObject"), 0, "{counts:?}");
    let stored = moto
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key(format!("m/{key}"))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(stored == bytes, "the stored object differs from the bottle");
}
