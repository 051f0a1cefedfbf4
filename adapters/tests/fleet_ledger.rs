//! The `FleetLedger` contract, written once and run against both
//! implementations: `MemoryLedger` in process and `DynamoLedger` on
//! moto_server. Each scenario gets a fresh ledger (a fresh table on moto),
//! and the scenarios run concurrently.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bottlesync_adapters::aws::dynamo_ledger::DynamoLedger;
use bottlesync_adapters::local::memory_ledger::MemoryLedger;
use bottlesync_aws_harness::moto::Moto;
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::fleet_ledger::{
    BottleState, ClaimOutcome, ClaimOwner, CompleteOutcome, Counted, FleetLedger,
};
use bottlesync_core::run::record::{FailureNote, MAX_FAILURE_NOTES, RunRecord, RunState};
use bottlesync_core::{ObjectKey, Sha256Digest, Tag};
use chrono::{DateTime, Utc};

type Ledger = Arc<dyn FleetLedger>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Scenario = fn(Ledger, Backend) -> BoxFuture<()>;

/// What a scenario may assume of the implementation under test.
#[derive(Clone, Copy)]
struct Backend {
    /// Concurrent conditional writes to one item are atomic. True of
    /// DynamoDB and `MemoryLedger`; not of moto_server, whose request
    /// threads check a condition and apply the write in separate steps, so
    /// two racing `begin_finish` calls can both win there (seen in about
    /// one run in eight).
    atomic_under_concurrency: bool,
}

const HOUR: Duration = Duration::from_secs(3600);
/// Short leases that the tests wait out: long enough that the next call or
/// two still see them live on a loaded machine.
const SHORT: Duration = Duration::from_millis(1000);
const PAST_SHORT: Duration = Duration::from_millis(1200);

fn scenarios() -> Vec<(&'static str, Scenario)> {
    macro_rules! scenarios {
        ($($scenario:ident),* $(,)?) => {
            vec![$((
                stringify!($scenario),
                (|ledger, backend| Box::pin($scenario(ledger, backend))) as Scenario,
            )),*]
        };
    }
    scenarios![
        claims,
        expired_claims,
        complete_counts_once,
        counted_before_complete,
        failures,
        failure_notes_are_capped,
        mark_queued,
        begin_finish_once,
        finishing_lease_takeover,
        finishing_lease_renewal,
        summary_retries,
        runs_and_latest,
        import_stored,
        bottle_states,
        unknown_run,
        progress_slots,
        progress_slot_race,
        later_receive_takes_over_its_message_claim,
        sealing_and_planning,
        open_runs_and_reconcile_marks,
    ]
}

/// Runs every scenario on its own ledger from `make`, concurrently, and
/// names the ones that failed.
async fn run_all<F>(backend: Backend, make: F)
where
    F: Fn(&'static str) -> BoxFuture<Ledger>,
{
    let mut tasks = Vec::new();
    for (name, scenario) in scenarios() {
        let ledger = make(name).await;
        tasks.push((name, tokio::spawn(scenario(ledger, backend))));
    }
    let mut failed = Vec::new();
    for (name, task) in tasks {
        if let Err(err) = task.await {
            failed.push(format!("{name}: {err}"));
        }
    }
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n")
    );
}

