//! `Consumer::handle`'s outcomes, one scenario each, over the in-process
//! adapters (directory store, memory ledger and queues) and a registry
//! faked in memory: no HTTP server, no moto. Each test checks the
//! disposition the shell acts on AND what it left in the store, the ledger
//! and the queues. Times are scaled down from production with their ratios
//! kept (a claim's heartbeat every third of its lease).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bottlesync_adapters::local::local_store::LocalStore;
use bottlesync_adapters::local::memory_ledger::MemoryLedger;
use bottlesync_adapters::local::memory_queue::MemoryQueue;
use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::fleet_ledger::{BottleState, ClaimLedger, ClaimOutcome, RunBook};
use bottlesync_core::ports::notifier::LogNotifier;
use bottlesync_core::ports::queue::{Queue, QueueMessage};
use bottlesync_core::ports::registry::{BlobBody, Registry};
use bottlesync_core::ports::store::{DocumentStore, INTERNAL_PREFIX};
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::run::finish::Finisher;
use bottlesync_core::run::record::RunRecord;
use bottlesync_core::{BottleJob, Error, ObjectKey, Result, Sha256Digest, SizeSource, Tag};
use bottlesync_worker::consumer::WorkerPorts;
use bottlesync_worker::consumer::{Consumer, Disposition, attempts_allowed};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use url::Url;

const RUN_ID: &str = "20261129T030000Z-1a2b3c4d";
const DATE: &str = "2026-11-29";
/// The queue's redrive limit: a bottle gets `attempts_allowed(5)` = 3 receives.
const MAX_RECEIVES: u32 = 5;
/// Production's 900 s claim, heartbeat every 300 s, scaled down 1000x.
const LEASE: Duration = Duration::from_millis(900);
/// Production's live claim held by another worker: not scaled, it must
/// outlast the test.
const OTHER_CLAIM: Duration = Duration::from_secs(900);
const RETRY_BASE: Duration = Duration::from_millis(200);
/// A test that waits longer than this for the consumer has found it hung.
const PATIENCE: Duration = Duration::from_secs(20);
const BOTTLE_BYTES: usize = 48 * 1024;
const CHUNK_BYTES: usize = 16 * 1024;

/// What the fake registry does when a bottle is opened.
#[derive(Clone, Copy, Debug, Default)]
struct Knobs {
    /// Serve the bottle with its last byte flipped.
    corrupt: bool,
    /// Fail this many opens with a transient error before serving.
    transient_failures: u32,
    /// Send the first chunk, then nothing, until the body is dropped.
    never_ends: bool,
}

/// A registry serving one bottle's bytes from memory as a `BlobBody`
/// stream, counting what it was asked.
struct FakeRegistry {
    url: Url,
    bytes: Vec<u8>,
    knobs: Mutex<Knobs>,
    opens: AtomicUsize,
    /// Bodies dropped before their end (the transfer stopped reading).
    abandoned: Arc<AtomicUsize>,
    opened: tokio::sync::Notify,
}

impl FakeRegistry {
    fn set(&self, knobs: Knobs) {
        *self.knobs.lock().unwrap() = knobs;
    }

    fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }
}

/// Counts a body dropped before its end.
struct AbandonedGuard {
    abandoned: Arc<AtomicUsize>,
}

