//! How a fleet run ends, under the faults of the services around it: the
//! summary through a Slack outage, `Retry-After` and a slow finisher; DLQ
//! replays of duplicate dead letters and of letters that cannot be sent or
//! deleted; a registry token expiring mid-run. In process (memory ledger and
//! queues, local store: `adapters::wiring::in_process_adapters`) with the Homebrew and
//! Slack stand-ins; the DynamoDB side of the ledger methods is in
//! `adapters/tests/fleet_ledger.rs`, the SQS side of the replay in
//! `tests/operations.rs`.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottlesync_adapters::http::slack::SlackWebhook;
use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_core::Sha256Digest;
use bottlesync_core::error::{Error, Result};
use bottlesync_core::fleet_config::{FleetConfig, SlackSource};
use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::fleet_ledger::BottleState;
use bottlesync_core::ports::notifier::{Notification, Notifier};
use bottlesync_core::ports::queue::{Queue, QueueDepth, QueueMessage, SendOutcome};
use bottlesync_core::retry::RetryPolicy;
use bottlesync_core::run::finish::FinishOutcome;
use bottlesync_core::run::manifest::RunManifest;
use bottlesync_core::run::messages::TITLE_COMPLETE;
use bottlesync_core::run::record::new_run_id;
use bottlesync_core::run::record::{RunRecord, RunState};
use bottlesync_loadtest::webhook::WebhookReceiver;
use bottlesync_loadtest::{StandIn, StandInConfig};
use bottlesync_planner::fleet::FleetPlanRequest;
use bottlesync_worker::consumer::{Consumer, Disposition};
use chrono::Utc;
use common::stack::small_catalog;
use common::*;
use tokio_util::sync::CancellationToken;

/// Quick retries: the tests wait for outcomes, not for backoff.
fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(5),
    }
}

struct Fleet {
    services: Arc<FleetAdapters>,
    hook: WebhookReceiver,
    _mirror: tempfile::TempDir,
}

/// In-process services posting to a Slack stand-in with quick retries.
async fn fleet(api_url: Option<String>) -> Fleet {
    fleet_with(api_url, |_| {}).await
}

async fn fleet_with(api_url: Option<String>, tweak: impl FnOnce(&mut FleetConfig)) -> Fleet {
    let hook = WebhookReceiver::start().await.unwrap();
    let mirror = tempfile::tempdir().unwrap();
    let mut config = FleetConfig::new("in-process", "in-process");
    if let Some(api_url) = api_url {
        config = config.with_api_url(api_url.parse().unwrap(), &[]);
    }
    config.slack = SlackSource::Url(hook.url());
    tweak(&mut config);
    let mut services = bottlesync_adapters::wiring::in_process_adapters(
        config,
        mirror.path(),
        Duration::from_secs(30),
        5,
    )
    .unwrap();
    services.notifier = Arc::new(SlackWebhook::new(&hook.url(), fast_retries()).unwrap());
    Fleet {
        services: Arc::new(services),
        hook,
        _mirror: mirror,
    }
}

fn sha(n: u32) -> Sha256Digest {
    Sha256Digest::parse(&format!("{n:064x}")).unwrap()
}

/// A new run of `bottles` bottles, sealed (none counted yet).
async fn sealed_run(services: &FleetAdapters, run_id: &str, bottles: u32) {
    let run = RunRecord::new(run_id, DATE, bottles as u64, 0, Route::Lambda, Utc::now());
    services.ledger.create_run(&run).await.unwrap();
    services
        .ledger
        .seal_run(run_id, bottles as u64)
        .await
        .unwrap();
}

/// A sealed run of `bottles` bottles, all counted: due to finish.
async fn drained_run(services: &FleetAdapters, run_id: &str, bottles: u32) {
    sealed_run(services, run_id, bottles).await;
    for n in 0..bottles {
        services
            .ledger
            .count_skipped(run_id, &sha(n))
            .await
            .unwrap();
    }
}

async fn run_of(services: &FleetAdapters, run_id: &str) -> RunRecord {
    services.ledger.run(run_id).await.unwrap().unwrap()
}

/// Summaries of `run_id` that reached Slack.
fn summaries_of(hook: &WebhookReceiver, run_id: &str) -> Vec<String> {
    hook.messages()
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .filter(|text| text.contains(&format!("Run: {run_id}")))
        .collect()
}

