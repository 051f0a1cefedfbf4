//! A `sync` killed with SIGKILL in the middle of a large bottle leaves no
//! file at a final name, and the rerun completes without fetching again
//! what was already stored.

mod common;

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
    let journal = dest.join(".bottlesync/journal");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let journaled = files_below(&journal).len();
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