impl Drop for AbandonedGuard {
    fn drop(&mut self) {
        self.abandoned.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Registry for FakeRegistry {
    async fn get_document(&self, url: &Url, _max_bytes: u64) -> Result<Vec<u8>> {
        Err(Error::permanent_fetch(url.as_str(), "no documents here"))
    }

    async fn open_blob(&self, url: &Url, offset: u64) -> Result<BlobBody> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.opened.notify_one();
        assert_eq!(url, &self.url, "the consumer fetched another URL");
        let knobs = {
            let mut knobs = self.knobs.lock().unwrap();
            let now = *knobs;
            knobs.transient_failures = knobs.transient_failures.saturating_sub(1);
            now
        };
        if knobs.transient_failures > 0 {
            return Err(Error::transient_fetch(
                url.as_str(),
                "503 Service Unavailable (fake registry)",
            ));
        }
        let mut bytes = self.bytes.clone();
        if knobs.corrupt {
            *bytes.last_mut().unwrap() ^= 0xff;
        }
        let total = bytes.len() as u64;
        let chunks: Vec<Result<Bytes>> = bytes[offset as usize..]
            .chunks(CHUNK_BYTES)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let body = if knobs.never_ends {
            let guard = AbandonedGuard {
                abandoned: self.abandoned.clone(),
            };
            futures::stream::iter(chunks.into_iter().take(1))
                .chain(futures::stream::pending())
                .map(move |chunk| {
                    let _alive = &guard;
                    chunk
                })
                .boxed()
        } else {
            futures::stream::iter(chunks).boxed()
        };
        Ok(BlobBody {
            url: url.clone(),
            offset,
            total: Some(total),
            body,
        })
    }

    async fn blob_size(&self, _url: &Url) -> Result<Option<u64>> {
        Ok(Some(self.bytes.len() as u64))
    }

    async fn image_index(&self, blob_url: &Url, _version_rebuild: &str) -> Result<Vec<u8>> {
        Err(Error::permanent_fetch(
            blob_url.as_str(),
            "no manifests here",
        ))
    }
}

/// One run of one bottle, with every port the consumer uses in memory.
struct World {
    mirror: tempfile::TempDir,
    registry: Arc<FakeRegistry>,
    ledger: Arc<MemoryLedger>,
    store: Arc<LocalStore>,
    source: Arc<MemoryQueue>,
    dlq: Arc<MemoryQueue>,
    consumer: Arc<Consumer>,
    message: BottleMessage,
}

async fn world() -> World {
    let bytes: Vec<u8> = (0..BOTTLE_BYTES).map(|i| (i * 7 % 251) as u8).collect();
    let sha256 = Sha256Digest::from_bytes(&Sha256::digest(&bytes));
    let url: Url = format!("https://ghcr.io/v2/homebrew/core/hello/blobs/sha256:{sha256}")
        .parse()
        .unwrap();
    let job = BottleJob {
        name: "hello".into(),
        version: "1.0".into(),
        revision: 0,
        rebuild: 0,
        tag: Tag::parse("arm64_tahoe").unwrap(),
        sha256,
        url: url.clone(),
        size: bytes.len() as u64,
        size_source: SizeSource::Manifest,
        key: ObjectKey::parse(&format!("{DATE}/hello-1.0.arm64_tahoe.bottle.tar.gz")).unwrap(),
    };
    let registry = Arc::new(FakeRegistry {
        url,
        bytes,
        knobs: Mutex::new(Knobs::default()),
        opens: AtomicUsize::new(0),
        abandoned: Arc::new(AtomicUsize::new(0)),
        opened: tokio::sync::Notify::new(),
    });
    let mirror = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(mirror.path()).unwrap());
    let ledger = Arc::new(MemoryLedger::new());
    // Unsealed, so it cannot finish: the tests look at its counters.
    ledger
        .create_run(&RunRecord::new(
            RUN_ID,
            DATE,
            1,
            job.size,
            Route::Lambda,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let visibility = Duration::from_secs(30);
    let dlq = Arc::new(MemoryQueue::new("dlq", visibility));
    let source =
        Arc::new(MemoryQueue::new("work", visibility).with_dead_letter(dlq.clone(), MAX_RECEIVES));
    let config = FleetConfig::new("unit", "unit");
    // Exactly the ports a worker touches, doubles all.
    let ports = WorkerPorts {
        finisher: Finisher {
            ledger: ledger.clone(),
            store: store.clone(),
            notifier: Arc::new(LogNotifier),
            dlq: Some(dlq.clone()),
            context: config.message_context(),
            metrics: config.metrics(),
        },
        registry: registry.clone(),
        // Three tries within one receive, milliseconds apart.
        retry: RetryPolicy {
            retries: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
        },
        large_queue: None,
        hosts: config.hosts.clone(),
        segments: config.segments,
        progress_interval: None,
    };
    let consumer = Arc::new(
        Consumer::new(ports, "unit-worker".into(), Some(MAX_RECEIVES))
            .with_source(source.clone())
            .with_lease(LEASE)
            .with_retry_base(RETRY_BASE),
    );
    World {
        mirror,
        registry,
        ledger,
        store,
        source,
        dlq,
        consumer,
        message: BottleMessage::new(RUN_ID, job),
    }
}

impl World {
    fn job(&self) -> &BottleJob {
        &self.message.job
    }

    /// The bottle's message as its `receive_count`th receive delivers it.
    fn received(&self, receive_count: u32) -> QueueMessage {
        received(&self.message.to_body(), receive_count)
    }

    async fn handle(&self, message: QueueMessage) -> Disposition {
        let consumer = self.consumer.clone();
        let cancel = CancellationToken::new();
        tokio::time::timeout(
            PATIENCE,
            async move { consumer.handle(&message, &cancel).await },
        )
        .await
        .expect("the consumer settles the message")
    }

    async fn stored_bytes(&self) -> Option<Vec<u8>> {
        self.store.get(&self.job().key, u64::MAX).await.unwrap()
    }

    /// Upload files not committed and not cleaned up.
    fn staged_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.mirror.path().join(INTERNAL_PREFIX).join("tmp"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect()
    }

    async fn bottle_state(&self) -> Option<BottleState> {
        self.ledger.bottle_state(&self.job().sha256).await.unwrap()
    }

    async fn run(&self) -> RunRecord {
        self.ledger.run(RUN_ID).await.unwrap().unwrap()
    }

    /// The bodies waiting in `queue`, visible or not (receiving them all
    /// would count a receive; the depth does not).
    async fn waiting(queue: &MemoryQueue) -> (u64, u64) {
        let depth = queue.depth().await.unwrap();
        (depth.visible, depth.in_flight + depth.delayed)
    }

    /// Asserts the mirror holds nothing of the bottle, not even a
    /// half-written upload.
    async fn assert_nothing_stored(&self) {
        assert_eq!(self.stored_bytes().await, None, "nothing at the final key");
        assert_eq!(self.staged_files(), Vec::<PathBuf>::new(), "no upload left");
    }

    /// Asserts the run counted nothing.
    async fn assert_run_uncounted(&self) {
        let run = self.run().await;
        assert_eq!(
            (run.stored, run.skipped, run.failed),
            (0, 0, 0),
            "the run counted nothing: {run:?}"
        );
    }
}

fn received(body: &str, receive_count: u32) -> QueueMessage {
    QueueMessage {
        message_id: "m-1".into(),
        receipt: format!("receipt-{receive_count}"),
        body: body.to_string(),
        receive_count,
        sent_at: None,
    }
}

/// The consumer's claim on the bottle, while it holds one.
async fn current_owner(w: &World) -> String {
    match w.bottle_state().await {
        Some(BottleState::Claimed { owner, .. }) => owner,
        other => panic!("the bottle is not claimed: {other:?}"),
    }
}

/// Whether the bottle's claim, if any, has lapsed (released or expired):
/// another copy may take it at once.
async fn claim_is_free(w: &World) -> bool {
    match w.bottle_state().await {
        None => true,
        Some(BottleState::Claimed { lease_expires, .. }) => lease_expires < chrono::Utc::now(),
        Some(_) => false,
    }
}

/// Another worker takes the bottle's claim, for production's lease.
async fn claim_for_another_worker(w: &World, owner: &str) {
    assert_eq!(
        w.ledger
            .claim(&w.job().sha256, RUN_ID, owner, OTHER_CLAIM)
            .await
            .unwrap(),
        ClaimOutcome::Granted
    );
}

/// Starts handling the bottle's first receive with a registry body that
/// never ends; returns once the download has begun.
async fn start_endless_transfer(
    w: &World,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<Disposition> {
    w.registry.set(Knobs {
        never_ends: true,
        ..Knobs::default()
    });
    let opened = w.registry.opened.notified();
    let handling = tokio::spawn({
        let consumer = w.consumer.clone();
        let message = w.received(1);
        async move { consumer.handle(&message, &cancel).await }
    });
    tokio::time::timeout(PATIENCE, opened)
        .await
        .expect("the transfer starts");
    handling
}

#[tokio::test]
async fn a_granted_claim_stores_the_verified_bytes_and_counts_them_for_the_run() {
    let w = world().await;

    let disposition = w.handle(w.received(1)).await;

    assert_eq!(
        disposition,
        Disposition::Stored {
            bytes: BOTTLE_BYTES as u64
        }
    );
    assert!(disposition.acknowledges());
    assert_eq!(
        w.stored_bytes().await.as_deref(),
        Some(&w.registry.bytes[..])
    );
    assert_eq!(w.staged_files(), Vec::<PathBuf>::new());
    match w.bottle_state().await {
        Some(BottleState::Stored(bottle)) => {
            assert_eq!(bottle.size, BOTTLE_BYTES as u64);
            // Recorded under the flat key, made before the record.
            assert_eq!(bottle.key, w.job().flat_key());
        }
        other => panic!("the ledger does not say stored: {other:?}"),
    }
    let run = w.run().await;
    assert_eq!(
        (run.stored, run.failed, run.bytes_stored),
        (1, 0, BOTTLE_BYTES as u64)
    );
    assert_eq!(w.registry.opens(), 1);
    assert_eq!(World::waiting(&w.source).await, (0, 0), "nothing requeued");
    assert_eq!(
        World::waiting(&w.dlq).await,
        (0, 0),
        "nothing dead-lettered"
    );
}

/// `bottles_hash.json` names the flat copy, so it must exist before the
/// bottle is recorded: a copy that fails leaves the bottle unrecorded and
/// the message retried, never a record naming a missing object.
#[tokio::test]
async fn a_failed_flat_copy_is_retried_and_the_bottle_recorded_only_once_it_is_made() {
    let w = world().await;
    // A file where the bottles/ folder goes: the flat copy cannot be made.
    let blocker = w.mirror.path().join("bottles");
    std::fs::write(&blocker, b"not a folder").unwrap();

    let first = w.handle(w.received(1)).await;

    assert!(
        matches!(&first, Disposition::Retry { reason, .. } if reason.contains("flat copy bottles/")),
        "{first:?}"
    );
    assert!(
        !matches!(w.bottle_state().await, Some(BottleState::Stored(_))),
        "recorded as stored without its flat copy"
    );
    assert!(claim_is_free(&w).await, "the claim was not given back");
    w.assert_run_uncounted().await;

    std::fs::remove_file(&blocker).unwrap();
    let second = w.handle(w.received(2)).await;

    assert_eq!(
        second,
        Disposition::Stored {
            bytes: BOTTLE_BYTES as u64
        }
    );
    match w.bottle_state().await {
        Some(BottleState::Stored(bottle)) => assert_eq!(bottle.key, w.job().flat_key()),
        other => panic!("not stored: {other:?}"),
    }
    let flat = w.store.get(&w.job().flat_key(), u64::MAX).await.unwrap();
    assert_eq!(flat.as_deref(), Some(&w.registry.bytes[..]));
    assert_eq!(w.run().await.stored, 1);
}

#[tokio::test]
async fn a_bottle_already_stored_is_counted_skipped_without_a_download() {
    let w = world().await;
    assert!(matches!(
        w.handle(w.received(1)).await,
        Disposition::Stored { .. }
    ));
    // A later run plans the same bottle (its key, its sha256).
    w.ledger
        .create_run(&RunRecord::new(
            "later-run",
            DATE,
            1,
            0,
            Route::Lambda,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let again = BottleMessage::new("later-run", w.job().clone());

    let disposition = w.handle(received(&again.to_body(), 1)).await;

    assert_eq!(disposition, Disposition::Skipped);
    assert_eq!(w.registry.opens(), 1, "not downloaded again");
    let later = w.ledger.run("later-run").await.unwrap().unwrap();
    assert_eq!((later.stored, later.skipped), (0, 1));
    assert_eq!(w.run().await.stored, 1, "the first run is untouched");
}

#[tokio::test]
async fn a_bottle_claimed_by_a_live_owner_is_requeued_for_later_not_retried_as_this_receive() {
    let w = world().await;
    let holder = "m-other#1@elsewhere/0";
    claim_for_another_worker(&w, holder).await;

    let disposition = w.handle(w.received(1)).await;

    let Disposition::Requeued { reason } = &disposition else {
        panic!("not requeued: {disposition:?}");
    };
    assert!(reason.contains(holder), "{reason}");
    assert!(disposition.acknowledges(), "this receive is done with");
    // The fresh copy is delayed: in the queue, not visible yet.
    assert_eq!(World::waiting(&w.source).await, (0, 1));
    assert!(
        w.source
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "the copy is not visible at once"
    );
    assert_eq!(w.registry.opens(), 0, "no download");
    w.assert_nothing_stored().await;
    assert_eq!(
        current_owner(&w).await,
        holder,
        "the holder keeps its claim"
    );
    w.assert_run_uncounted().await;
    assert_eq!(World::waiting(&w.dlq).await, (0, 0));
}

#[tokio::test]
async fn a_claim_taken_over_mid_transfer_stops_the_transfer_and_commits_nothing() {
    let w = world().await;
    let handling = start_endless_transfer(&w, CancellationToken::new()).await;
    // The claim lapses (a stalled heartbeat, as far as the ledger can
    // tell) and another worker takes the bottle over.
    let ours = current_owner(&w).await;
    assert!(ours.starts_with("m-1#1@unit-worker/"), "{ours}");
    w.ledger
        .release_claim(&w.job().sha256, &ours)
        .await
        .unwrap();
    let thief = "m-other#1@elsewhere/0";
    claim_for_another_worker(&w, thief).await;

    let disposition = tokio::time::timeout(PATIENCE, handling)
        .await
        .expect("the next heartbeat stops the transfer")
        .unwrap();

    let Disposition::Retry { reason, delay } = &disposition else {
        panic!("not a retry: {disposition:?}");
    };
    assert!(reason.contains("claim lost"), "{reason}");
    // Back after the receive's backoff, where the claim's holder is found
    // (not after the queue's visibility timeout).
    assert!(
        (RETRY_BASE..=RETRY_BASE.mul_f64(1.25)).contains(delay),
        "{delay:?}"
    );
    assert_eq!(
        w.registry.abandoned.load(Ordering::SeqCst),
        1,
        "the body was dropped"
    );
    w.assert_nothing_stored().await;
    assert_eq!(
        current_owner(&w).await,
        thief,
        "the new owner keeps the claim"
    );
    w.assert_run_uncounted().await;
    assert_eq!(World::waiting(&w.source).await, (0, 0));
    assert_eq!(World::waiting(&w.dlq).await, (0, 0));
}

#[tokio::test]
async fn corrupt_bytes_are_retried_unstored_then_failed_for_good_on_the_last_attempt() {
    let w = world().await;
    w.registry.set(Knobs {
        corrupt: true,
        ..Knobs::default()
    });

    let first = w.handle(w.received(1)).await;

    let Disposition::Retry { reason, delay } = &first else {
        panic!("not a retry: {first:?}");
    };
    assert!(reason.contains("sha256 mismatch"), "{reason}");
    assert!(
        (RETRY_BASE..=RETRY_BASE.mul_f64(1.25)).contains(delay),
        "{delay:?}"
    );
    w.assert_nothing_stored().await;
    assert!(claim_is_free(&w).await, "the claim was given back");
    w.assert_run_uncounted().await;
    assert_eq!(World::waiting(&w.dlq).await, (0, 0));

    let last = w.handle(w.received(attempts_allowed(MAX_RECEIVES))).await;

    let Disposition::Failed { reason } = &last else {
        panic!("not failed for good: {last:?}");
    };
    assert!(reason.contains("sha256 mismatch"), "{reason}");
    w.assert_nothing_stored().await;
    let run = w.run().await;
    assert_eq!((run.stored, run.failed), (0, 1));
    assert_eq!(run.failures.len(), 1);
    assert_eq!(run.failures[0].name, "hello");
    assert_eq!(run.failures[0].tag, "arm64_tahoe");
    assert!(run.failures[0].reason.contains("sha256 mismatch"));
    assert_eq!(w.bottle_state().await, Some(BottleState::Failed));
    assert_dead_lettered(&w.dlq, &w.message.to_body()).await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_then_failed_for_good_on_the_last_attempt() {
    let w = world().await;
    w.registry.set(Knobs {
        transient_failures: u32::MAX,
        ..Knobs::default()
    });
    let last_attempt = attempts_allowed(MAX_RECEIVES);

    let before_last = w.handle(w.received(last_attempt - 1)).await;

    assert!(
        matches!(&before_last, Disposition::Retry { reason, .. } if reason.contains("503")),
        "{before_last:?}"
    );
    // Three tries within the receive, as the retry policy allows.
    assert_eq!(w.registry.opens(), 3);
    w.assert_run_uncounted().await;
    assert_eq!(World::waiting(&w.dlq).await, (0, 0));

    let last = w.handle(w.received(last_attempt)).await;

    let Disposition::Failed { reason } = &last else {
        panic!("not failed for good: {last:?}");
    };
    assert!(reason.contains("503 Service Unavailable"), "{reason}");
    w.assert_nothing_stored().await;
    let run = w.run().await;
    assert_eq!(run.failed, 1);
    assert!(run.failures[0].reason.contains("503"), "{:?}", run.failures);
    assert_dead_lettered(&w.dlq, &w.message.to_body()).await;
}

#[tokio::test]
async fn transient_failures_within_the_retry_policy_still_store_the_bottle() {
    let w = world().await;
    w.registry.set(Knobs {
        transient_failures: 2,
        ..Knobs::default()
    });

    let disposition = w.handle(w.received(1)).await;

    assert!(
        matches!(disposition, Disposition::Stored { .. }),
        "{disposition:?}"
    );
    assert_eq!(w.registry.opens(), 3);
    assert_eq!(
        w.stored_bytes().await.as_deref(),
        Some(&w.registry.bytes[..])
    );
    assert_eq!(w.run().await.stored, 1);
}

#[tokio::test]
async fn a_worker_stopping_mid_transfer_gives_the_claim_back_and_the_message_at_once() {
    let w = world().await;
    let cancel = CancellationToken::new();
    let handling = start_endless_transfer(&w, cancel.clone()).await;

    cancel.cancel();
    let disposition = tokio::time::timeout(PATIENCE, handling)
        .await
        .expect("cancelling stops the transfer")
        .unwrap();

    assert_eq!(
        disposition,
        Disposition::Retry {
            reason: "cancelled: the worker is stopping".into(),
            delay: Duration::ZERO,
        }
    );
    assert_eq!(w.registry.abandoned.load(Ordering::SeqCst), 1);
    w.assert_nothing_stored().await;
    assert!(claim_is_free(&w).await, "the claim was given back");
    w.assert_run_uncounted().await;
}

#[tokio::test]
async fn a_malformed_body_is_refused_naming_the_problem_and_changes_nothing() {
    let w = world().await;
    let body = format!(r#"{{"v":1,"run_id":"{RUN_ID}","name":"hello"}}"#);

    let disposition = w.handle(received(&body, 1)).await;

    let Disposition::Refused { reason } = &disposition else {
        panic!("not refused: {disposition:?}");
    };
    assert!(reason.contains("not a bottle message"), "{reason}");
    assert!(
        reason.contains("sha256") || reason.contains("missing field"),
        "{reason}"
    );
    assert_eq!(w.registry.opens(), 0);
    w.assert_nothing_stored().await;
    assert_eq!(w.ledger.bottle_states().await.unwrap().len(), 0);
    w.assert_run_uncounted().await;
    assert!(w.run().await.failures.is_empty());
    assert_eq!(World::waiting(&w.source).await, (0, 0));
    assert_dead_lettered(&w.dlq, &body).await;
}

#[tokio::test]
async fn a_refused_body_that_names_its_run_is_counted_failed_for_it() {
    let w = world().await;
    // Everything right but a key outside the bottle's mirror name.
    let mut value: serde_json::Value = serde_json::from_str(&w.message.to_body()).unwrap();
    value["key"] = serde_json::json!(format!("{DATE}/other.tar.gz"));
    let body = value.to_string();

    let disposition = w.handle(received(&body, 1)).await;

    let Disposition::Refused { reason } = &disposition else {
        panic!("not refused: {disposition:?}");
    };
    assert!(reason.contains("other.tar.gz"), "{reason}");
    assert_eq!(w.registry.opens(), 0);
    w.assert_nothing_stored().await;
    // Counted, so that the run can still drain.
    let run = w.run().await;
    assert_eq!((run.stored, run.failed), (0, 1));
    assert_eq!(run.failures[0].name, "(invalid message)");
    assert_eq!(run.failures[0].sha256, w.job().sha256.to_string());
    assert_dead_lettered(&w.dlq, &body).await;
}

#[tokio::test]
async fn a_message_of_an_unknown_run_is_refused() {
    let w = world().await;
    let body = BottleMessage::new("no-such-run", w.job().clone()).to_body();

    let disposition = w.handle(received(&body, 1)).await;

    let Disposition::Refused { reason } = &disposition else {
        panic!("not refused: {disposition:?}");
    };
    assert!(
        reason.contains("unknown run id \"no-such-run\""),
        "{reason}"
    );
    assert_eq!(w.registry.opens(), 0);
    w.assert_nothing_stored().await;
    assert_eq!(w.bottle_state().await, None, "no claim taken");
    w.assert_run_uncounted().await;
    assert_dead_lettered(&w.dlq, &body).await;
}

/// The DLQ holds exactly `body`.
async fn assert_dead_lettered(dlq: &MemoryQueue, body: &str) {
    let messages = dlq.receive(10, Duration::ZERO).await.unwrap();
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, vec![body], "the DLQ holds the message");
}