/// Fails on the old drain (it marked the summary sent whatever Slack said:
/// after the first call the run was `Finished` and no summary had arrived).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_outage_keeps_the_summary_until_slack_accepts_it() {
    let fleet = fleet(None).await;
    let services = &fleet.services;
    drained_run(services, "r1", 2).await;
    // Slack answers 500 to ten posts: each call posts four times (one try
    // and three retries), so two calls fail and the third gets through.
    fleet.hook.fail_next_with(10, 500, None);
    for call in 1..=2 {
        let outcome = services
            .finisher()
            .finish_if_due("r1", &format!("caller-{call}"))
            .await
            .unwrap();
        assert!(
            matches!(&outcome, FinishOutcome::SummaryPending { problem } if problem.contains("500")),
            "call {call}: {outcome:?}"
        );
        let run = run_of(services, "r1").await;
        assert_eq!(run.state, RunState::Finishing, "call {call}");
        assert!(!run.summary_sent && run.summary_pending(), "call {call}");
        assert_eq!(run.summary_attempts, call);
        assert!(
            run.summary_error.as_deref().unwrap_or("").contains("500"),
            "{run:?}"
        );
        assert!(run.compacted, "compacted once, before the first post");
        assert!(fleet.hook.messages().is_empty());
        // What `bottlesync status --json` shows meanwhile.
        let status = bottlesync_core::run::status::status(&services.reconciler())
            .await
            .unwrap();
        let status = serde_json::to_value(status).unwrap();
        assert_eq!(status["run"]["state"], "finishing");
        assert_eq!(status["run"]["summary_sent"], false);
        assert_eq!(status["run"]["summary_attempts"], call);
        assert!(
            status["run"]["summary_error"]
                .as_str()
                .is_some_and(|e| e.contains("500")),
            "{status:#}"
        );
    }
    let outcome = services
        .finisher()
        .finish_if_due("r1", "caller-3")
        .await
        .unwrap();
    assert_eq!(
        outcome,
        FinishOutcome::Finished {
            summary_posted: true
        }
    );
    assert_eq!(fleet.hook.failures_left(), 0);
    assert_eq!(fleet.hook.titles(), [TITLE_COMPLETE]);
    let run = run_of(services, "r1").await;
    assert_eq!(run.state, RunState::Finished);
    assert!(run.summary_sent && !run.summary_pending());
    // Anyone else calling afterwards changes nothing and posts nothing.
    for caller in ["reconcile", "planner", "compact"] {
        assert_eq!(
            services
                .finisher()
                .finish_if_due("r1", caller)
                .await
                .unwrap(),
            FinishOutcome::NotMine
        );
    }
    assert_eq!(summaries_of(&fleet.hook, "r1").len(), 1);
    let attempts: Vec<u16> = fleet.hook.attempts().iter().map(|a| a.status).collect();
    assert_eq!(attempts.iter().filter(|s| **s == 500).count(), 10);
    assert_eq!(attempts.last(), Some(&200));
}

