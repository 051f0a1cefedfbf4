//! The CI preset of the fleet load and chaos run (`bottlesync-load --preset
//! ci`): a few hundred bottles with every kind of fault, three `bottlesync
//! work` processes on moto_server, one of them SIGKILLed mid-run. The run's
//! end state must be exactly right (see `bottlesync_load::verify`).

use std::path::Path;

use bottlesync_load::report::Report;
use bottlesync_load::{Backend, LoadOptions};

/// Why a run failed, first, then the end of each process's log (the
/// workers log to `<out>/logs/`, not to the test's output).
fn failure(report: &Report, out: &Path) -> String {
    let mut text = format!(
        "FAILED: problems {:?}, worker problems {:?}, timed out {}\n",
        report.verdict.problems, report.worker_problems, report.timed_out
    );
    let logs = std::fs::read_dir(out.join("logs")).into_iter().flatten();
    for log in logs.flatten() {
        let content = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<&str> = content.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        text += &format!(
            "--- {} (last {} lines)\n{}\n",
            log.path().display(),
            tail.len(),
            tail.join("\n")
        );
    }
    text + &report.markdown()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ci_preset_survives_faults_and_a_kill_with_a_correct_end_state() {
    let out = tempfile::tempdir().unwrap();
    let mut options = LoadOptions::preset("ci").unwrap();
    assert_eq!(options.backend, Backend::Moto);
    options.bottlesync = env!("CARGO_BIN_EXE_bottlesync").into();
    options.out_dir = out.path().to_path_buf();

    let report = bottlesync_load::run(&options).await.unwrap();
    assert!(report.passed(), "{}", failure(&report, out.path()));
    let markdown = report.markdown();
    assert_eq!(report.kills, 1, "{markdown}");
    assert!(report.bottles >= 300, "{markdown}");
    assert!(report.faults.values().sum::<usize>() > 10, "{markdown}");
    for file in ["report.json", "report.md", "timeline.csv"] {
        assert!(out.path().join(file).exists(), "{file} not written");
    }
    println!("{markdown}");
}

/// `bottlesync-load --preset prod-like-ci`: production's lease, visibility
/// and receive ratios scaled down in time, 15% of the fleet's DynamoDB and
/// SQS write answers lost or held, a worker SIGKILLed mid-bottle, a Slack
/// outage over the summary, and the planner killed between two sends and
/// rerun. Every run must end with exactly one summary and every bottle be
/// accounted for. Fails on the code before issue 9's fixes (stranded
/// claims, an undrainable run after the planner's kill, a lost summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prod_like_preset_ends_every_run_with_one_summary_and_every_bottle_accounted_for() {
    let out = tempfile::tempdir().unwrap();
    let mut options = LoadOptions::preset("prod-like-ci").unwrap();
    assert!(options.planner_kill && options.slack_outage.is_some());
    options.bottlesync = env!("CARGO_BIN_EXE_bottlesync").into();
    options.out_dir = out.path().to_path_buf();

    let report = bottlesync_load::run(&options).await.unwrap();
    assert!(report.passed(), "{}", failure(&report, out.path()));
    let markdown = report.markdown();
    assert!(report.kills >= 1, "{markdown}");
    let injected: u64 = report.aws_faults.values().map(|t| t.total()).sum();
    assert!(
        injected >= 10,
        "only {injected} AWS faults injected\n{markdown}"
    );
    assert!(
        report.slack_outage.is_some_and(|(_, refused)| refused >= 1),
        "the Slack outage refused nothing\n{markdown}"
    );
    println!("{markdown}");
}
