//! How a fleet run ends, and reports, after the faults real AWS has: an
//! answer lost after its write landed, a worker stopped mid-bottle, a Lambda
//! deadline, a planner that dies between sends, messages that are lost or
//! dead-lettered uncounted. In process (`adapters::wiring::in_process_adapters`: local
//! store, memory ledger and queues) against the Homebrew stand-in, so each
//! scenario is built exactly and runs in seconds; the same code runs on
//! moto in `tests/fleet.rs` and `tests/fleet_faults.rs`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_core::Result;
use bottlesync_core::fleet_config::{FleetConfig, gb_to_bytes};
use bottlesync_core::model::message::BottleMessage;
use bottlesync_core::ports::fleet_ledger::{BottleState, ClaimOutcome, ClaimOwner};
use bottlesync_core::ports::queue::{Queue, QueueDepth, QueueMessage, SendOutcome};
use bottlesync_core::run::manifest::RunManifest;
use bottlesync_core::run::record::{RunRecord, RunState};
use bottlesync_core::shutdown::Shutdown;
use bottlesync_loadtest::{Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use bottlesync_planner::fleet::{FleetPlanOutcome, FleetPlanRequest};
use bottlesync_worker::consumer::{Consumer, Disposition};
use bottlesync_worker::lambda::{Invocation, handle_batch};
use bottlesync_worker::work_loop::{WorkOptions, run_work_loop};
use common::stack::small_catalog;
use common::*;
use tokio_util::sync::CancellationToken;

const MAX_RECEIVES: u32 = 5;
/// Production's claim: far longer than visibility x receives.
const CLAIM: Duration = Duration::from_secs(900);

struct World {
    standin: StandIn,
    _mirror: tempfile::TempDir,
    services: Arc<FleetAdapters>,
}

async fn world(catalog: Catalog) -> World {
    world_with(catalog, |_| {}).await
}

async fn world_with(catalog: Catalog, tweak: impl FnOnce(&mut FleetConfig)) -> World {
    world_with_visibility(catalog, Duration::from_secs(30), tweak).await
}

/// Queues whose messages stay hidden for `visibility` after a receive.
async fn world_with_visibility(
    catalog: Catalog,
    visibility: Duration,
    tweak: impl FnOnce(&mut FleetConfig),
) -> World {
    let standin = StandIn::start(StandInConfig::new(catalog)).await.unwrap();
    let mirror = tempfile::tempdir().unwrap();
    let mut config = FleetConfig::new("in-process", "in-process")
        .with_api_url(standin.api_url().parse().unwrap(), &[]);
    tweak(&mut config);
    let services = Arc::new(
        bottlesync_adapters::wiring::in_process_adapters(
            config,
            mirror.path(),
            visibility,
            MAX_RECEIVES,
        )
        .unwrap(),
    );
    World {
        standin,
        _mirror: mirror,
        services,
    }
}

fn request() -> FleetPlanRequest {
    FleetPlanRequest {
        date: Some(DATE.parse().unwrap()),
        ..FleetPlanRequest::default()
    }
}

fn consumer(services: &Arc<FleetAdapters>) -> Consumer {
    Consumer::new(services.worker(), "worker".into(), Some(MAX_RECEIVES))
        .with_source(services.queues.lambda.clone().unwrap())
        .with_lease(CLAIM)
        .with_retry_base(Duration::from_millis(200))
}

async fn receive_all(queue: &Arc<dyn Queue>) -> Vec<QueueMessage> {
    let mut messages = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return messages;
        }
        messages.extend(batch);
    }
}