/// A finisher whose work outlasts its lease (here a Slack that takes 5 s to
/// answer, with a 2 s lease, renewed every 0.67 s) keeps it by renewing,
/// while another caller tries to take over all along: one summary. Fails
/// on the old drain, which never renewed: the second caller took over after
/// one lease and posted a second summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_finisher_keeps_its_lease_and_one_summary_goes_out() {
    let fleet = fleet(None).await;
    let services = fleet.services.clone();
    drained_run(&services, "r1", 3).await;
    fleet.hook.set_delay(Duration::from_secs(5));
    let lease = Duration::from_secs(2);
    let first = {
        let services = services.clone();
        tokio::spawn(async move {
            services
                .finisher()
                .finish_with_lease("r1", "first", lease)
                .await
        })
    };
    while run_of(&services, "r1").await.state != RunState::Finishing {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut second = Vec::new();
    while !first.is_finished() {
        second.push(
            services
                .finisher()
                .finish_with_lease("r1", "second", lease)
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        first.await.unwrap().unwrap(),
        FinishOutcome::Finished {
            summary_posted: true
        }
    );
    assert!(second.len() > 3, "the second caller kept trying");
    assert!(
        second.iter().all(|o| *o == FinishOutcome::NotMine),
        "{second:?}"
    );
    assert_eq!(fleet.hook.titles(), [TITLE_COMPLETE]);
    assert_eq!(run_of(&services, "r1").await.state, RunState::Finished);
}

fn notification() -> Notification {
    Notification {
        text: "title\nbody".into(),
        blocks: serde_json::json!([]),
    }
}

/// Fails on the old notifier, which retried after its own backoff (10 ms
/// here) whatever `Retry-After` said, and retried a long one early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_retry_after_is_honoured_and_a_longer_one_is_not_cut_short() {
    let hook = WebhookReceiver::start().await.unwrap();
    let slack = SlackWebhook::new(&hook.url(), fast_retries()).unwrap();
    let gap = |attempts: &[bottlesync_loadtest::webhook::Attempt], i: usize| {
        attempts[i + 1].at.duration_since(attempts[i].at)
    };

    hook.fail_next_with(1, 429, Some(1));
    slack.notify(&notification()).await.unwrap();
    let attempts = hook.attempts();
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert!(gap(&attempts, 0) >= Duration::from_secs(1), "{attempts:?}");

    // A 503 with Retry-After too.
    hook.fail_next_with(1, 503, Some(1));
    slack.notify(&notification()).await.unwrap();
    let attempts = hook.attempts();
    assert_eq!(attempts.len(), 4);
    assert!(gap(&attempts, 2) >= Duration::from_secs(1), "{attempts:?}");

    // Longer than this post may wait (5 s): it gives up at once instead of
    // asking again early; the drain posts the summary again later.
    hook.fail_next_with(3, 429, Some(60));
    let err = slack.notify(&notification()).await.unwrap_err();
    assert!(err.to_string().contains("429"), "{err}");
    assert_eq!(hook.attempts().len(), 5, "one post, no early retry");
    assert_eq!(hook.messages().len(), 2);
}

