//! Progress messages and metrics of an ECS run, end to end against
//! moto_server and the Homebrew stand-in: `bottlesync plan`, then two
//! `bottlesync work --drain` processes with a one-second progress interval.
//! The Slack stand-in must see progress at most once per interval for the
//! whole fleet (not once per worker), and exactly one summary; the workers'
//! stdout carries one EMF metrics line per bottle.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bottlesync_core::run::messages::{TITLE_COMPLETE, TITLE_PROGRESS, TITLE_STARTED};
use bottlesync_loadtest::{Catalog, Fault, FormulaSpec};
use common::stack::Stack;
use common::*;

const BOTTLES: usize = 60;
const BOTTLE_SIZE: u64 = 60_000;
const INTERVAL_SECONDS: u64 = 1;

/// The shared moto stack's command, with progress every interval and EMF metrics on.
fn command(stack: &Stack, args: &[&str]) -> std::process::Command {
    let interval = INTERVAL_SECONDS.to_string();
    stack.command_with(
        args,
        &[
            ("BOTTLESYNC_PROGRESS_INTERVAL_SECONDS", interval.as_str()),
            ("BOTTLESYNC_METRICS", "emf"),
        ],
    )
}

fn spawn_worker(stack: &Stack) -> Child {
    let mut cmd = command(
        stack,
        &[
            "work",
            "--drain",
            "--drain-grace",
            "2",
            "--retry-delay",
            "1",
            "--concurrency",
            "3",
            "--visibility-timeout",
            "10",
        ],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Small bottles, all served slowly at staggered rates (0.3 to 1.5 s
/// each): two workers with three downloads each take several seconds and
/// count a bottle every fraction of a second, so workers that each kept
/// their own interval would post about twice as often as the fleet may.
fn slow_catalog() -> Catalog {
    Catalog::from_formulae(
        (0..BOTTLES)
            .map(|i| {
                FormulaSpec::new(format!("tool{i:02}"), "1.0").bottle("arm64_tahoe", BOTTLE_SIZE)
            })
            .collect(),
    )
}

fn rate(i: usize) -> u64 {
    40_000 * (1 + (i * 7) as u64 % 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_rate_limited_for_the_whole_fleet() {
    let stack = Stack::start(slow_catalog()).await;
    for i in 0..BOTTLES {
        let bottle = stack
            .standin
            .bottle(&format!("tool{i:02}"), "arm64_tahoe")
            .unwrap();
        stack.standin.set_fault(
            &bottle.sha256,
            Fault::Slow {
                bytes_per_sec: rate(i),
            },
        );
    }

    let plan = run(command(&stack, &["plan", "--date", DATE])).await;
    plan.assert_code(0);
    let planned: serde_json::Value = serde_json::from_str(&plan.stdout)
        .unwrap_or_else(|e| panic!("plan output {e}: {}", plan.stdout));
    assert_eq!(planned["route"], "ecs", "{planned:#}");
    assert_eq!(planned["enqueued"], BOTTLES, "{planned:#}");
    let run_id = planned["run_id"].as_str().unwrap().to_string();

    // Progress can only follow a bottle counted by a worker: the messages
    // fall between the workers' start and the summary, at least one
    // interval apart.
    let began = Instant::now();
    let workers: Vec<Child> = (0..2).map(|_| spawn_worker(&stack)).collect();
    // The run is over when the summary has arrived; the workers then wait
    // out their drain grace, which is not part of the run.
    let deadline = began + Duration::from_secs(120);
    let duration = loop {
        if stack.webhook.titles().iter().any(|t| t == TITLE_COMPLETE) {
            break began.elapsed();
        }
        assert!(Instant::now() < deadline, "no summary after 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let runs = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(|c| Run::from(c.wait_with_output().unwrap()))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for run in &runs {
        run.assert_code(0);
    }

    let titles = stack.webhook.titles();
    let count = |title: &str| titles.iter().filter(|t| *t == title).count();
    let progress = count(TITLE_PROGRESS);
    let limit = (duration.as_secs_f64() / INTERVAL_SECONDS as f64).floor() as usize + 1;
    eprintln!(
        "run took {:.1} s: {progress} progress messages (limit {limit}); titles: {titles:?}",
        duration.as_secs_f64()
    );
    assert!(
        duration > Duration::from_secs(3 * INTERVAL_SECONDS),
        "the run was too quick ({duration:?}) to show rate limiting"
    );
    assert_eq!(titles[0], TITLE_STARTED, "{titles:?}");
    assert_eq!(count(TITLE_STARTED), 1, "{titles:?}");
    assert_eq!(count(TITLE_COMPLETE), 1, "{titles:?}");
    assert_eq!(
        progress + 2,
        titles.len(),
        "only start, progress and complete messages: {titles:?}"
    );
    assert!(progress >= 1, "no progress message in {duration:?}");
    assert!(
        progress <= limit,
        "{progress} progress messages in {duration:?} at one per {INTERVAL_SECONDS} s \
         for the whole fleet (at most {limit})"
    );

    for message in stack.webhook.messages() {
        let text = message["text"].as_str().unwrap();
        if !text.starts_with(TITLE_PROGRESS) {
            continue;
        }
        let done: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Progress: "))
            .and_then(|p| p.split_once('/'))
            .and_then(|(done, _)| done.parse().ok())
            .unwrap_or_else(|| panic!("no Progress line in {text}"));
        assert!(
            done >= 1 && done < BOTTLES as u64,
            "a progress message of a drained run: {text}"
        );
        for needle in [
            format!("/{BOTTLES} ("),
            "Bytes stored: ".to_string(),
            "ETA: ".to_string(),
            "Environment: test".to_string(),
            format!("Run: {run_id}"),
        ] {
            assert!(text.contains(&needle), "no {needle:?} in {text}");
        }
    }

    // Metrics: one EMF line per bottle across both workers' stdout.
    let lines: Vec<serde_json::Value> = runs
        .iter()
        .flat_map(|r| r.stdout.lines())
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\":"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        lines.len(),
        BOTTLES,
        "EMF lines: {lines:#?}\n--- stdout\n{}",
        runs.iter()
            .map(|r| r.stdout.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let mut stored = 0;
    let mut bytes = 0;
    for line in &lines {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "bottlesync");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Environment"]])
        );
        assert_eq!(line["Environment"], "test");
        assert_eq!(line["run_id"], run_id.as_str());
        assert_eq!(line["sha256"].as_str().unwrap().len(), 64);
        assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 0);
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(line[*name].is_number(), "{name} has no value: {line}");
        }
        assert!(names.contains(&"DownloadSeconds"), "{line}");
        assert!(names.contains(&"TimeInQueueSeconds"), "{line}");
        stored += line["BottlesStored"].as_u64().unwrap_or(0);
        bytes += line["BytesStored"].as_u64().unwrap_or(0);
    }
    assert_eq!(stored, BOTTLES as u64);
    assert_eq!(bytes, BOTTLES as u64 * BOTTLE_SIZE);
}