/// Workers on both queues until they stay empty.
async fn drain(services: &Arc<FleetAdapters>) {
    for queue in [&services.queues.lambda, &services.queues.ecs]
        .into_iter()
        .flatten()
    {
        let consumer = Arc::new(
            Consumer::new(services.worker(), "drainer".into(), Some(MAX_RECEIVES))
                .with_source(queue.clone())
                .with_lease(CLAIM)
                .with_retry_base(Duration::from_millis(200))
                // A resumed or re-sent run has duplicate messages: the
                // copy that meets the other's claim looks again soon.
                .with_holder_check(Duration::from_secs(2)),
        );
        let options = WorkOptions {
            concurrency: 4,
            drain: Some(Duration::from_millis(500)),
            visibility_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(1),
            poll_wait: Duration::from_millis(200),
            ..WorkOptions::default()
        };
        tokio::time::timeout(
            Duration::from_secs(120),
            run_work_loop(consumer, queue.clone(), options, Shutdown::never()),
        )
        .await
        .expect("the queue drains")
        .unwrap();
    }
}

async fn run_of(services: &FleetAdapters, run_id: &str) -> RunRecord {
    services.ledger.run(run_id).await.unwrap().unwrap()
}

/// Plans a run: its outcome, its id, and the queue its messages went to.
async fn plan(w: &World) -> (FleetPlanOutcome, String, Arc<dyn Queue>) {
    let planned = w
        .services
        .planner()
        .plan_run(&request(), "planner")
        .await
        .unwrap();
    let run_id = planned.run_id.clone().expect("a run was planned");
    let queue = run_queue(&w.services).await;
    (planned, run_id, queue)
}

/// The queue the planner sent the run to (by size).
async fn run_queue(services: &FleetAdapters) -> Arc<dyn Queue> {
    for queue in [&services.queues.ecs, &services.queues.lambda]
        .into_iter()
        .flatten()
    {
        if !queue.depth().await.unwrap().is_empty() {
            return queue.clone();
        }
    }
    panic!("no queue holds the run's messages")
}

fn one_bottle() -> Catalog {
    Catalog::from_formulae(vec![
        FormulaSpec::new("one", "1.0").bottle("arm64_tahoe", 50_000),
    ])
}