/// Plans a run on the stand-in's catalog and takes every message of it
/// out of the work queues (deleted): what the test does with them is up to it.
async fn planned_messages(services: &Arc<FleetAdapters>) -> Vec<QueueMessage> {
    let request = FleetPlanRequest {
        date: Some(DATE.parse().unwrap()),
        ..FleetPlanRequest::default()
    };
    let planned = services
        .planner()
        .plan_run(&request, "planner")
        .await
        .unwrap();
    let mut messages = Vec::new();
    for queue in [&services.queues.lambda, &services.queues.ecs] {
        let queue = queue.as_ref().unwrap();
        loop {
            let batch = queue.receive(10, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for message in &batch {
                queue.delete(&message.receipt).await.unwrap();
            }
            messages.extend(batch);
        }
    }
    assert_eq!(messages.len() as u64, planned.enqueued);
    messages
}

/// Runs every message in the work queues through a consumer until they
/// are empty, then gives `run_id` its chance to finish.
async fn work_everything(services: &Arc<FleetAdapters>, run_id: &str) -> Vec<Disposition> {
    let consumer = Consumer::new(services.worker(), "worker".into(), Some(5));
    let cancel = CancellationToken::new();
    let mut dispositions = Vec::new();
    for queue in [&services.queues.lambda, &services.queues.ecs] {
        let queue = queue.as_ref().unwrap();
        loop {
            let batch = queue.receive(10, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for message in &batch {
                let disposition = consumer.handle(message, &cancel).await;
                if disposition.acknowledges() {
                    queue.delete(&message.receipt).await.unwrap();
                }
                dispositions.push(disposition);
            }
        }
    }
    services
        .finisher()
        .finish_if_due(run_id, "worker")
        .await
        .unwrap();
    dispositions
}

/// A replay routes as the planner does (`route_for`) and, like the
/// planner, refuses a route whose queue is not configured: the error names
/// the setting and nothing changes (no run, the letter back in the DLQ).
/// Fails on the old replay: with no Lambda queue it silently sent the
/// small bottle to the ECS queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_without_the_lambda_queue_names_the_setting_and_changes_nothing() {
    let standin = StandIn::start(StandInConfig::new(small_catalog()))
        .await
        .unwrap();
    let mut fleet = fleet(Some(standin.api_url())).await;
    let messages = planned_messages(&fleet.services).await;
    let services = Arc::get_mut(&mut fleet.services).unwrap();
    let dead = services.dlq.clone().unwrap();
    dead.send_all(vec![messages[0].body.clone()]).await.unwrap();
    services.queues.lambda = None;
    let services = fleet.services.clone();

    let run_id = new_run_id();
    let err = services
        .replayer()
        .replay(10, false, run_id.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("BOTTLESYNC_QUEUE_URL"), "{err}");
    assert_eq!(dead.depth().await.unwrap().visible, 1, "the letter is back");
    let large = services.queues.ecs.as_ref().unwrap();
    assert_eq!(large.depth().await.unwrap(), QueueDepth::default());
    assert!(services.ledger.run(&run_id).await.unwrap().is_none());
}

/// Two dead copies of one bottle (a re-plan of a broken bottle, a lost
/// ack) are one bottle of the replay run. Fails on the old replay: it sent
/// both, expected 2, the ledger counted 1, and the run never drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dead_copies_of_one_bottle_replay_as_one_bottle_with_one_summary() {
    let standin = StandIn::start(StandInConfig::new(small_catalog()))
        .await
        .unwrap();
    let fleet = fleet(Some(standin.api_url())).await;
    let services = &fleet.services;
    let messages = planned_messages(services).await;
    let body = messages[0].body.clone();
    let dead = services.dlq.clone().unwrap();
    dead.send_all(vec![body.clone(), body.clone()])
        .await
        .unwrap();

    let run_id = new_run_id();
    let report = services
        .replayer()
        .replay(10, false, run_id.clone())
        .await
        .unwrap();
    assert_eq!(
        (report.replayed, report.duplicates, report.not_sent.len()),
        (1, 1, 0),
        "{report:?}"
    );
    assert!(report.not_deleted.is_empty(), "{report:?}");
    assert_eq!(dead.depth().await.unwrap(), QueueDepth::default());
    let run = run_of(services, &run_id).await;
    assert!(run.sealed);
    assert_eq!((run.expected, run.state), (1, RunState::Running));
    let manifest = RunManifest::read(services.store.as_ref(), &run_id)
        .await
        .unwrap()
        .expect("the replay wrote its manifest");
    assert_eq!(manifest.messages.len(), 1);
    assert!(manifest.messages[0].body.contains(&run_id));

    let dispositions = work_everything(services, &run_id).await;
    assert!(
        matches!(dispositions.as_slice(), [Disposition::Stored { .. }]),
        "{dispositions:?}"
    );
    let run = run_of(services, &run_id).await;
    assert_eq!((run.stored, run.done()), (1, 1));
    assert_eq!(run.state, RunState::Finished);
    let summaries = summaries_of(&fleet.hook, &run_id);
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(summaries[0].starts_with(TITLE_COMPLETE), "{summaries:?}");
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A queue whose deletes (the first `fail_deletes`) or sends (of bodies
/// containing `fail_sends_of`) fail, or whose sends take `send_delay`,
/// around a real one.
struct Faulty {
    inner: Arc<dyn Queue>,
    fail_deletes: AtomicUsize,
    fail_sends_of: Mutex<Option<String>>,
    send_delay: Mutex<Duration>,
}

impl Faulty {
    fn new(inner: Arc<dyn Queue>) -> Self {
        Faulty {
            inner,
            fail_deletes: AtomicUsize::new(0),
            fail_sends_of: Mutex::new(None),
            send_delay: Mutex::new(Duration::ZERO),
        }
    }
}

// The `Queue` trait's methods as `async_trait` declares them (the root
// crate has no `async-trait` of its own).
impl Queue for Faulty {
    fn name(&self) -> String {
        self.inner.name()
    }

    /// As SQS answers a batch with one entry refused: the others land,
    /// the refused one is reported unconfirmed.
    fn send_each<'a, 'b>(&'a self, bodies: Vec<String>) -> BoxFuture<'b, SendOutcome>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let delay = *self.send_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let poisoned = self.fail_sends_of.lock().unwrap().clone();
            let refused: Vec<usize> = (0..bodies.len())
                .filter(|&i| poisoned.as_ref().is_some_and(|n| bodies[i].contains(n)))
                .collect();
            let passed: Vec<String> = (0..bodies.len())
                .filter(|i| !refused.contains(i))
                .map(|i| bodies[i].clone())
                .collect();
            let mut outcome = self.inner.send_each(passed).await;
            assert!(outcome.error.is_none(), "the inner queue sends");
            if !refused.is_empty() {
                outcome.unconfirmed = refused;
                outcome.error = Some(Error::store(
                    self.name(),
                    "SendMessageBatch: injected failure",
                ));
            }
            outcome
        })
    }

    fn send_delayed<'a, 'b>(&'a self, body: String, delay: Duration) -> BoxFuture<'b, Result<()>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.send_delayed(body, delay)
    }

    fn receive<'a, 'b>(
        &'a self,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'b, Result<Vec<QueueMessage>>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.receive(max, wait)
    }

    fn delete<'a, 'r, 'b>(&'a self, receipt: &'r str) -> BoxFuture<'b, Result<()>>
    where
        'a: 'b,
        'r: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let fail = self
                .fail_deletes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if fail {
                return Err(Error::store(self.name(), "DeleteMessage: injected failure"));
            }
            self.inner.delete(receipt).await
        })
    }

    fn set_visibility<'a, 'r, 'b>(
        &'a self,
        receipt: &'r str,
        timeout: Duration,
    ) -> BoxFuture<'b, Result<()>>
    where
        'a: 'b,
        'r: 'b,
        Self: 'b,
    {
        self.inner.set_visibility(receipt, timeout)
    }

    fn depth<'a, 'b>(&'a self) -> BoxFuture<'b, Result<QueueDepth>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.depth()
    }

    fn max_receive_count<'a, 'b>(&'a self) -> BoxFuture<'b, Result<Option<u32>>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.max_receive_count()
    }
}

