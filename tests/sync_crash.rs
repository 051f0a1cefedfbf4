//! A `sync` killed with SIGKILL in the middle of a large bottle leaves no
//! file at a final name, and the rerun completes without fetching again
//! what was already stored.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bottlesync_loadtest::{Catalog, Fault, FormulaSpec, StandIn, StandInConfig};
use common::*;

const BIG: u64 = 96 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_bottle_leaves_nothing_partial_and_the_rerun_resumes() {
    let mut formulae = vec![FormulaSpec::new("big", "1.0").bottle("arm64_tahoe", BIG)];
    for i in 0..6 {
        formulae
            .push(FormulaSpec::new(format!("small{i}"), "1.0").bottle("arm64_tahoe", 20_000 + i));
    }
    let standin = StandIn::start(StandInConfig::new(Catalog::from_formulae(formulae)))
        .await
        .unwrap();
    let big = standin.bottle("big", "arm64_tahoe").unwrap();
    let smalls: Vec<_> = standin
        .bottles()
        .into_iter()
        .filter(|b| b.name != "big")
        .collect();
    standin.set_fault(
        &big.sha256,
        Fault::Slow {
            bytes_per_sec: 8 * 1024 * 1024,
        },
    );

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()))
        .args(["--tags", "arm64_tahoe"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();

    // Kill once every small bottle is journaled and the big one is well underway.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let journaled = journaled_bottles(&dest);
        let served = standin.stats().bottle(&big.sha256).bytes_served;
        if journaled == smalls.len() && served > BIG / 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached the kill point ({journaled} journaled, {served} bytes)"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync finished before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let big_path = dest.join(DATE).join(&big.mirror_file_name);
    assert!(
        !big_path.exists(),
        "a partial bottle reached its final name"
    );
    for small in &smalls {
        assert_eq!(
            sha256_file(&dest.join(DATE).join(&small.mirror_file_name)),
            small.sha256
        );
    }

    standin.clear_faults();
    standin.reset_stats();
    let mut cmd = bottlesync();
    cmd.args(sync_args(&standin, dest.to_str().unwrap()))
        .args(["--tags", "arm64_tahoe"]);
    run(cmd).await.assert_code(0);

    let stats = standin.stats();
    assert_eq!(
        stats.bottles.keys().cloned().collect::<Vec<_>>(),
        vec![big.sha256.clone()],
        "only the big bottle is fetched again"
    );
    assert_eq!(sha256_file(&big_path), big.sha256);
    let record = read_hash_file(&dest);
    assert_eq!(
        record["bottles"].as_object().unwrap().len(),
        smalls.len() + 1
    );
    assert!(
        files_below(&dest.join(".bottlesync/tmp")).is_empty(),
        "the rerun clears what the killed run left"
    );
}

/// Sends SIGTERM (what `kill`, `docker stop` and systemd send first).
fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `child` (off the runtime: the stand-in serves meanwhile).
async fn exit_of(child: std::process::Child) -> Run {
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    let output = tokio::time::timeout(Duration::from_secs(60), waited)
        .await
        .expect("sync exits after SIGTERM")
        .unwrap();
    Run::from(output)
}

/// SIGTERM stops `sync` as it stops the fleet: no new bottles, the one in
/// flight gets `--shutdown-grace` (here 1 s, far less than its 32 s at
/// 1 MiB/s), then is abandoned: its upload aborted, nothing at its final
/// name, no temporary file left. What was stored is compacted into
/// bottles_hash.json and the run exits 130. Before: SIGTERM's default
/// action killed the process (no exit status, the temporary file left, the
/// journal not compacted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_bottle_abandons_it_after_the_grace_and_exits_130() {
    const SLOW: u64 = 32 * 1024 * 1024;
    let mut formulae = vec![FormulaSpec::new("big", "1.0").bottle("arm64_tahoe", SLOW)];
    for i in 0..4 {
        formulae
            .push(FormulaSpec::new(format!("small{i}"), "1.0").bottle("arm64_tahoe", 20_000 + i));
    }
    let standin = StandIn::start(StandInConfig::new(Catalog::from_formulae(formulae)))
        .await
        .unwrap();
    let big = standin.bottle("big", "arm64_tahoe").unwrap();
    at_one_mib_per_second(&standin, &big.sha256);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let child = spawn_sync(&standin, &dest, &["--shutdown-grace", "1"]);

    let deadline = Instant::now() + Duration::from_secs(60);
    while journaled_bottles(&dest) < 4
        || standin.stats().bottle(&big.sha256).bytes_served < 2 * 1024 * 1024
    {
        assert!(Instant::now() < deadline, "the transfers never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&child);
    let run = exit_of(child).await;
    run.assert_code(130);
    assert!(
        run.stdout.starts_with("interrupted: 4 new"),
        "{}",
        run.stdout
    );
    assert!(
        standin.stats().bottle(&big.sha256).bytes_served < SLOW,
        "the download was abandoned"
    );
    assert!(
        !dest.join(DATE).join(&big.mirror_file_name).exists(),
        "a partial bottle reached its final name"
    );
    assert!(
        files_below(&dest.join(".bottlesync/tmp")).is_empty(),
        "the abandoned upload was aborted"
    );
    let record = read_hash_file(&dest);
    assert_eq!(record["bottles"].as_object().unwrap().len(), 4);
}

/// Within the grace, the bottle in flight finishes and is stored (verified);
/// the ones not started are left for the rerun, and the run still exits 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_bottle_in_flight_finish_within_the_grace() {
    const SLOW: u64 = 4 * 1024 * 1024;
    let catalog = Catalog::from_formulae(vec![
        FormulaSpec::new("slow", "1.0").bottle("arm64_tahoe", SLOW),
        FormulaSpec::new("next", "1.0").bottle("arm64_tahoe", 30_000),
    ]);
    let standin = StandIn::start(StandInConfig::new(catalog)).await.unwrap();
    let slow = standin.bottle("slow", "arm64_tahoe").unwrap();
    let next = standin.bottle("next", "arm64_tahoe").unwrap();
    at_one_mib_per_second(&standin, &slow.sha256);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mirror");
    let child = spawn_sync(
        &standin,
        &dest,
        &["--concurrency", "1", "--shutdown-grace", "120"],
    );

    // The largest bottle goes first; `next` waits for the only slot.
    let deadline = Instant::now() + Duration::from_secs(60);
    while standin.stats().bottle(&slow.sha256).bytes_served == 0 {
        assert!(Instant::now() < deadline, "the transfer never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&child);
    let run = exit_of(child).await;
    run.assert_code(130);
    assert!(
        run.stdout.starts_with("interrupted: 1 new"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("not started: 1 bottles"),
        "{}",
        run.stdout
    );
    assert_eq!(
        sha256_file(&dest.join(DATE).join(&slow.mirror_file_name)),
        slow.sha256
    );
    assert!(!dest.join(DATE).join(&next.mirror_file_name).exists());
    assert_eq!(standin.stats().bottle(&next.sha256).bytes_served, 0);
    let record = read_hash_file(&dest);
    assert_eq!(record["bottles"].as_object().unwrap().len(), 1);
}

/// `bottlesync sync` of the arm64_tahoe bottles into `dest`, with `extra`
/// flags and its output piped.
fn spawn_sync(standin: &StandIn, dest: &Path, extra: &[&str]) -> std::process::Child {
    let mut cmd = bottlesync();
    cmd.args(sync_args(standin, dest.to_str().unwrap()))
        .args(["--tags", "arm64_tahoe"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Serves the bottle `sha256` at 1 MiB/s, so that it is still in flight
/// when the test signals.
fn at_one_mib_per_second(standin: &StandIn, sha256: &str) {
    standin.set_fault(
        sha256,
        Fault::Slow {
            bytes_per_sec: 1024 * 1024,
        },
    );
}