#[tokio::test]
async fn memory_ledger_keeps_the_contract() {
    let backend = Backend {
        atomic_under_concurrency: true,
    };
    run_all(backend, |_| {
        Box::pin(async { Arc::new(MemoryLedger::new()) as Ledger })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_ledger_keeps_the_contract() {
    let moto = Moto::start().await;
    let client = moto.dynamodb();
    let backend = Backend {
        atomic_under_concurrency: false,
    };
    run_all(backend, |name| {
        let client = client.clone();
        Box::pin(async move {
            let table = format!("ledger-{}", name.replace('_', "-"));
            bottlesync_aws_harness::moto::create_ledger_table(&client, &table).await;
            Arc::new(DynamoLedger::new(client, table)) as Ledger
        })
    })
    .await;
}

// ---- fixtures ----------------------------------------------------------

fn sha(n: u32) -> Sha256Digest {
    Sha256Digest::parse(&format!("{n:064x}")).unwrap()
}

fn bottle(name: &str, size: u64) -> MirroredBottle {
    MirroredBottle {
        name: name.to_string(),
        version: "1.2.3_1".into(),
        rebuild: 1,
        tag: Tag::parse("arm64_tahoe").unwrap(),
        key: ObjectKey::parse(&format!(
            "2026-11-29/{name}-1.2.3_1.arm64_tahoe.bottle.1.tar.gz"
        ))
        .unwrap(),
        size,
        downloaded_at: Utc::now(),
    }
}

fn run_record(run_id: &str, expected: u64) -> RunRecord {
    RunRecord {
        sealed: true,
        ..RunRecord::new(
            run_id,
            "2026-11-29",
            expected,
            1000 * expected,
            Route::Lambda,
            Utc::now(),
        )
    }
}

fn note(n: u32) -> FailureNote {
    FailureNote {
        name: format!("formula{n}"),
        tag: "arm64_tahoe".into(),
        sha256: sha(n).to_string(),
        reason: format!("HTTP 404 for bottle {n}"),
    }
}

async fn run_of(ledger: &Ledger, run_id: &str) -> RunRecord {
    ledger.run(run_id).await.unwrap().expect("the run exists")
}

async fn state_of(ledger: &Ledger, sha256: &Sha256Digest) -> Option<BottleState> {
    ledger.bottle_states().await.unwrap().remove(sha256)
}

/// Whole seconds, which every implementation keeps exactly.
fn in_secs(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() + secs, 0).unwrap()
}

// ---- scenarios -------------------------------------------------------------

async fn claims(ledger: Ledger, _: Backend) {
    let x = sha(1);
    let before = Utc::now();
    assert_eq!(
        ledger.claim(&x, "r1", "a", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    match ledger.claim(&x, "r1", "b", HOUR).await.unwrap() {
        ClaimOutcome::HeldElsewhere {
            owner,
            lease_expires,
        } => {
            assert_eq!(owner, "a");
            assert!(lease_expires > before + chrono::Duration::minutes(59));
        }
        other => panic!("expected HeldElsewhere, got {other:?}"),
    }
    // The holder's own claim again (a redelivery to the same worker).
    assert_eq!(
        ledger.claim(&x, "r1", "a", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert!(!ledger.extend_claim(&x, "b", HOUR).await.unwrap());
    assert!(ledger.extend_claim(&x, "a", HOUR).await.unwrap());
    // Only the holder can release.
    ledger.release_claim(&x, "b").await.unwrap();
    assert!(matches!(
        ledger.claim(&x, "r1", "b", HOUR).await.unwrap(),
        ClaimOutcome::HeldElsewhere { .. }
    ));
    ledger.release_claim(&x, "a").await.unwrap();
    assert_eq!(
        ledger.claim(&x, "r1", "b", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert!(!ledger.extend_claim(&x, "a", HOUR).await.unwrap());
    match state_of(&ledger, &x).await {
        Some(BottleState::Claimed { owner, .. }) => assert_eq!(owner, "b"),
        other => panic!("expected Claimed by b, got {other:?}"),
    }
}

async fn expired_claims(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 1)).await.unwrap();
    let x = sha(2);
    assert_eq!(
        ledger.claim(&x, "r1", "a", SHORT).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert!(matches!(
        ledger.claim(&x, "r1", "b", HOUR).await.unwrap(),
        ClaimOutcome::HeldElsewhere { .. }
    ));
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        ledger.claim(&x, "r1", "b", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    // The first holder has lost it: no extension, and its completion does
    // not count (b will).
    assert!(!ledger.extend_claim(&x, "a", HOUR).await.unwrap());
    assert_eq!(
        ledger
            .complete("r1", "a", &x, &bottle("curl", 10))
            .await
            .unwrap(),
        CompleteOutcome::ClaimLost
    );
    assert_eq!(run_of(&ledger, "r1").await.done(), 0);
    assert_eq!(
        ledger
            .complete("r1", "b", &x, &bottle("curl", 10))
            .await
            .unwrap(),
        CompleteOutcome::Counted(Counted::Now)
    );
    // A zero lease is over at once.
    let y = sha(3);
    assert_eq!(
        ledger.claim(&y, "r1", "a", Duration::ZERO).await.unwrap(),
        ClaimOutcome::Granted
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        ledger.claim(&y, "r1", "b", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
}

async fn complete_counts_once(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 5)).await.unwrap();
    let x = sha(4);
    let curl = bottle("curl", 347_618);
    assert_eq!(
        ledger.claim(&x, "r1", "a", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert_eq!(
        ledger.complete("r1", "a", &x, &curl).await.unwrap(),
        CompleteOutcome::Counted(Counted::Now)
    );
    let run = run_of(&ledger, "r1").await;
    assert_eq!(
        (run.stored, run.skipped, run.failed, run.done()),
        (1, 0, 0, 1)
    );
    assert_eq!(run.bytes_stored, 347_618);
    assert_eq!(
        state_of(&ledger, &x).await,
        Some(BottleState::Stored(curl.clone()))
    );

    // Redeliveries of the same message count nothing more.
    assert_eq!(
        ledger.complete("r1", "a", &x, &curl).await.unwrap(),
        CompleteOutcome::Counted(Counted::Already)
    );
    assert_eq!(
        ledger.count_skipped("r1", &x).await.unwrap(),
        Counted::Already
    );
    assert_eq!(
        ledger.claim(&x, "r1", "b", HOUR).await.unwrap(),
        ClaimOutcome::AlreadyStored(curl.clone())
    );
    assert!(!ledger.mark_queued(&x, "r1", in_secs(3600)).await.unwrap());
    let run = run_of(&ledger, "r1").await;
    assert_eq!((run.stored, run.done(), run.bytes_stored), (1, 1, 347_618));

    // A worker that never held the claim.
    let y = sha(5);
    assert_eq!(
        ledger.claim(&y, "r1", "a", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert_eq!(
        ledger
            .complete("r1", "b", &y, &bottle("wget", 5))
            .await
            .unwrap(),
        CompleteOutcome::ClaimLost
    );
    assert!(matches!(
        state_of(&ledger, &y).await,
        Some(BottleState::Claimed { .. })
    ));
    // Nor a bottle never claimed at all.
    assert_eq!(
        ledger
            .complete("r1", "b", &sha(6), &bottle("jq", 5))
            .await
            .unwrap(),
        CompleteOutcome::ClaimLost
    );
    assert_eq!(run_of(&ledger, "r1").await.done(), 1);

    // Another run counts the stored bottle as skipped, once.
    ledger.create_run(&run_record("r2", 1)).await.unwrap();
    assert_eq!(ledger.count_skipped("r2", &x).await.unwrap(), Counted::Now);
    assert_eq!(
        ledger.count_skipped("r2", &x).await.unwrap(),
        Counted::Already
    );
    let run2 = run_of(&ledger, "r2").await;
    assert_eq!((run2.skipped, run2.done()), (1, 1));
    assert_eq!(run_of(&ledger, "r1").await.done(), 1);
}

/// The marker exists (an earlier attempt counted the bottle for the run)
/// while this worker holds the claim: stored, not counted again.
async fn counted_before_complete(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 2)).await.unwrap();
    let x = sha(7);
    assert_eq!(ledger.count_skipped("r1", &x).await.unwrap(), Counted::Now);
    assert_eq!(
        ledger.claim(&x, "r1", "a", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    let jq = bottle("jq", 99);
    assert_eq!(
        ledger.complete("r1", "a", &x, &jq).await.unwrap(),
        CompleteOutcome::Counted(Counted::Already)
    );
    assert_eq!(state_of(&ledger, &x).await, Some(BottleState::Stored(jq)));
    let run = run_of(&ledger, "r1").await;
    assert_eq!(
        (run.stored, run.skipped, run.done(), run.bytes_stored),
        (0, 1, 1, 0)
    );
}

async fn failures(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 3)).await.unwrap();
    let x = sha(8);
    assert_eq!(
        ledger.claim(&x, "r1", "a", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert_eq!(
        ledger.count_failed("r1", &x, &note(8)).await.unwrap(),
        Counted::Now
    );
    assert_eq!(
        ledger.count_failed("r1", &x, &note(8)).await.unwrap(),
        Counted::Already
    );
    let run = run_of(&ledger, "r1").await;
    assert_eq!((run.failed, run.done()), (1, 1));
    assert_eq!(run.failures, vec![note(8)]);
    // A live claim is never taken over: its holder is still at work.
    assert!(matches!(
        state_of(&ledger, &x).await,
        Some(BottleState::Claimed { .. })
    ));
    // A holder that gives up releases first; then the bottle is Failed.
    ledger.release_claim(&x, "a").await.unwrap();
    ledger.count_failed("r1", &x, &note(8)).await.unwrap();
    assert_eq!(state_of(&ledger, &x).await, Some(BottleState::Failed));
    // A failed bottle is claimable, and the next plan enqueues it again.
    assert_eq!(
        ledger.claim(&x, "r2", "b", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    ledger.release_claim(&x, "b").await.unwrap();
    ledger.count_failed("r1", &x, &note(8)).await.unwrap();
    assert!(ledger.mark_queued(&x, "r2", in_secs(3600)).await.unwrap());

    // A stored bottle stays stored.
    let y = sha(9);
    ledger
        .import_stored(&[(y.clone(), bottle("git", 1))])
        .await
        .unwrap();
    assert_eq!(
        ledger.count_failed("r1", &y, &note(9)).await.unwrap(),
        Counted::Now
    );
    assert!(matches!(
        state_of(&ledger, &y).await,
        Some(BottleState::Stored(_))
    ));
    // A bottle the ledger never saw becomes Failed.
    let z = sha(10);
    ledger.count_failed("r1", &z, &note(10)).await.unwrap();
    assert_eq!(state_of(&ledger, &z).await, Some(BottleState::Failed));
    let run = run_of(&ledger, "r1").await;
    assert_eq!((run.failed, run.done()), (3, 3));
    assert_eq!(run.failures, vec![note(8), note(9), note(10)]);
}

async fn failure_notes_are_capped(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 30)).await.unwrap();
    let total = MAX_FAILURE_NOTES as u32 + 5;
    for n in 0..total {
        assert_eq!(
            ledger
                .count_failed("r1", &sha(100 + n), &note(n))
                .await
                .unwrap(),
            Counted::Now
        );
    }
    let run = run_of(&ledger, "r1").await;
    assert_eq!(run.failed, u64::from(total));
    assert_eq!(run.failures.len(), MAX_FAILURE_NOTES);
    assert_eq!(
        run.failures,
        (0..MAX_FAILURE_NOTES as u32).map(note).collect::<Vec<_>>()
    );
}

async fn mark_queued(ledger: Ledger, _: Backend) {
    let x = sha(11);
    let until = in_secs(3600);
    assert!(ledger.mark_queued(&x, "r1", until).await.unwrap());
    // The same run's mark again (a retried write whose answer was lost)
    // counts as made: the bottle must not drop out of its run.
    assert!(ledger.mark_queued(&x, "r1", until).await.unwrap());
    assert!(!ledger.mark_queued(&x, "r2", in_secs(7200)).await.unwrap());
    assert_eq!(
        state_of(&ledger, &x).await,
        Some(BottleState::Queued {
            run_id: "r1".into(),
            until
        })
    );
    // Queued bottles are claimable; a live claim blocks a new mark.
    assert_eq!(
        ledger.claim(&x, "r1", "a", HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert!(!ledger.mark_queued(&x, "r2", until).await.unwrap());
    // An expired claim does not.
    let y = sha(12);
    assert_eq!(
        ledger.claim(&y, "r1", "a", SHORT).await.unwrap(),
        ClaimOutcome::Granted
    );
    assert!(!ledger.mark_queued(&y, "r2", until).await.unwrap());
    // Nor does an expired mark.
    let z = sha(13);
    assert!(
        ledger
            .mark_queued(
                &z,
                "r1",
                Utc::now() + chrono::Duration::from_std(SHORT).unwrap()
            )
            .await
            .unwrap()
    );
    assert!(!ledger.mark_queued(&z, "r2", until).await.unwrap());
    tokio::time::sleep(PAST_SHORT).await;
    assert!(ledger.mark_queued(&y, "r2", until).await.unwrap());
    assert!(ledger.mark_queued(&z, "r2", until).await.unwrap());
    assert_eq!(
        state_of(&ledger, &y).await,
        Some(BottleState::Queued {
            run_id: "r2".into(),
            until
        })
    );
}

async fn begin_finish_once(ledger: Ledger, backend: Backend) {
    ledger.create_run(&run_record("r1", 3)).await.unwrap();
    assert!(!ledger.begin_finish("r1", "w0", HOUR).await.unwrap());
    ledger.count_skipped("r1", &sha(20)).await.unwrap();
    ledger.count_skipped("r1", &sha(21)).await.unwrap();
    assert!(!ledger.begin_finish("r1", "w0", HOUR).await.unwrap());
    ledger
        .count_failed("r1", &sha(22), &note(22))
        .await
        .unwrap();
    assert_eq!(run_of(&ledger, "r1").await.done(), 3);

    // Against moto the racers take turns (see `Backend`): the test then
    // checks that the condition admits one finisher, and DynamoDB's atomic
    // conditional writes make that hold under concurrency.
    let turns = Arc::new(tokio::sync::Mutex::new(()));
    let racers: Vec<_> = (1..=8)
        .map(|i| {
            let ledger = ledger.clone();
            let turns = turns.clone();
            tokio::spawn(async move {
                let _turn = match backend.atomic_under_concurrency {
                    true => None,
                    false => Some(turns.lock().await),
                };
                let owner = format!("w{i}");
                let won = ledger.begin_finish("r1", &owner, HOUR).await.unwrap();
                (owner, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (owner, won) = racer.await.unwrap();
        if won {
            winners.push(owner);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = &winners[0];
    let loser = if winner == "w1" { "w2" } else { "w1" };
    let run = run_of(&ledger, "r1").await;
    assert_eq!(run.state, RunState::Finishing);
    assert!(!ledger.begin_finish("r1", loser, HOUR).await.unwrap());

    assert!(!run_of(&ledger, "r1").await.summary_sent);
    ledger.mark_summary_sent("r1", winner).await.unwrap();
    assert!(run_of(&ledger, "r1").await.summary_sent);

    let err = ledger.finish("r1", loser).await.unwrap_err().to_string();
    assert!(err.contains("r1") && err.contains(loser), "{err}");
    let before = Utc::now() - chrono::Duration::seconds(1);
    ledger.finish("r1", winner).await.unwrap();
    let run = run_of(&ledger, "r1").await;
    assert_eq!(run.state, RunState::Finished);
    assert!(run.finished_at.is_some_and(|at| at >= before));
    // A repeated finish by the finisher is fine; nobody begins again.
    ledger.finish("r1", winner).await.unwrap();
    assert!(!ledger.begin_finish("r1", winner, HOUR).await.unwrap());
    assert!(!ledger.begin_finish("r1", loser, HOUR).await.unwrap());
}

async fn finishing_lease_takeover(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 0)).await.unwrap();
    assert!(ledger.begin_finish("r1", "a", SHORT).await.unwrap());
    assert!(!ledger.begin_finish("r1", "b", HOUR).await.unwrap());
    // The finisher's own write again (its answer was lost): still its own.
    assert!(ledger.begin_finish("r1", "a", SHORT).await.unwrap());
    tokio::time::sleep(PAST_SHORT).await;
    assert!(ledger.begin_finish("r1", "b", HOUR).await.unwrap());
    assert!(!ledger.begin_finish("r1", "a", HOUR).await.unwrap());
    assert!(ledger.finish("r1", "a").await.is_err());
    ledger.finish("r1", "b").await.unwrap();
    assert_eq!(run_of(&ledger, "r1").await.state, RunState::Finished);
    // An unknown run cannot be begun.
    assert!(!ledger.begin_finish("nope", "a", HOUR).await.unwrap());
}

async fn finishing_lease_renewal(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 0)).await.unwrap();
    // Only a finisher of a finishing run can extend.
    assert!(!ledger.extend_finish("r1", "a", HOUR).await.unwrap());
    assert!(!ledger.extend_finish("nope", "a", HOUR).await.unwrap());
    assert!(ledger.begin_finish("r1", "a", SHORT).await.unwrap());
    assert!(!ledger.extend_finish("r1", "b", HOUR).await.unwrap());
    // Renewed: the first lease's end passes and nobody can take over.
    assert!(ledger.extend_finish("r1", "a", HOUR).await.unwrap());
    tokio::time::sleep(PAST_SHORT).await;
    assert!(!ledger.begin_finish("r1", "b", HOUR).await.unwrap());
    // A renewal that lapses is taken over, and the old finisher learns it.
    assert!(ledger.extend_finish("r1", "a", SHORT).await.unwrap());
    tokio::time::sleep(PAST_SHORT).await;
    assert!(ledger.begin_finish("r1", "b", HOUR).await.unwrap());
    assert!(!ledger.extend_finish("r1", "a", HOUR).await.unwrap());
    assert!(ledger.mark_compacted("r1", "a").await.is_err());
    ledger.finish("r1", "b").await.unwrap();
    // A finished run has no lease to renew.
    assert!(!ledger.extend_finish("r1", "b", HOUR).await.unwrap());
}

async fn summary_retries(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 0)).await.unwrap();
    let run = run_of(&ledger, "r1").await;
    assert_eq!(
        (run.compacted, run.summary_attempts, run.summary_error),
        (false, 0, None)
    );
    // Nobody is finishing yet.
    assert!(ledger.mark_compacted("r1", "a").await.is_err());
    assert!(ledger.defer_summary("r1", "a", "HTTP 500").await.is_err());
    assert!(ledger.begin_finish("r1", "a", HOUR).await.unwrap());
    assert!(ledger.mark_compacted("r1", "b").await.is_err());
    ledger.mark_compacted("r1", "a").await.unwrap();
    let err = ledger
        .defer_summary("r1", "b", "HTTP 500")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("r1") && err.contains("\"b\""), "{err}");

    // Slack refused the post: the run stays finishing, without a finisher.
    ledger.defer_summary("r1", "a", "HTTP 500").await.unwrap();
    let run = run_of(&ledger, "r1").await;
    assert_eq!(run.state, RunState::Finishing);
    assert!(run.compacted && !run.summary_sent && run.summary_pending());
    assert_eq!(
        (run.summary_attempts, run.summary_error.as_deref()),
        (1, Some("HTTP 500"))
    );
    assert!(!ledger.extend_finish("r1", "a", HOUR).await.unwrap());
    assert!(ledger.finish("r1", "a").await.is_err());
    // The next caller takes it over at once (the lease ended), and the
    // compaction is remembered.
    assert!(ledger.begin_finish("r1", "b", HOUR).await.unwrap());
    assert!(!ledger.begin_finish("r1", "c", HOUR).await.unwrap());
    assert!(run_of(&ledger, "r1").await.compacted);
    ledger
        .defer_summary("r1", "b", "HTTP 429 Too Many Requests")
        .await
        .unwrap();
    let run = run_of(&ledger, "r1").await;
    assert_eq!(
        (run.summary_attempts, run.summary_error.as_deref()),
        (2, Some("HTTP 429 Too Many Requests"))
    );
    assert!(ledger.begin_finish("r1", "c", HOUR).await.unwrap());
    // Whoever got Slack's 2xx records it, holder of the lease or not.
    ledger.mark_summary_sent("r1", "b").await.unwrap();
    let run = run_of(&ledger, "r1").await;
    assert!(run.summary_sent && !run.summary_pending());
    ledger.mark_summary_sent("r1", "c").await.unwrap();
    ledger.finish("r1", "c").await.unwrap();
    assert_eq!(run_of(&ledger, "r1").await.state, RunState::Finished);
    assert!(ledger.mark_summary_sent("nope", "a").await.is_err());
}

async fn runs_and_latest(ledger: Ledger, _: Backend) {
    assert_eq!(ledger.latest_run().await.unwrap(), None);
    assert_eq!(ledger.run("r1").await.unwrap(), None);
    let mut first = run_record("2026-11-29-a", 7);
    first.route = Route::Ecs;
    first.failures = vec![note(1)];
    ledger.create_run(&first).await.unwrap();
    assert_eq!(
        ledger.run(&first.run_id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(ledger.latest_run().await.unwrap(), Some(first.clone()));

    let second = run_record("2026-11-29-b", 3);
    ledger.create_run(&second).await.unwrap();
    assert_eq!(ledger.latest_run().await.unwrap(), Some(second.clone()));
    assert_eq!(
        ledger.run(&first.run_id).await.unwrap(),
        Some(first.clone())
    );

    // The same record again is a retried write whose answer was lost: done
    // already, and the newest run stays the newest.
    ledger.create_run(&first).await.unwrap();
    assert_eq!(ledger.latest_run().await.unwrap(), Some(second.clone()));
    // Another run under a used id is refused; "latest" is the pointer's.
    let mut other = first.clone();
    other.started_at = first.started_at - chrono::Duration::hours(1);
    let err = ledger.create_run(&other).await.unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(ledger.latest_run().await.unwrap(), Some(second));
    assert!(ledger.create_run(&run_record("latest", 1)).await.is_err());
}

async fn import_stored(ledger: Ledger, _: Backend) {
    let (a, b, c) = (sha(30), sha(31), sha(32));
    let first = [(a.clone(), bottle("a", 1)), (b.clone(), bottle("b", 2))];
    assert_eq!(ledger.import_stored(&first).await.unwrap(), 2);
    assert_eq!(ledger.import_stored(&first).await.unwrap(), 0);
    // A failed bottle is not stored yet.
    ledger.create_run(&run_record("r1", 1)).await.unwrap();
    ledger.count_failed("r1", &c, &note(32)).await.unwrap();
    let mut more = first.to_vec();
    more.push((c.clone(), bottle("c", 3)));
    assert_eq!(ledger.import_stored(&more).await.unwrap(), 1);
    let many: Vec<_> = (0..40)
        .map(|n| (sha(1000 + n), bottle("many", 1)))
        .collect();
    assert_eq!(ledger.import_stored(&many).await.unwrap(), 40);
    let states = ledger.bottle_states().await.unwrap();
    assert_eq!(states.len(), 43);
    assert_eq!(states[&c], BottleState::Stored(more[2].1.clone()));
}

async fn bottle_states(ledger: Ledger, _: Backend) {
    ledger.create_run(&run_record("r1", 4)).await.unwrap();
    let (stored, queued, claimed, failed) = (sha(40), sha(41), sha(42), sha(43));
    let git = bottle("git", 4096);
    ledger
        .import_stored(&[(stored.clone(), git.clone())])
        .await
        .unwrap();
    let until = in_secs(600);
    assert!(ledger.mark_queued(&queued, "r1", until).await.unwrap());
    let before = Utc::now();
    ledger.claim(&claimed, "r1", "w7", HOUR).await.unwrap();
    ledger.count_failed("r1", &failed, &note(43)).await.unwrap();
    ledger.count_skipped("r1", &stored).await.unwrap();

    let states = ledger.bottle_states().await.unwrap();
    assert_eq!(states.len(), 4, "{states:?}");
    assert_eq!(states[&stored], BottleState::Stored(git));
    assert_eq!(
        states[&queued],
        BottleState::Queued {
            run_id: "r1".into(),
            until
        }
    );
    match &states[&claimed] {
        BottleState::Claimed {
            owner,
            lease_expires,
        } => {
            assert_eq!(owner, "w7");
            let lease = *lease_expires - before;
            assert!(lease > chrono::Duration::minutes(59) && lease < chrono::Duration::minutes(61));
        }
        other => panic!("expected Claimed, got {other:?}"),
    }
    assert_eq!(states[&failed], BottleState::Failed);
}

async fn unknown_run(ledger: Ledger, _: Backend) {
    let x = sha(50);
    let err = ledger
        .count_skipped("nope", &x)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(ledger.count_failed("nope", &x, &note(50)).await.is_err());
    ledger.claim(&x, "nope", "a", HOUR).await.unwrap();
    assert!(
        ledger
            .complete("nope", "a", &x, &bottle("x", 1))
            .await
            .is_err()
    );
    // Nothing was counted or stored.
    assert_eq!(ledger.run("nope").await.unwrap(), None);
    assert!(matches!(
        state_of(&ledger, &x).await,
        Some(BottleState::Claimed { .. })
    ));
}

/// One progress slot per interval, the first one interval after the start.
async fn progress_slots(ledger: Ledger, _: Backend) {
    // An unknown run has no slot, and asking creates nothing.
    assert_eq!(ledger.try_progress_slot("nope", SHORT).await.unwrap(), None);
    assert_eq!(ledger.run("nope").await.unwrap(), None);

    let mut run = run_record("r1", 4);
    run.route = Route::Ecs;
    ledger.create_run(&run).await.unwrap();
    // The start message was the last progress: nothing before an interval.
    assert_eq!(ledger.try_progress_slot("r1", SHORT).await.unwrap(), None);
    ledger.count_skipped("r1", &sha(60)).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    // The winner gets the run as written, counters included.
    let slot = ledger
        .try_progress_slot("r1", SHORT)
        .await
        .unwrap()
        .expect("a slot one interval after the start");
    assert_eq!((slot.skipped, slot.done(), slot.expected), (1, 1, 4));
    assert_eq!(slot.route, Route::Ecs);
    assert_eq!(slot, run_of(&ledger, "r1").await);
    // Taken: nobody gets another until the interval has passed again.
    assert_eq!(ledger.try_progress_slot("r1", SHORT).await.unwrap(), None);
    assert_eq!(ledger.try_progress_slot("r1", SHORT).await.unwrap(), None);
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        ledger
            .try_progress_slot("r1", SHORT)
            .await
            .unwrap()
            .is_some()
    );
    // A longer interval is measured from the same last progress.
    assert_eq!(ledger.try_progress_slot("r1", HOUR).await.unwrap(), None);

    // A run that started long ago has its first slot at once.
    let mut old = run_record("r2", 2);
    old.started_at = Utc::now() - chrono::Duration::hours(2);
    ledger.create_run(&old).await.unwrap();
    assert!(
        ledger
            .try_progress_slot("r2", HOUR)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(ledger.try_progress_slot("r2", HOUR).await.unwrap(), None);

    // Only running runs report progress.
    let mut drained = run_record("r3", 1);
    drained.started_at = Utc::now() - chrono::Duration::hours(2);
    ledger.create_run(&drained).await.unwrap();
    ledger.count_skipped("r3", &sha(61)).await.unwrap();
    assert!(ledger.begin_finish("r3", "w", HOUR).await.unwrap());
    assert_eq!(ledger.try_progress_slot("r3", SHORT).await.unwrap(), None);
    ledger.finish("r3", "w").await.unwrap();
    assert_eq!(ledger.try_progress_slot("r3", SHORT).await.unwrap(), None);
    assert_eq!(run_of(&ledger, "r3").await.state, RunState::Finished);
}

/// Many workers ask at once: one slot, one winner.
async fn progress_slot_race(ledger: Ledger, backend: Backend) {
    let mut run = run_record("r1", 100);
    run.started_at = Utc::now() - chrono::Duration::hours(1);
    ledger.create_run(&run).await.unwrap();
    // Against moto the racers take turns (see `Backend` and `begin_finish_once`).
    let turns = Arc::new(tokio::sync::Mutex::new(()));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let ledger = ledger.clone();
            let turns = turns.clone();
            tokio::spawn(async move {
                let _turn = match backend.atomic_under_concurrency {
                    true => None,
                    false => Some(turns.lock().await),
                };
                ledger.try_progress_slot("r1", HOUR).await.unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        if racer.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn later_receive_takes_over_its_message_claim(ledger: Ledger, _: Backend) {
    let x = sha(40);
    let first = ClaimOwner::new("m-1", 1, "w1").token();
    let again = ClaimOwner::new("m-1", 2, "w2").token();
    let other_copy = ClaimOwner::new("m-2", 5, "w3").token();
    assert_eq!(
        ledger.claim(&x, "r1", &first, HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    // The same claim write retried after its answer was lost: granted.
    assert_eq!(
        ledger.claim(&x, "r1", &first, HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    // Another copy of the bottle's message waits for the live lease.
    assert!(matches!(
        ledger.claim(&x, "r1", &other_copy, HOUR).await.unwrap(),
        ClaimOutcome::HeldElsewhere { owner, .. } if owner == first
    ));
    // A later receive of the same message takes the stranded claim over.
    assert_eq!(
        ledger.claim(&x, "r1", &again, HOUR).await.unwrap(),
        ClaimOutcome::Granted
    );
    // ... and the earlier receive can neither extend nor take it back.
    assert!(!ledger.extend_claim(&x, &first, HOUR).await.unwrap());
    assert!(matches!(
        ledger.claim(&x, "r1", &first, HOUR).await.unwrap(),
        ClaimOutcome::HeldElsewhere { owner, .. } if owner == again
    ));
    assert!(ledger.extend_claim(&x, &again, HOUR).await.unwrap());
}

async fn sealing_and_planning(ledger: Ledger, _: Backend) {
    let mut run = RunRecord::new("r1", "2026-12-01", 5, 0, Route::Lambda, Utc::now());
    run.planner = Some("p1".into());
    run.planning_until = Some(Utc::now() + chrono::Duration::hours(1));
    ledger.create_run(&run).await.unwrap();
    let stored = run_of(&ledger, "r1").await;
    assert!(!stored.sealed);
    assert_eq!(stored.planner.as_deref(), Some("p1"));
    // The planner renews; nobody else can take a live planning lease.
    assert!(ledger.hold_planning("r1", "p1", HOUR).await.unwrap());
    assert!(!ledger.hold_planning("r1", "p2", HOUR).await.unwrap());
    // An unsealed run cannot finish, however much it counted.
    ledger.count_skipped("r1", &sha(50)).await.unwrap();
    ledger.count_skipped("r1", &sha(51)).await.unwrap();
    let mut shrunk = RunRecord::new("r2", "2026-12-01", 1, 0, Route::Lambda, Utc::now());
    shrunk.planner = Some("p1".into());
    shrunk.planning_until = Some(Utc::now());
    ledger.create_run(&shrunk).await.unwrap();
    ledger.count_skipped("r2", &sha(52)).await.unwrap();
    assert!(!ledger.begin_finish("r2", "w", HOUR).await.unwrap());
    // Its planner is gone (lease over): another may resume it.
    assert!(ledger.hold_planning("r2", "p2", SHORT).await.unwrap());
    assert!(!ledger.hold_planning("r2", "p1", HOUR).await.unwrap());
    // Sealing fixes the count to what was sent; then it can finish.
    ledger.seal_run("r1", 2).await.unwrap();
    ledger.seal_run("r1", 2).await.unwrap();
    let sealed = run_of(&ledger, "r1").await;
    assert!(sealed.sealed);
    assert_eq!(sealed.expected, 2);
    assert_eq!(sealed.planning_until, None);
    assert!(!ledger.hold_planning("r1", "p1", HOUR).await.unwrap());
    assert!(ledger.begin_finish("r1", "w", HOUR).await.unwrap());
    assert!(ledger.seal_run("nope", 1).await.is_err());
    assert!(!ledger.hold_planning("nope", "p1", HOUR).await.unwrap());
}

async fn open_runs_and_reconcile_marks(ledger: Ledger, _: Backend) {
    assert!(ledger.open_runs().await.unwrap().is_empty());
    ledger.create_run(&run_record("r1", 3)).await.unwrap();
    ledger.create_run(&run_record("r2", 3)).await.unwrap();
    let open: Vec<String> = ledger
        .open_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(open.len(), 2);
    assert!(open.contains(&"r1".to_string()) && open.contains(&"r2".to_string()));
    ledger.close_run("r1").await.unwrap();
    ledger.close_run("r1").await.unwrap();
    let open = ledger.open_runs().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].run_id, "r2");

    // Which bottles a run counted.
    let shas: Vec<_> = (60..64).map(sha).collect();
    ledger.count_skipped("r2", &shas[1]).await.unwrap();
    ledger
        .count_failed("r2", &shas[3], &note(63))
        .await
        .unwrap();
    assert_eq!(
        ledger.counted("r2", &shas).await.unwrap(),
        [shas[1].clone(), shas[3].clone()].into_iter().collect()
    );
    assert!(ledger.counted("r1", &shas).await.unwrap().is_empty());
    let run = run_of(&ledger, "r2").await;
    assert!(run.last_counted_at.is_some_and(|at| at >= run.started_at));

    // A bottle is re-sent at most once per run; the same pass is recognised.
    assert!(ledger.mark_resent("r2", &shas[0], "pass-1").await.unwrap());
    assert!(ledger.mark_resent("r2", &shas[0], "pass-1").await.unwrap());
    assert!(!ledger.mark_resent("r2", &shas[0], "pass-2").await.unwrap());
    assert!(ledger.mark_resent("r1", &shas[0], "pass-2").await.unwrap());

    let before = run_of(&ledger, "r2").await.last_progress();
    ledger.note_reconciled("r2").await.unwrap();
    let after = run_of(&ledger, "r2").await;
    assert!(after.reconciled_at.is_some());
    assert!(after.last_progress() >= before);
    assert!(ledger.note_reconciled("nope").await.is_err());
}