/// A dead letter whose delete fails is logged and left (the ledger dedups
/// its next replay); one whose send fails goes back to the DLQ, outside the
/// run. Neither stops the replay. Fails on the old replay: the failed
/// delete ended it (`?`) after one bottle, with the run sealed at none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dlq_deletes_and_sends_do_not_stop_the_replay() {
    let standin = StandIn::start(StandInConfig::new(small_catalog()))
        .await
        .unwrap();
    let mut fleet = fleet_with(Some(standin.api_url()), |settings| {
        settings.run_stall = Duration::from_secs_f64(0.06);
    })
    .await;
    let messages = planned_messages(&fleet.services).await;
    assert!(messages.len() >= 4);
    let services = Arc::get_mut(&mut fleet.services).unwrap();
    let dead = Arc::new(Faulty::new(services.dlq.clone().unwrap()));
    let lambda = Arc::new(Faulty::new(services.queues.lambda.clone().unwrap()));
    let large = Arc::new(Faulty::new(services.queues.ecs.clone().unwrap()));
    services.dlq = Some(dead.clone());
    services.queues.lambda = Some(lambda.clone());
    services.queues.ecs = Some(large.clone());
    let services = fleet.services.clone();
    let bodies: Vec<String> = messages[..4].iter().map(|m| m.body.clone()).collect();
    dead.send_all(bodies.clone()).await.unwrap();
    // The first delete fails, and SQS refuses one bottle's entry on every
    // attempt (the others of its batch land).
    dead.fail_deletes.store(1, Ordering::SeqCst);
    let unsendable: serde_json::Value = serde_json::from_str(&bodies[3]).unwrap();
    let unsendable = unsendable["sha256"].as_str().unwrap().to_string();
    for queue in [&lambda, &large] {
        *queue.fail_sends_of.lock().unwrap() = Some(unsendable.clone());
    }

    let run_id = new_run_id();
    let report = services
        .replayer()
        .replay(10, false, run_id.clone())
        .await
        .unwrap();
    assert_eq!(report.replayed, 4, "{report:?}");
    assert_eq!(report.not_deleted.len(), 1, "{report:?}");
    assert_eq!(report.not_sent.len(), 1, "{report:?}");
    assert_eq!(report.not_sent[0].sha256, unsendable);
    let run = run_of(&services, &run_id).await;
    assert!(run.sealed);
    assert_eq!(
        (run.expected, run.failed),
        (4, 0),
        "the unconfirmed one is in the run: its send may have landed"
    );
    // In the DLQ: the unconfirmed letter, visible again, and the undeleted one.
    let depth = dead.depth().await.unwrap();
    assert_eq!(depth.visible + depth.in_flight, 2, "{depth:?}");
    let again = dead.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(again.len(), 1, "only the unconfirmed letter is visible");
    assert!(again[0].body.contains(&unsendable));
    dead.set_visibility(&again[0].receipt, Duration::ZERO)
        .await
        .unwrap();

    // The three sent bottles are stored; the run waits for the fourth.
    for queue in [&lambda, &large] {
        *queue.fail_sends_of.lock().unwrap() = None;
    }
    work_everything(&services, &run_id).await;
    let run = run_of(&services, &run_id).await;
    assert_eq!((run.stored, run.state), (3, RunState::Running));
    // Its message never arrived: the reconcile of the stalled run sends it
    // again from the manifest, and the run ends with one summary.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reconciled = services.reconciler().reconcile("reconcile").await.unwrap();
    let verdict = reconciled.runs.iter().find(|r| r.run_id == run_id).unwrap();
    assert_eq!(
        (verdict.verdict.as_str(), verdict.resent),
        ("stalled", 1),
        "{verdict:?}"
    );
    work_everything(&services, &run_id).await;
    let run = run_of(&services, &run_id).await;
    assert_eq!((run.stored, run.state), (4, RunState::Finished));
    assert_eq!(summaries_of(&fleet.hook, &run_id).len(), 1);
}

