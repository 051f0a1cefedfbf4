//! The fleet under the faults real AWS has and moto hides: a lossy proxy in
//! front of DynamoDB and SQS (answers lost after the write landed, answers
//! held past the SDK's timeouts), with production's timing ratios scaled
//! down in time (`StackOptions::prod_like`).
//!
//! Each test bounds its run by a generous overall timeout that fails it: the
//! bug these tests catch is a run that never ends, not a slow one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use bottlesync_aws_harness::aws_faults::FaultPlan;
use bottlesync_aws_harness::moto::ProdLikeTimes;
use bottlesync_core::ports::fleet_ledger::BottleState;
use bottlesync_core::run::messages::{TITLE_COMPLETE, TITLE_FAILED};
use bottlesync_loadtest::{BottleInfo, Catalog, SizeModel};
use common::stack::*;
use common::*;

/// Far beyond what a healthy run of this size takes here (about a minute),
/// and beyond a stranded claim's lease: only a run that cannot end hits it.
const OVERALL_TIMEOUT: Duration = Duration::from_secs(300);
const SEED: u64 = 9;
/// Formulae of the generated catalog (about 100 bottles to mirror): enough
/// writes for the faults to reach every kind of ledger and queue call, few
/// enough for moto to serve in a minute.
const FORMULAE: usize = 22;

fn catalog() -> Catalog {
    Catalog::generated(FORMULAE, SEED, SizeModel::log_normal(8 << 10, 256 << 10))
}

/// Waits for the workers, killing them all when `deadline` passes.
async fn wait_until(mut children: Vec<Child>, deadline: Instant) -> (Vec<Run>, bool) {
    let mut timed_out = false;
    loop {
        let all_done = children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(Some(_))));
        if all_done {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            for child in &mut children {
                let _ = child.kill();
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (Stack::wait_all(children).await, timed_out)
}

/// Why the run did not end: each bottle the ledger has not settled, and
/// the workers' warnings about it.
async fn diagnosis(stack: &Stack, runs: &[Run]) -> String {
    let mut out = String::new();
    if let Ok(states) = stack.adapters().ledger.bottle_states().await {
        for (sha, state) in states {
            if !matches!(state, BottleState::Stored(_)) {
                out.push_str(&format!("ledger: {sha} {state:?}\n"));
            }
        }
    }
    if let Ok(Some(run)) = stack.adapters().ledger.latest_run().await {
        out.push_str(&format!(
            "run {}: expected {} stored {} skipped {} failed {} state {:?} summary_sent {}\n",
            run.run_id,
            run.expected,
            run.stored,
            run.skipped,
            run.failed,
            run.state,
            run.summary_sent
        ));
    }
    out.push_str(&format!("DLQ depth: {}\n", stack.dlq_depth().await));
    out.push_str(&format!("faults injected: {:?}\n", stack.injected_faults()));
    for (i, run) in runs.iter().enumerate() {
        let interesting: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| {
                l.contains("WARN") || l.contains("ERROR") || l.contains("claimed by another")
            })
            .collect();
        out.push_str(&format!(
            "--- worker {i} (exit {}), {} warnings and errors, the last 40:\n{}\n",
            run.code,
            interesting.len(),
            interesting[interesting.len().saturating_sub(40)..].join("\n")
        ));
    }
    out
}