fn sha_of(message: &QueueMessage) -> bottlesync_core::Sha256Digest {
    serde_json::from_str::<BottleMessage>(&message.body)
        .unwrap()
        .job
        .sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_was_lost_is_taken_over_by_the_next_receive() {
    let w = world(one_bottle()).await;
    let (_, run_id, queue) = plan(&w).await;
    let first = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    let sha = sha_of(&first);
    // The first receive's claim landed, but its worker never heard back
    // (then died, or gave the message back): the claim is held for 900 s.
    let lost = ClaimOwner::new(first.message_id.as_str(), 1, "w1/0").token();
    assert_eq!(
        w.services
            .ledger
            .claim(&sha, &run_id, &lost, CLAIM)
            .await
            .unwrap(),
        ClaimOutcome::Granted
    );
    queue
        .set_visibility(&first.receipt, Duration::ZERO)
        .await
        .unwrap();
    let again = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    assert_eq!(
        (again.message_id.as_str(), again.receive_count),
        (first.message_id.as_str(), 2)
    );
    // Before: "claimed by another attempt: leaving it for later" until the
    // receives ran out and SQS dead-lettered the bottle uncounted.
    let disposition = consumer(&w.services)
        .handle(&again, &CancellationToken::new())
        .await;
    assert!(
        matches!(disposition, Disposition::Stored { .. }),
        "{disposition:?}"
    );
    assert_eq!(run_of(&w.services, &run_id).await.stored, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_copy_of_a_claimed_bottle_waits_for_the_claim_without_burning_receives() {
    let w = world(small_catalog()).await;
    let planned = w
        .services
        .planner()
        .plan_run(&request(), "planner")
        .await
        .unwrap();
    let run_id = planned.run_id.unwrap();
    let queue = w.services.queues.lambda.clone().unwrap();
    let message = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    let sha = sha_of(&message);
    // A worker that handled another copy of the message died holding the
    // claim; its lease has 3 s to go.
    let holder = ClaimOwner::new("another-copy", 1, "dead/0").token();
    w.services
        .ledger
        .claim(&sha, &run_id, &holder, Duration::from_secs(3))
        .await
        .unwrap();
    let disposition = consumer(&w.services)
        .handle(&message, &CancellationToken::new())
        .await;
    // A fresh copy replaces it, due when the claim can have expired; before,
    // the message was hidden for at most 60 s per receive, so a 900 s claim
    // used up every receive and SQS dead-lettered the bottle uncounted.
    assert!(
        matches!(disposition, Disposition::Requeued { .. }),
        "{disposition:?}"
    );
    queue.delete(&message.receipt).await.unwrap(); // what the shells do
    let others: BTreeSet<_> = receive_all(&queue)
        .await
        .iter()
        .map(|m| {
            queue_release(&queue, m);
            m.message_id.clone()
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let visible_now: Vec<_> = receive_all(&queue).await;
    assert!(
        visible_now.iter().all(|m| others.contains(&m.message_id)),
        "the fresh copy must stay hidden while the claim lives"
    );
    for m in &visible_now {
        queue_release(&queue, m);
    }
    drain(&w.services).await;
    let run = run_of(&w.services, &run_id).await;
    assert_eq!((run.stored, run.failed), (planned.enqueued, 0), "{run:?}");
    assert_eq!(run.state, RunState::Finished);
}

fn queue_release(queue: &Arc<dyn Queue>, message: &QueueMessage) {
    let queue = queue.clone();
    let receipt = message.receipt.clone();
    tokio::spawn(async move { queue.set_visibility(&receipt, Duration::ZERO).await });
}

fn slow_catalog() -> Catalog {
    Catalog::from_formulae(vec![
        FormulaSpec::new("big", "1.0").bottle("arm64_tahoe", 16 * 1024 * 1024),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_aborts_its_download_and_releases_its_claim() {
    let w = world(slow_catalog()).await;
    let big = w.standin.bottle("big", "arm64_tahoe").unwrap();
    w.standin.set_fault(
        &big.sha256,
        Fault::Slow {
            bytes_per_sec: 1024 * 1024,
        },
    );
    w.services
        .planner()
        .plan_run(&request(), "planner")
        .await
        .unwrap();
    let queue = run_queue(&w.services).await;
    let message = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        let standin_bytes = move || w.standin.stats().bottle(&big.sha256).bytes_served;
        async move {
            while standin_bytes() < 1024 * 1024 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cancel.cancel(); // SIGTERM's grace is over
        }
    };
    let consumer = consumer(&w.services);
    let (disposition, ()) = tokio::join!(consumer.handle(&message, &cancel), stopper);
    // Before: the token was only looked at between retries, so the 16 MiB
    // download ran to its end (and was stored) long after the stop.
    assert_eq!(
        disposition,
        Disposition::Retry {
            reason: "cancelled: the worker is stopping".into(),
            delay: Duration::ZERO,
        }
    );
    match w
        .services
        .ledger
        .bottle_state(&bottlesync_core::Sha256Digest::parse(&big_sha(&message)).unwrap())
        .await
        .unwrap()
    {
        Some(BottleState::Claimed { lease_expires, .. }) => {
            assert!(lease_expires < chrono::Utc::now(), "the claim is released")
        }
        other => panic!("expected a released claim, got {other:?}"),
    }
    let stored = w.services.store.list(DATE).await.unwrap();
    assert!(stored.is_empty(), "nothing at a final name: {stored:?}");
}

fn big_sha(message: &QueueMessage) -> String {
    sha_of(message).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bottle_that_cannot_finish_before_the_lambda_deadline_goes_to_ecs() {
    let w = world_with(slow_catalog(), |args| {
        // Small enough for Lambda by size; too slow for it in fact.
        args.lambda_max_bottle_bytes = gb_to_bytes(1.0);
        args.size_threshold_bytes = gb_to_bytes(1.0);
    })
    .await;
    let big = w.standin.bottle("big", "arm64_tahoe").unwrap();
    w.standin.set_fault(
        &big.sha256,
        Fault::Slow {
            bytes_per_sec: 1024 * 1024,
        },
    );
    let planned = w
        .services
        .planner()
        .plan_run(&request(), "planner")
        .await
        .unwrap();
    assert_eq!(planned.to_ecs, 0);
    let lambda_queue = w.services.queues.lambda.clone().unwrap();
    let message = lambda_queue
        .receive(1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    let invocation = Invocation {
        deadline: Some(tokio::time::Instant::now() + Duration::from_secs(3)),
        margin: Duration::from_secs(1),
    };
    let retry = handle_batch(
        Arc::new(consumer(&w.services)),
        vec![message.clone()],
        invocation,
    )
    .await;
    // Acknowledged: Lambda deletes it, and the bottle carries on in ECS.
    assert!(retry.is_empty());
    let handed: Vec<QueueMessage> = receive_all(w.services.queues.ecs.as_ref().unwrap()).await;
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].body, message.body);
    assert!(w.services.store.list(DATE).await.unwrap().is_empty());
    let sha = sha_of(&message);
    assert!(matches!(
        w.services.ledger.bottle_state(&sha).await.unwrap(),
        Some(BottleState::Claimed { lease_expires, .. }) if lease_expires < chrono::Utc::now()
    ));
    // The ECS worker finishes it, and the run.
    w.standin.clear_faults();
    lambda_queue.delete(&message.receipt).await.unwrap();
    for m in &handed {
        queue_release(w.services.queues.ecs.as_ref().unwrap(), m);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain(&w.services).await;
    let run = run_of(&w.services, planned.run_id.as_deref().unwrap()).await;
    assert_eq!((run.stored, run.state), (1, RunState::Finished));
}

/// Fails on the old worker Lambda, which applied only explicit delays: the
/// claim whose answer was lost became a retry without one, so the message
/// stayed hidden for the queue's visibility timeout (on AWS 6 x the
/// function timeout, 90 minutes; 900 s here) instead of the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_lambda_a_transient_error_is_retried_after_its_backoff() {
    let w = world_with_visibility(one_bottle(), Duration::from_secs(900), |_| {}).await;
    let ledger = Arc::new(bottlesync_adapters::local::memory_ledger::MemoryLedger::new());
    let mut services = (*w.services).clone();
    services.ledger = ledger.clone();
    let services = Arc::new(services);
    let planned = services
        .planner()
        .plan_run(&request(), "planner")
        .await
        .unwrap();
    let lambda_queue = services.queues.lambda.clone().unwrap();
    let message = lambda_queue
        .receive(1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    ledger.lose_next_claim_answers(1);
    let retry = handle_batch(
        Arc::new(consumer(&services)),
        vec![message.clone()],
        Invocation::unlimited(),
    )
    .await;
    assert_eq!(
        retry,
        [message.message_id.as_str()],
        "retried, not acknowledged"
    );
    // Back after the backoff (200 ms base, first receive: at most 250 ms), not 900 s.
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let got = lambda_queue.receive(1, Duration::ZERO).await.unwrap();
            if let Some(m) = got.into_iter().next() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the message is visible again within its backoff");
    assert_eq!(again.body, message.body);
    assert_eq!(again.receive_count, 2);
    // The next attempt takes the claim over and stores the bottle.
    let retry = handle_batch(
        Arc::new(consumer(&services)),
        vec![again],
        Invocation::unlimited(),
    )
    .await;
    assert!(retry.is_empty());
    let run = run_of(&services, planned.run_id.as_deref().unwrap()).await;
    assert_eq!(run.stored, 1);
}

/// A queue around a real one whose sends go wrong as a planner meets it:
/// with `die_after`, it forwards that many bodies of the first send, then
/// never answers (a planner killed between sends); the first `lose_answers`
/// sends land and are then answered with an error (a SendMessageBatch whose
/// answer was lost after SQS took it).
struct SendFaults {
    inner: Arc<dyn Queue>,
    die_after: Option<usize>,
    lose_answers: std::sync::atomic::AtomicUsize,
}

impl SendFaults {
    fn dies_after(inner: Arc<dyn Queue>, pass: usize) -> Self {
        SendFaults {
            inner,
            die_after: Some(pass),
            lose_answers: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn loses_answers(inner: Arc<dyn Queue>, sends: usize) -> Self {
        SendFaults {
            inner,
            die_after: None,
            lose_answers: std::sync::atomic::AtomicUsize::new(sends),
        }
    }
}

#[async_trait]
impl Queue for SendFaults {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn send_each(&self, mut bodies: Vec<String>) -> SendOutcome {
        if let Some(pass) = self.die_after {
            bodies.truncate(pass);
            let outcome = self.inner.send_each(bodies).await;
            assert!(outcome.error.is_none(), "the inner queue sends");
            return std::future::pending().await;
        }
        let count = bodies.len();
        let outcome = self.inner.send_each(bodies).await;
        let lost = self
            .lose_answers
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if lost {
            return SendOutcome::none_of(
                count,
                bottlesync_core::Error::queue(
                    self.name(),
                    "SendMessageBatch: the answer was lost after the messages landed (injected)",
                ),
            );
        }
        outcome
    }
    async fn send_delayed(&self, body: String, delay: Duration) -> Result<()> {
        self.inner.send_delayed(body, delay).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>> {
        self.inner.receive(max, wait).await
    }
    async fn delete(&self, receipt: &str) -> Result<()> {
        self.inner.delete(receipt).await
    }
    async fn set_visibility(&self, receipt: &str, timeout: Duration) -> Result<()> {
        self.inner.set_visibility(receipt, timeout).await
    }
    async fn depth(&self) -> Result<QueueDepth> {
        self.inner.depth().await
    }
    async fn max_receive_count(&self) -> Result<Option<u32>> {
        self.inner.max_receive_count().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planner_killed_between_sends_is_resumed_by_its_rerun() {
    let w = world_with(small_catalog(), |args| {
        args.planning_lease = Duration::from_secs(1);
        args.size_threshold_bytes = gb_to_bytes(1000.0);
    })
    .await;
    let mut dying = (*w.services).clone();
    dying.queues.lambda = Some(Arc::new(SendFaults::dies_after(
        w.services.queues.lambda.clone().unwrap(),
        3,
    )));
    let dying = Arc::new(dying);
    let planner = tokio::spawn(async move { dying.planner().plan_run(&request(), "p1").await });
    let queue = w.services.queues.lambda.clone().unwrap();
    while queue.depth().await.unwrap().visible < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    planner.abort(); // killed: no cleanup
    let run = w.services.ledger.latest_run().await.unwrap().unwrap();
    assert!(!run.sealed, "killed before sealing");

    // The rerun (Lambda's async retry) resumes the run it left.
    let rerun = w
        .services
        .planner()
        .plan_run(&request(), "p2")
        .await
        .unwrap();
    assert_eq!(
        rerun.run_id, None,
        "every bottle belongs to the resumed run"
    );
    let resumed = run_of(&w.services, &run.run_id).await;
    assert!(resumed.sealed);
    drain(&w.services).await;
    let finished = run_of(&w.services, &run.run_id).await;
    let expected = expected_bottles(&w.standin, &AUTO_TAGS, false).len() as u64;
    assert_eq!(
        (finished.expected, finished.stored, finished.failed),
        (expected, expected, 0),
        "{finished:?}"
    );
    assert_eq!(finished.state, RunState::Finished);
    assert!(finished.summary_sent);
}

/// Issue 19, scenario 6. Fails on the old planner: a chunk whose every
/// SendMessageBatch answer was lost (the messages landed) was taken as
/// unsent and left out of the run, whose `expected` then fell short of
/// what its workers counted. Now such a chunk stays in the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_answers_were_lost_stays_in_the_run() {
    let w = world_with(small_catalog(), |args| {
        args.size_threshold_bytes = gb_to_bytes(1000.0);
    })
    .await;
    let mut lossy = (*w.services).clone();
    // Every attempt at the one chunk of this small run.
    lossy.queues.lambda = Some(Arc::new(SendFaults::loses_answers(
        w.services.queues.lambda.clone().unwrap(),
        3,
    )));
    let planned = lossy
        .planner()
        .plan_run(&request(), "planner")
        .await
        .unwrap();
    let wanted = expected_bottles(&w.standin, &AUTO_TAGS, false).len() as u64;
    assert_eq!(planned.unsent, wanted, "no send was confirmed");
    assert_eq!(planned.enqueued, wanted, "{planned:?}");
    let run_id = planned.run_id.clone().unwrap();
    let run = run_of(&w.services, &run_id).await;
    assert_eq!(
        run.expected, wanted,
        "the unconfirmed chunk stays in the run"
    );
    drain(&w.services).await;
    let run = run_of(&w.services, &run_id).await;
    assert_eq!(
        (run.expected, run.stored, run.done(), run.state),
        (wanted, wanted, wanted, RunState::Finished),
        "{run:?}"
    );
}

/// Fails on the old planner: a second plan while the first run drained
/// (the planner Lambda's async retry, a duplicate EventBridge event, a
/// manual `plan`) found nothing to do and published the API files at once,
/// naming every bottle still in flight, which clients then got 404s for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_plan_while_a_run_drains_publishes_nothing_early() {
    let w = world(small_catalog()).await;
    let (first, run_id, _queue) = plan(&w).await;
    assert!(first.enqueued > 0);
    let again = w
        .services
        .planner()
        .plan_run(&request(), "planner-retry")
        .await
        .unwrap();
    assert_eq!(again.run_id, None, "nothing to do: all in flight");
    assert_eq!(again.in_flight as u64, first.enqueued);
    let published = w.services.store.list("api").await.unwrap();
    assert!(
        published.is_empty(),
        "API files published while their bottles are in flight: {published:?}"
    );
    // The run's finisher publishes them once its bottles are in.
    drain(&w.services).await;
    let run = run_of(&w.services, &run_id).await;
    assert_eq!(run.state, RunState::Finished);
    let published = w.services.store.list("api").await.unwrap();
    assert!(
        !published.is_empty(),
        "the finisher published the API files"
    );
    let report = bottlesync_core::run::publication::kept_result(w.services.store.as_ref(), &run_id)
        .await
        .unwrap()
        .expect("the run's finisher published");
    assert!(report.missing.is_empty(), "{:?}", report.missing);
}

/// Works every message of `run_id` in the queue (stored or skipped, then
/// deleted, as the work loop would), and leaves the others for later.
async fn work_run_only(w: &World, queue: &Arc<dyn Queue>, run_id: &str) {
    let consumer = consumer(&w.services);
    for message in receive_all(queue).await {
        let parsed = BottleMessage::parse(&message.body, &w.services.config.hosts).unwrap();
        if parsed.run_id != run_id {
            queue
                .set_visibility(&message.receipt, Duration::ZERO)
                .await
                .unwrap();
            continue;
        }
        let done = consumer.handle(&message, &CancellationToken::new()).await;
        assert!(
            matches!(done, Disposition::Stored { .. } | Disposition::Skipped),
            "{done:?}"
        );
        queue.delete(&message.receipt).await.unwrap();
    }
}

/// Fails on the old finisher, which published its own run's staged files
/// at once: run B (planned second, with the whole index) finished first
/// and published files naming run A's bottles still in flight (404s for
/// clients); then A finished and put its older files (one formula's
/// scope) back over B's. Now B leaves publication to A, the last run in
/// flight, which publishes the newest files (B's), and `verify` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_run_to_finish_publishes_the_newest_api_files() {
    let w = world_with(small_catalog(), |args| {
        args.size_threshold_bytes = gb_to_bytes(1000.0);
    })
    .await;
    let store = w.services.store.as_ref();
    let only_curl = FleetPlanRequest {
        formulae: vec!["curl".into()],
        ..request()
    };
    let a = w
        .services
        .planner()
        .plan_run(&only_curl, "planner-a")
        .await
        .unwrap();
    let run_a = a.run_id.clone().expect("run A planned");
    let b = w
        .services
        .planner()
        .plan_run(&request(), "planner-b")
        .await
        .unwrap();
    let run_b = b.run_id.clone().expect("run B planned");
    assert!(a.enqueued > 0 && b.enqueued > 0 && b.in_flight as u64 >= a.enqueued);
    let queue = w.services.queues.lambda.clone().unwrap();

    work_run_only(&w, &queue, &run_b).await;
    assert_eq!(run_of(&w.services, &run_b).await.state, RunState::Finished);
    let published = store.list("api").await.unwrap();
    assert!(
        published.is_empty(),
        "run B published while run A's bottles were in flight: {published:?}"
    );

    work_run_only(&w, &queue, &run_a).await;
    assert_eq!(run_of(&w.services, &run_a).await.state, RunState::Finished);
    let record = bottlesync_core::brew::publish::PublishedRecord::read(store)
        .await
        .unwrap()
        .expect("the last finisher published");
    assert_eq!(
        record.scope.formulae,
        Vec::<String>::new(),
        "run A's older files (curl only) replaced run B's (all formulae)"
    );
    let kept = bottlesync_core::run::publication::kept_result(store, &run_a)
        .await
        .unwrap()
        .expect("run A's finisher published");
    assert_eq!(kept.source_run.as_deref(), Some(run_b.as_str()));
    assert!(kept.missing.is_empty(), "{:?}", kept.missing);
    let verified = bottlesync_core::brew::verify::verify(store).await.unwrap();
    assert!(verified.complete(), "{verified:?}");
}

/// Fails on the old planner, which dated the planning lease from before
/// `prepare`: with sizing slower than the lease (1.5 s per manifest here, a
/// full mirror's thousands against GitHub's registry), the run was born
/// with its lease run out, and a reconcile while the planner was still
/// sending resumed it. Now the lease starts when the run opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_plan_opens_its_run_with_a_live_planning_lease() {
    let w = world_with(small_catalog(), |args| {
        args.planning_lease = Duration::from_secs(1);
        args.size_threshold_bytes = gb_to_bytes(1000.0);
    })
    .await;
    w.standin.set_manifest_delay(Duration::from_millis(1500));
    let mut stuck = (*w.services).clone();
    stuck.queues.lambda = Some(Arc::new(SendFaults::dies_after(
        w.services.queues.lambda.clone().unwrap(),
        0,
    )));
    let stuck = Arc::new(stuck);
    let started = std::time::Instant::now();
    let planner = tokio::spawn(async move { stuck.planner().plan_run(&request(), "p1").await });
    let run = loop {
        if let Some(run) = w.services.ledger.latest_run().await.unwrap() {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "planning took longer than the lease"
    );
    // The planner is sending (stuck in its first send, well within its lease).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = w
        .services
        .reconciler()
        .reconcile("reconcile")
        .await
        .unwrap();
    let verdict = report
        .runs
        .iter()
        .find(|r| r.run_id == run.run_id)
        .map(|r| r.verdict.clone());
    assert_eq!(verdict.as_deref(), Some("planning"), "{report:?}");
    assert!(!run_of(&w.services, &run.run_id).await.sealed);
    planner.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_run_resends_lost_messages_once_then_counts_them_lost() {
    let w = world_with(small_catalog(), |args| {
        args.run_stall = Duration::from_secs_f64(0.06);
    })
    .await;
    let (planned, run_id, queue) = plan(&w).await;
    // Two messages vanish uncounted (a crash between receive and count
    // that lost the message too).
    let lost: Vec<QueueMessage> = queue.receive(2, Duration::ZERO).await.unwrap();
    for message in &lost {
        queue.delete(&message.receipt).await.unwrap();
    }
    drain(&w.services).await;
    let stuck = run_of(&w.services, &run_id).await;
    assert_eq!(stuck.done(), planned.enqueued - 2);
    assert_eq!(
        stuck.state,
        RunState::Running,
        "before: it stayed so forever"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    // First pass: sent again, once.
    let report = w
        .services
        .reconciler()
        .reconcile("reconcile-1")
        .await
        .unwrap();
    let pass = &report.runs[0];
    assert_eq!(
        (pass.verdict.as_str(), pass.resent),
        ("stalled", 2),
        "{report:?}"
    );
    let resent = receive_all(&queue).await;
    assert_eq!(resent.len(), 2);
    // ... and lost again.
    for message in &resent {
        queue.delete(&message.receipt).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Second pass: nothing left that could deliver them: failed, "lost".
    let report = w
        .services
        .reconciler()
        .reconcile("reconcile-2")
        .await
        .unwrap();
    let pass = &report.runs[0];
    assert_eq!((pass.lost, pass.finished), (2, true), "{report:?}");
    let run = run_of(&w.services, &run_id).await;
    assert_eq!(run.state, RunState::Finished);
    assert!(run.summary_sent);
    assert_eq!(run.failed, 2);
    assert!(run.failures.iter().all(|f| f.reason.starts_with("lost")));
    let lost_shas: BTreeSet<String> = lost.iter().map(big_sha).collect();
    assert_eq!(
        run.failures
            .iter()
            .map(|f| f.sha256.clone())
            .collect::<BTreeSet<_>>(),
        lost_shas
    );
    let store = w.services.store.clone();
    let manifest = || RunManifest::read(store.as_ref(), &run_id);
    assert!(manifest().await.unwrap().is_some());
    // A third pass closes the reported run, and deletes its manifest.
    let report = w
        .services
        .reconciler()
        .reconcile("reconcile-3")
        .await
        .unwrap();
    assert_eq!(report.runs[0].verdict, "closed");
    assert!(w.services.ledger.open_runs().await.unwrap().is_empty());
    assert!(
        manifest().await.unwrap().is_none(),
        "a closed run's manifest is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bottle_dead_lettered_uncounted_is_counted_failed_by_the_reconcile() {
    let w = world_with(small_catalog(), |args| {
        args.run_stall = Duration::from_secs_f64(0.06);
    })
    .await;
    let (_, run_id, queue) = plan(&w).await;
    // SQS moved it to the DLQ before any worker counted it.
    let dead = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    w.services
        .dlq
        .as_ref()
        .unwrap()
        .send_all(vec![dead.body.clone()])
        .await
        .unwrap();
    queue.delete(&dead.receipt).await.unwrap();
    drain(&w.services).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = w
        .services
        .reconciler()
        .reconcile("reconcile-1")
        .await
        .unwrap();
    let pass = &report.runs[0];
    assert_eq!(
        (pass.dead_lettered, pass.resent, pass.finished),
        (1, 0, true),
        "{report:?}"
    );
    let run = run_of(&w.services, &run_id).await;
    assert_eq!((run.failed, run.state), (1, RunState::Finished));
    assert!(
        run.failures[0].reason.starts_with("dead-lettered"),
        "{run:?}"
    );
    // It stays in the DLQ, for a replay.
    assert_eq!(
        w.services
            .dlq
            .as_ref()
            .unwrap()
            .depth()
            .await
            .unwrap()
            .visible,
        1
    );
}