/// Registry tokens expire mid-run (each serves one request here): a worker
/// holding a cached token gets a fresh one on the 401 and stores every
/// bottle. Fails on the old client, which sent the refused token back as
/// the answer to every later challenge: every bottle failed with HTTP 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_token_that_expires_mid_run_still_stores_every_bottle() {
    let standin = StandIn::start(StandInConfig::new(small_catalog()))
        .await
        .unwrap();
    standin.set_require_token(true);
    standin.set_token_max_uses(Some(1));
    let fleet = fleet(Some(standin.api_url())).await;
    let services = &fleet.services;
    let request = FleetPlanRequest {
        date: Some(DATE.parse().unwrap()),
        ..FleetPlanRequest::default()
    };
    let planned = services
        .planner()
        .plan_run(&request, "planner")
        .await
        .unwrap();
    let run_id = planned.run_id.clone().unwrap();
    let dispositions = work_everything(services, &run_id).await;
    assert!(
        dispositions
            .iter()
            .all(|d| matches!(d, Disposition::Stored { .. })),
        "{dispositions:?}"
    );
    let expected = expected_bottles(&standin, &AUTO_TAGS, false);
    assert_eq!(planned.enqueued, expected.len() as u64);
    let states = services.ledger.bottle_states().await.unwrap();
    for sha in expected.keys() {
        assert!(
            matches!(
                states.get(&Sha256Digest::parse(sha).unwrap()),
                Some(BottleState::Stored(_))
            ),
            "{sha} not stored"
        );
    }
    let run = run_of(services, &run_id).await;
    assert_eq!((run.stored, run.failed), (expected.len() as u64, 0));
    assert_eq!(run.state, RunState::Finished);
    assert!(
        standin.stats().token_requests > expected.len() as u64,
        "tokens were refreshed: {} token requests",
        standin.stats().token_requests
    );
}

/// A sealed run of `bottles` bottles, all failed with `reason`.
async fn failed_run(services: &FleetAdapters, run_id: &str, bottles: u32, reason: &str) {
    sealed_run(services, run_id, bottles).await;
    for n in 0..bottles {
        let note = bottlesync_core::run::record::FailureNote {
            name: format!("formula{n}"),
            tag: "arm64_tahoe".into(),
            sha256: format!("{n:064x}"),
            reason: reason.into(),
        };
        services
            .ledger
            .count_failed(run_id, &sha(n), &note)
            .await
            .unwrap();
    }
}

/// Fails on today's finisher: Slack's `404 no_service` (a revoked webhook)
/// left the run `Finishing`, posted again every reconcile, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_slack_refuses_for_good_finishes_the_run_without_it() {
    let fleet = fleet(None).await;
    let services = &fleet.services;
    drained_run(services, "r1", 2).await;
    fleet.hook.revoke();
    let outcome = services
        .finisher()
        .finish_if_due("r1", "reconcile")
        .await
        .unwrap();
    assert!(
        matches!(&outcome, FinishOutcome::SummaryRejected { problem } if problem.contains("404") && problem.contains("no_service")),
        "{outcome:?}"
    );
    let run = run_of(services, "r1").await;
    assert_eq!(run.state, RunState::Finished);
    // One post: a 4xx is not retried.
    let attempts: Vec<u16> = fleet.hook.attempts().iter().map(|a| a.status).collect();
    assert_eq!(attempts, [404]);
    for caller in ["reconcile", "planner", "compact"] {
        assert_eq!(
            services
                .finisher()
                .finish_if_due("r1", caller)
                .await
                .unwrap(),
            FinishOutcome::NotMine
        );
    }
    assert_eq!(fleet.hook.attempts().len(), 1, "never posted again");
}