/// A plain fan-out through the lossy proxy at 15% of DynamoDB and SQS write
/// answers, 3 `work --drain` workers, production-like ratios: the run ends
/// with exactly one summary, and every bottle is accounted for (stored with
/// its digest, or counted failed and named in the summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_through_lossy_dynamodb_and_sqs_ends_with_one_summary_and_every_bottle_accounted_for()
 {
    let times = ProdLikeTimes::SCALED;
    let plan = FaultPlan::dynamodb_and_sqs_writes(
        SEED,
        0.15,
        Duration::from_secs_f64(times.hold_answer_secs),
    );
    let stack = Stack::start_with(catalog(), StackOptions::prod_like().lossy(plan)).await;
    let expected: BTreeMap<String, BottleInfo> =
        expected_bottles(&stack.standin, &AUTO_TAGS, false);
    let deadline = Instant::now() + OVERALL_TIMEOUT;

    // The planner goes through the proxy too. A call whose every attempt
    // is lost (0.15^3 per call) fails the plan: it is run again, as
    // Lambda's asynchronous invocation retries a failed planner twice.
    let mut planned = run(stack.command(&["plan", "--date", DATE])).await;
    for retry in 1..=2 {
        if planned.code == 0 {
            break;
        }
        println!(
            "plan failed (Lambda retries it, retry {retry}):\n{}",
            planned.stderr
        );
        planned = run(stack.command(&["plan", "--date", DATE])).await;
    }
    planned.assert_code(0);
    println!(
        "{} bottles expected; plan: {}",
        expected.len(),
        planned.stdout.trim()
    );
    let workers = (0..3)
        .map(|_| stack.spawn_worker(&["--concurrency", "3"]))
        .collect();
    let (runs, timed_out) = wait_until(workers, deadline).await;
    let faults = stack.injected_faults();
    let injected: u64 = faults.values().map(|t| t.total()).sum();
    println!("faults injected: {faults:?}");

    let summaries: Vec<String> = stack
        .webhook
        .messages()
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .filter(|t| t.starts_with(TITLE_COMPLETE) || t.starts_with(TITLE_FAILED))
        .collect();
    if timed_out || summaries.len() != 1 {
        panic!(
            "the run did not end with exactly one summary ({} summaries{}; plan: {})\n{}",
            summaries.len(),
            if timed_out {
                format!(", workers killed after {OVERALL_TIMEOUT:?}")
            } else {
                String::new()
            },
            planned.stdout.trim(),
            diagnosis(&stack, &runs).await
        );
    }
    assert!(
        injected >= 10,
        "the proxy injected only {injected} faults: the test proved nothing"
    );
    let summary = &summaries[0];

    // Every bottle stored once with its digest, or failed and named.
    let objects = stack.objects().await;
    let mut unaccounted = Vec::new();
    let mut failed = BTreeSet::new();
    for (sha, bottle) in &expected {
        let key = format!("{PREFIX}/{DATE}/{}", bottle.mirror_file_name);
        if objects.contains(&key) {
            assert_eq!(stack.object_sha256(&key).await, *sha, "{key}");
        } else if summary.contains(&sha[..12]) {
            failed.insert(sha.clone());
        } else {
            unaccounted.push(bottle.mirror_file_name.clone());
        }
    }
    assert!(
        unaccounted.is_empty(),
        "neither stored nor named as failed: {unaccounted:?}\n{summary}\n{}",
        diagnosis(&stack, &runs).await
    );
    let stored = expected.len() - failed.len();
    assert!(
        summary.contains(&format!("New bottles: {stored}")),
        "{summary}"
    );
    assert_eq!(
        stack.hash_file_keys().await,
        expected
            .keys()
            .filter(|sha| !failed.contains(*sha))
            .cloned()
            .collect::<BTreeSet<_>>()
    );
    stack.assert_no_partial_uploads().await;
}

/// Issue 19, scenario 7. Fails on the previous worker: a `complete` whose
/// TransactWriteItems failed (500 before landing, every SDK attempt) gave
/// the message back at once and released the claim, and the next receive
/// downloaded the bottle again although its verified bytes were in S3. Now
/// the record is retried in place (three attempts), and a receive whose
/// bottle is already committed (its object's `sha256` metadata, one HEAD)
/// records it without downloading: here the first bottle's nine failed
/// calls exhaust the in-place attempts, so both paths are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_bottle_whose_record_failed_is_never_downloaded_again() {
    // The proxy only counts, and answers 500 when told to.
    let counting = FaultPlan {
        seed: SEED,
        lost_answer: 0.0,
        held_answer: 0.0,
        hold_for: Duration::from_secs(1),
        apis: BTreeSet::new(),
    };
    let stack = Stack::start_with(small_catalog(), StackOptions::prod_like().lossy(counting)).await;
    let expected: BTreeMap<String, BottleInfo> =
        expected_bottles(&stack.standin, &AUTO_TAGS, false);
    let planned = stack.plan().await;
    assert_eq!(planned["enqueued"], expected.len());
    let dynamodb = &stack.proxies.as_ref().unwrap().dynamodb;
    let before = dynamodb
        .counts()
        .get("DynamoDB.TransactWriteItems")
        .copied()
        .unwrap_or(0);
    dynamodb.answer_500_to_next("DynamoDB.TransactWriteItems", 9);
    let worker = stack.spawn_worker(&["--concurrency", "1"]);
    let (runs, timed_out) = wait_until(vec![worker], Instant::now() + OVERALL_TIMEOUT).await;
    assert!(!timed_out, "{}", diagnosis(&stack, &runs).await);
    let after = dynamodb
        .counts()
        .get("DynamoDB.TransactWriteItems")
        .copied()
        .unwrap_or(0);
    assert!(
        after - before > 9,
        "the 500s were answered ({before} -> {after} calls)"
    );

    let stats = stack.standin.stats();
    let fetched_again: Vec<String> = expected
        .iter()
        .filter(|(sha, _)| stats.bottle(sha).storage_gets != 1)
        .map(|(sha, b)| {
            format!(
                "{} ({} GETs)",
                b.mirror_file_name,
                stats.bottle(sha).storage_gets
            )
        })
        .collect();
    assert!(
        fetched_again.is_empty(),
        "downloaded more than once: {fetched_again:?}"
    );
    assert_eq!(
        stack.hash_file_keys().await,
        expected.keys().cloned().collect::<BTreeSet<_>>()
    );
    let summaries: Vec<String> = stack
        .webhook
        .messages()
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .filter(|t| t.starts_with(TITLE_COMPLETE) || t.starts_with(TITLE_FAILED))
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(summaries[0].starts_with(TITLE_COMPLETE), "{}", summaries[0]);
}