/// Fails on today's summary: five failures whose reasons are whole error
/// chains made a section of over 3,000 characters, which Slack (and its
/// stand-in) refuses with `400 invalid_blocks`, so the run stayed
/// `Finishing`. Now the list is cut to Slack's limits, with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_failure_list_is_cut_to_slacks_limits_and_posted() {
    let fleet = fleet(None).await;
    let services = &fleet.services;
    failed_run(services, "r1", 30, &"upstream answered 503 ".repeat(60)).await;
    let outcome = services
        .finisher()
        .finish_if_due("r1", "worker")
        .await
        .unwrap();
    assert_eq!(
        outcome,
        FinishOutcome::Finished {
            summary_posted: true
        }
    );
    let summaries = summaries_of(&fleet.hook, "r1");
    assert_eq!(summaries.len(), 1);
    assert!(summaries[0].contains("more"), "{}", summaries[0]);
    // The run's record keeps what the message cut.
    let run = run_of(services, "r1").await;
    assert_eq!(run.failed, 30);
}

/// Fails on the old replay, which held no planning lease: a reconcile
/// during its sends found the run unsealed with no live lease, resumed it
/// (sent every bottle not yet counted again) and sealed it under the replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_leaves_a_replay_that_is_still_sending_alone() {
    let standin = StandIn::start(StandInConfig::new(small_catalog()))
        .await
        .unwrap();
    let mut fleet = fleet_with(Some(standin.api_url()), |settings| {
        settings.planning_lease = Duration::from_secs(2);
    })
    .await;
    let messages = planned_messages(&fleet.services).await;
    assert!(messages.len() >= 4);
    let services = Arc::get_mut(&mut fleet.services).unwrap();
    let lambda = Arc::new(Faulty::new(services.queues.lambda.clone().unwrap()));
    let large = Arc::new(Faulty::new(services.queues.ecs.clone().unwrap()));
    services.queues.lambda = Some(lambda.clone());
    services.queues.ecs = Some(large.clone());
    let services = fleet.services.clone();
    let bodies: Vec<String> = messages[..4].iter().map(|m| m.body.clone()).collect();
    services
        .dlq
        .clone()
        .unwrap()
        .send_all(bodies)
        .await
        .unwrap();
    // Four sends of 0.8 s: the replay outlasts its 2 s lease, renewing it.
    for queue in [&lambda, &large] {
        *queue.send_delay.lock().unwrap() = Duration::from_millis(800);
    }
    let run_id = new_run_id();
    let replaying = {
        let services = services.clone();
        let run_id = run_id.clone();
        tokio::spawn(async move { services.replayer().replay(10, false, run_id).await })
    };
    let mut verdicts = Vec::new();
    while !replaying.is_finished() {
        let report = services.reconciler().reconcile("reconcile").await.unwrap();
        verdicts.extend(
            report
                .runs
                .into_iter()
                .filter(|r| r.run_id == run_id)
                .map(|r| r.verdict),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let report = replaying.await.unwrap().unwrap();
    assert_eq!(report.replayed, 4, "{report:?}");
    assert!(
        verdicts.iter().any(|v| v == "planning"),
        "the reconcile ran while the replay was sending: {verdicts:?}"
    );
    // After the replay's seal (before its task ends: it still deletes the
    // letters), a pass finds the run sealed and progressing: also alone.
    assert!(
        verdicts
            .iter()
            .all(|v| v == "planning" || v == "progressing"),
        "the reconcile must leave the sending replay alone: {verdicts:?}"
    );
    // Each bottle sent once, and the run sealed by the replay at four.
    for queue in [&lambda, &large] {
        *queue.send_delay.lock().unwrap() = Duration::ZERO;
    }
    let mut sent = 0;
    for queue in [&services.queues.lambda, &services.queues.ecs] {
        let depth = queue.as_ref().unwrap().depth().await.unwrap();
        sent += depth.visible + depth.in_flight + depth.delayed;
    }
    assert_eq!(sent, 4);
    let run = run_of(&services, &run_id).await;
    assert!(run.sealed);
    assert_eq!(run.expected, 4);
}
