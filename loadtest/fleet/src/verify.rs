//! The end-state check of a load run, as a pure function of what was
//! expected and what was found, so that it is tested on its own.

use std::collections::{BTreeMap, BTreeSet};

use bottlesync_core::run::messages::{FAILURES_SHOWN, TITLE_COMPLETE, TITLE_FAILED};
use serde::Serialize;

use crate::world::{ExpectedBottle, FaultKind};

/// What a run left behind, collected by the backend.
#[derive(Clone, Debug, Default)]
pub struct EndState {
    /// Every object (file) in the bucket (mirror directory), with the sha256
    /// of its content; keys relative to the bucket (directory).
    pub objects: BTreeMap<String, String>,
    /// Multipart uploads never completed or aborted (S3 only).
    pub incomplete_uploads: Vec<String>,
    /// The sha256 named by each DLQ message (`None`: not a bottle message).
    pub dlq: Vec<Option<String>>,
    /// The run record's counters.
    pub run: RunCounts,
    /// Every other run in the ledger, by id (a killed planner's, or its
    /// rerun's when the rerun did not resume it).
    pub other_runs: Vec<(String, RunCounts)>,
    /// The sha256 keys of `bottles_hash.json`.
    pub hash_file: Option<BTreeSet<String>>,
    /// Every Slack message's text, in order.
    pub messages: Vec<String>,
    /// Storage GETs per bottle, from the stand-in.
    pub downloads: BTreeMap<String, u64>,
    /// For each bottle, how many killed workers held its claim when killed.
    pub held_at_kills: BTreeMap<String, u64>,
    /// Workers were killed: a source copy whose delete a killed worker
    /// never sent (the ECS loop batches deletes for up to 0.5 s after the
    /// copy went to the DLQ) is dead-lettered again, as SQS's at-least-once
    /// delivery allows. Which bottle a killed worker was dead-lettering is
    /// not known (its claim was already released), so this stays a
    /// fleet-wide allowance, used only when there were kills.
    pub dlq_copies_allowed_by_kills: bool,
    /// Per bottle (sha256): how many SQS write answers naming one of its
    /// messages the lossy proxy lost or held
    /// (`AwsRequestCounter::faulted_sqs_messages`). Each explains one extra
    /// download (a visibility change not confirmed in time: the message
    /// reappears while its worker still holds it, a later receive takes the
    /// claim over, the bottle comes down twice, counted once) or one extra
    /// dead letter (a DLQ send retried after its answer was lost, a delete
    /// not confirmed): of that bottle only.
    pub lost_answers_by_bottle: BTreeMap<String, u64>,
    /// What `bottlesync verify` finds wrong with the published brew view
    /// (`core::brew::verify`): each finding's sha256 and line. `None` when
    /// no API files were published.
    pub published_view: Option<Vec<(String, String)>>,
    /// Bottles whose ledger mark (queued, or claimed) outlived the runs.
    pub marks_left: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub expected: u64,
    pub stored: u64,
    pub skipped: u64,
    pub failed: u64,
    pub summary_sent: bool,
}

impl RunCounts {
    pub fn of(run: &bottlesync_core::run::record::RunRecord) -> RunCounts {
        RunCounts {
            expected: run.expected,
            stored: run.stored,
            skipped: run.skipped,
            failed: run.failed,
            summary_sent: run.summary_sent,
        }
    }
}

/// Where objects live: `<key_prefix><date>/<mirror file name>` and
/// `<key_prefix>bottles_hash.json`.
#[derive(Clone, Debug)]
pub struct Layout {
    pub key_prefix: String,
    pub date: String,
}

impl Layout {
    pub fn bottle_key(&self, bottle: &ExpectedBottle) -> String {
        format!(
            "{}{}/{}",
            self.key_prefix, self.date, bottle.info.mirror_file_name
        )
    }

    /// The flat copy brew requests (`bottles/<mirror file name>`).
    pub fn flat_key(&self, bottle: &ExpectedBottle) -> String {
        format!(
            "{}bottles/{}",
            self.key_prefix, bottle.info.mirror_file_name
        )
    }

    /// The brew view's documents: the API files and the image indexes
    /// (checked as brew uses them by `tests/brew_mirror.rs`).
    pub fn is_brew_document(&self, key: &str) -> bool {
        key.starts_with(&format!("{}api/", self.key_prefix))
            || (key.starts_with(&format!("{}bottles/", self.key_prefix))
                && key.contains("/manifests/"))
    }

    pub fn hash_file_key(&self) -> String {
        format!("{}bottles_hash.json", self.key_prefix)
    }

    /// Where the fleet keeps its own records (`.bottlesync/`: run
    /// manifests, locks): not part of the mirror.
    pub fn records_prefix(&self) -> String {
        format!("{}.bottlesync/", self.key_prefix)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// Empty when the run is correct.
    pub problems: Vec<String>,
    /// Downloads beyond one per bottle caused by faults (range resumes).
    pub redownloads_by_faults: u64,
    /// Downloads beyond that, each of a bottle a killed worker held.
    pub redownloads_by_kills: u64,
    /// Downloads beyond those, each explained by a lost or held SQS answer
    /// about that bottle (`EndState::lost_answers_by_bottle`).
    pub redownloads_by_lost_answers: u64,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every promise of the fleet against the end state.
pub fn verify(
    expected: &BTreeMap<String, ExpectedBottle>,
    layout: &Layout,
    end: &EndState,
) -> Verdict {
    let mut verdict = Verdict::default();
    let problems = &mut verdict.problems;
    let corrupt: BTreeSet<&String> = expected
        .iter()
        .filter(|(_, b)| b.fault == Some(FaultKind::Corrupt))
        .map(|(sha, _)| sha)
        .collect();
    let storable = expected.len() - corrupt.len();

    // Every non-corrupt bottle exactly once in the dated folder and once
    // as its flat copy, right digest, right name; nothing else.
    let mut wanted: BTreeMap<String, &str> = expected
        .iter()
        .filter(|(sha, _)| !corrupt.contains(sha))
        .flat_map(|(sha, bottle)| {
            [
                (layout.bottle_key(bottle), sha.as_str()),
                (layout.flat_key(bottle), sha.as_str()),
            ]
        })
        .collect();
    for (key, digest) in &end.objects {
        // The hash file, the fleet's own records (run manifests, locks)
        // and the brew view's documents.
        if *key == layout.hash_file_key()
            || key.starts_with(&layout.records_prefix())
            || layout.is_brew_document(key)
        {
            continue;
        }
        match wanted.remove(key) {
            Some(sha) if sha == digest => {}
            Some(sha) => problems.push(format!("{key}: sha256 {digest}, expected {sha}")),
            None => problems.push(format!("{key}: an object nobody asked for")),
        }
    }
    for key in wanted.keys() {
        problems.push(format!("{key}: missing"));
    }
    if !end.objects.contains_key(&layout.hash_file_key()) {
        problems.push(format!("{}: missing", layout.hash_file_key()));
    }
    for upload in &end.incomplete_uploads {
        problems.push(format!("incomplete multipart upload left behind: {upload}"));
    }

    // One download per bottle, except what its own fault, the kills that
    // found it claimed and the SQS answers about it that were lost explain.
    let mut lost_answers_left = end.lost_answers_by_bottle.clone();
    for (sha, bottle) in expected {
        let downloads = end.downloads.get(sha).copied().unwrap_or(0);
        if corrupt.contains(sha) {
            continue;
        }
        let by_fault = bottle.fault.map_or(0, FaultKind::extra_downloads);
        let by_kills = end.held_at_kills.get(sha).copied().unwrap_or(0);
        if downloads == 0 {
            problems.push(format!(
                "{}: never downloaded",
                bottle.info.mirror_file_name
            ));
            continue;
        }
        let extra = downloads - 1;
        let fault_part = extra.min(by_fault);
        let kill_part = (extra - fault_part).min(by_kills);
        let lost_answer_part = extra - fault_part - kill_part;
        verdict.redownloads_by_faults += fault_part;
        verdict.redownloads_by_kills += kill_part;
        let lost_answers = lost_answers_left.entry(sha.to_string()).or_default();
        if lost_answer_part > *lost_answers {
            problems.push(format!(
                "{}: downloaded {downloads} times ({by_fault} extra explained by its fault, \
                 {by_kills} by kills, {lost_answers} by lost SQS answers about it)",
                bottle.info.mirror_file_name
            ));
        } else {
            *lost_answers -= lost_answer_part;
            verdict.redownloads_by_lost_answers += lost_answer_part;
        }
    }

    // Every corrupt bottle in the DLQ, once; nothing else there.
    let mut in_dlq: BTreeMap<String, usize> = BTreeMap::new();
    for letter in &end.dlq {
        match letter {
            Some(sha) => *in_dlq.entry(sha.clone()).or_default() += 1,
            None => problems.push("DLQ: a message that is not a bottle message".into()),
        }
    }
    for sha in &corrupt {
        match in_dlq.remove(*sha) {
            Some(1) => {}
            Some(n) if end.dlq_copies_allowed_by_kills => {
                tracing::info!(
                    sha,
                    copies = n,
                    "extra DLQ copies allowed: workers were killed"
                );
            }
            Some(n) if (n as u64 - 1) <= lost_answers_left.get(*sha).copied().unwrap_or(0) => {}
            Some(n) => problems.push(format!(
                "DLQ: {sha} is there {n} times ({} lost SQS answers about it)",
                end.lost_answers_by_bottle.get(*sha).copied().unwrap_or(0)
            )),
            None => problems.push(format!("DLQ: corrupt bottle {sha} is missing")),
        }
    }
    for sha in in_dlq.keys() {
        problems.push(format!("DLQ: {sha} should not be there"));
    }

    // The ledger, the hash file and the summary agree.
    let want_run = RunCounts {
        expected: expected.len() as u64,
        stored: storable as u64,
        skipped: 0,
        failed: corrupt.len() as u64,
        summary_sent: true,
    };
    if end.other_runs.is_empty() {
        if end.run != want_run {
            problems.push(format!("run record {:?}, expected {want_run:?}", end.run));
        }
    } else {
        // Several runs (a killed planner and its rerun): together they
        // must account for every bottle once, and each must have ended.
        let mut total = RunCounts {
            summary_sent: true,
            ..RunCounts::default()
        };
        for run in std::iter::once(&end.run).chain(end.other_runs.iter().map(|(_, r)| r)) {
            total.expected += run.expected;
            total.stored += run.stored;
            total.skipped += run.skipped;
            total.failed += run.failed;
            total.summary_sent &= run.summary_sent;
        }
        if total != want_run {
            problems.push(format!(
                "{} runs together {total:?}, expected {want_run:?} (other runs: {:?})",
                1 + end.other_runs.len(),
                end.other_runs
            ));
        }
    }
    match &end.hash_file {
        None => problems.push("bottles_hash.json unreadable".into()),
        Some(keys) => {
            let want: BTreeSet<String> = expected
                .keys()
                .filter(|sha| !corrupt.contains(sha))
                .cloned()
                .collect();
            if *keys != want {
                problems.push(format!(
                    "bottles_hash.json: {} missing, {} extra",
                    want.difference(keys).count(),
                    keys.difference(&want).count()
                ));
            }
        }
    }
    let summaries: Vec<&String> = end
        .messages
        .iter()
        .filter(|m| m.starts_with(TITLE_COMPLETE) || m.starts_with(TITLE_FAILED))
        .collect();
    let runs = 1 + end.other_runs.len();
    // Each run ended on its own: drained (every bottle it expected
    // counted) and summarised.
    for (id, run) in std::iter::once(("the run", &end.run))
        .chain(end.other_runs.iter().map(|(id, r)| (id.as_str(), r)))
    {
        if run.stored + run.skipped + run.failed != run.expected || !run.summary_sent {
            problems.push(format!("{id} did not end: {run:?}"));
        }
    }
    match summaries.as_slice() {
        [summary] if runs == 1 => check_summary(summary, storable, &corrupt, problems),
        other if other.len() == runs => {}
        other => problems.push(format!(
            "{} summaries, expected exactly one per run ({runs})",
            other.len()
        )),
    }
    check_view_and_marks(&corrupt, end, problems);
    verdict
}

/// The published view names only bottles `bottles/` holds with their
/// digest (a corrupt one, which failed, is missing and named missing), and
/// no ledger mark outlives the runs.
fn check_view_and_marks(corrupt: &BTreeSet<&String>, end: &EndState, problems: &mut Vec<String>) {
    match &end.published_view {
        None => problems.push("no API files were published".into()),
        Some(findings) => {
            for (sha, line) in findings {
                let missing_corrupt =
                    corrupt.contains(sha) && line.contains("missing from bottles/");
                if !missing_corrupt {
                    problems.push(format!("published view: {}", line.trim()));
                }
            }
        }
    }
    for sha in &end.marks_left {
        problems.push(format!(
            "ledger: {sha} is still queued or claimed after the runs"
        ));
    }
}

fn check_summary(
    summary: &str,
    storable: usize,
    corrupt: &BTreeSet<&String>,
    problems: &mut Vec<String>,
) {
    let title = if corrupt.is_empty() {
        TITLE_COMPLETE
    } else {
        TITLE_FAILED
    };
    if !summary.starts_with(title) {
        problems.push(format!("summary is not {title:?}"));
    }
    for (label, count) in [
        ("New bottles", storable),
        ("Skipped", 0),
        ("Failed", corrupt.len()),
    ] {
        if !summary.contains(&format!("{label}: {count}")) {
            problems.push(format!("summary does not say \"{label}: {count}\""));
        }
    }
    // Failures are named by the first 12 hex digits of their sha256.
    let named = corrupt
        .iter()
        .filter(|sha| summary.contains(&format!("({})", &sha[..12])))
        .count();
    if named != corrupt.len().min(FAILURES_SHOWN) {
        problems.push(format!(
            "summary names {named} of the {} corrupt bottles",
            corrupt.len()
        ));
    }
    if corrupt.len() > FAILURES_SHOWN
        && !summary.contains(&format!("and {} more", corrupt.len() - FAILURES_SHOWN))
    {
        problems.push("summary does not count the failures it does not name".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottlesync_loadtest::BottleInfo;

    fn bottle(sha: &str, fault: Option<FaultKind>) -> (String, ExpectedBottle) {
        let info = BottleInfo {
            name: format!("f{}", &sha[..2]),
            version: "1.0".into(),
            revision: 0,
            rebuild: 0,
            pkg_version: "1.0".into(),
            version_rebuild: "1.0".into(),
            image: "f".into(),
            tag: "arm64_tahoe".into(),
            cellar: ":any".into(),
            sha256: sha.into(),
            size: 10,
            url: String::new(),
            mirror_file_name: format!("f{}-1.0.arm64_tahoe.bottle.tar.gz", &sha[..2]),
            disabled: false,
            deprecated: false,
            legacy_manifest: false,
        };
        (sha.to_string(), ExpectedBottle { info, fault })
    }

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    /// Three bottles: one clean, one truncated once, one corrupt; and the
    /// end state of a correct run over them.
    fn correct_run() -> (BTreeMap<String, ExpectedBottle>, Layout, EndState) {
        let expected: BTreeMap<_, _> = [
            bottle(&sha('a'), None),
            bottle(&sha('b'), Some(FaultKind::Truncate)),
            bottle(&sha('c'), Some(FaultKind::Corrupt)),
        ]
        .into_iter()
        .collect();
        let layout = Layout {
            key_prefix: "brew/".into(),
            date: "2026-11-29".into(),
        };
        let mut objects: BTreeMap<String, String> = ['a', 'b']
            .iter()
            .flat_map(|c| {
                let bottle = &expected[&sha(*c)];
                [
                    (layout.bottle_key(bottle), sha(*c)),
                    (layout.flat_key(bottle), sha(*c)),
                ]
            })
            .collect();
        objects.insert(layout.hash_file_key(), "any".into());
        objects.insert(
            "brew/api/internal/packages.arm64_tahoe.jws.json".into(),
            "any".into(),
        );
        objects.insert("brew/bottles/f/manifests/1.0".into(), "any".into());
        objects.insert("brew/.bottlesync/runs/r1.json".into(), "any".into());
        let summary = format!(
            "{TITLE_FAILED}\nNew bottles: 2\nSkipped: 0\nFailed: 1\n• fcc arm64_tahoe ({}): sha256 mismatch",
            &sha('c')[..12]
        );
        let end = EndState {
            objects,
            incomplete_uploads: vec![],
            dlq: vec![Some(sha('c'))],
            run: RunCounts {
                expected: 3,
                stored: 2,
                skipped: 0,
                failed: 1,
                summary_sent: true,
            },
            other_runs: vec![],
            hash_file: Some([sha('a'), sha('b')].into_iter().collect()),
            messages: vec!["🚀 started".into(), summary],
            downloads: [(sha('a'), 2), (sha('b'), 2), (sha('c'), 3)]
                .into_iter()
                .collect(),
            held_at_kills: [(sha('a'), 1)].into_iter().collect(),
            dlq_copies_allowed_by_kills: false,
            lost_answers_by_bottle: BTreeMap::new(),
            published_view: Some(vec![(
                sha('c'),
                "  fcc-1.0.arm64_tahoe.bottle.tar.gz (fcc): missing from bottles/\n".into(),
            )]),
            marks_left: vec![],
        };
        (expected, layout, end)
    }

    #[test]
    fn a_correct_run_passes_and_its_redownloads_are_accounted_for() {
        let (expected, layout, end) = correct_run();
        let verdict = verify(&expected, &layout, &end);
        assert!(verdict.passed(), "{:?}", verdict.problems);
        assert_eq!(verdict.redownloads_by_faults, 1);
        assert_eq!(verdict.redownloads_by_kills, 1);
    }

    #[test]
    fn an_extra_download_needs_a_lost_visibility_answer_to_explain_it() {
        let (expected, layout, mut end) = correct_run();
        let unexplained = |end: &EndState| {
            let verdict = verify(&expected, &layout, end);
            let found = verdict
                .problems
                .iter()
                .any(|p| p.contains("downloaded 3 times"));
            assert!(found, "{:?}", verdict.problems);
        };
        // `a`: once more than its kill explains.
        end.downloads.insert(sha('a'), 3);
        unexplained(&end);
        // A lost answer about another bottle explains nothing here.
        end.lost_answers_by_bottle.insert(sha('b'), 1);
        unexplained(&end);
        end.lost_answers_by_bottle.insert(sha('a'), 1);
        let verdict = verify(&expected, &layout, &end);
        assert!(verdict.passed(), "{:?}", verdict.problems);
        assert_eq!(verdict.redownloads_by_lost_answers, 1);
        assert_eq!(verdict.redownloads_by_kills, 1);
    }

    #[test]
    fn a_second_dead_letter_needs_a_lost_answer_about_its_bottle() {
        let (expected, layout, mut end) = correct_run();
        let corrupt = end.dlq[0].clone().expect("the corrupt bottle's letter");
        end.dlq.push(Some(corrupt.clone()));
        let twice = |end: &EndState| {
            verify(&expected, &layout, end)
                .problems
                .iter()
                .any(|p| p.contains("is there 2 times"))
        };
        assert!(twice(&end));
        end.lost_answers_by_bottle.insert(sha('a'), 1);
        assert!(twice(&end), "another bottle's lost answer explains nothing");
        end.lost_answers_by_bottle.insert(corrupt, 1);
        assert!(!twice(&end));
    }

    #[test]
    fn a_killed_planner_and_its_rerun_pass_when_together_they_account_for_everything() {
        let (expected, layout, mut end) = correct_run();
        // The killed planner's run sent one bottle; the rerun the other two.
        end.run = RunCounts {
            expected: 2,
            stored: 1,
            skipped: 0,
            failed: 1,
            summary_sent: true,
        };
        end.other_runs = vec![(
            "r0".into(),
            RunCounts {
                expected: 1,
                stored: 1,
                skipped: 0,
                failed: 0,
                summary_sent: true,
            },
        )];
        end.messages
            .push(format!("{TITLE_COMPLETE}\nNew bottles: 1"));
        let verdict = verify(&expected, &layout, &end);
        assert!(verdict.passed(), "{:?}", verdict.problems);
    }

    #[test]
    fn each_broken_promise_is_reported() {
        let (expected, layout, good) = correct_run();
        type Breakage = Box<dyn Fn(&mut EndState)>;
        let cases: Vec<(&str, Breakage)> = vec![
            (
                "missing",
                Box::new(|e| {
                    e.objects.retain(|k, _| !k.contains("faa"));
                }),
            ),
            (
                "bottles/faa-1.0.arm64_tahoe.bottle.tar.gz: missing",
                Box::new(|e| {
                    // The dated file is there, its flat copy is not.
                    e.objects.retain(|k, _| !k.contains("bottles/faa"));
                }),
            ),
            (
                "sha256",
                Box::new(|e| {
                    for (k, v) in e.objects.iter_mut() {
                        if k.contains("faa") {
                            *v = "0".repeat(64);
                        }
                    }
                }),
            ),
            (
                "nobody asked",
                Box::new(|e| {
                    e.objects
                        .insert("brew/2026-11-29/x.tar.gz".into(), "x".into());
                }),
            ),
            (
                "incomplete",
                Box::new(|e| e.incomplete_uploads.push("brew/k".into())),
            ),
            (
                "downloaded 2 times",
                Box::new(|e| {
                    e.held_at_kills.clear();
                }),
            ),
            ("DLQ: corrupt", Box::new(|e| e.dlq.clear())),
            (
                "should not be there",
                Box::new(|e| e.dlq.push(Some(sha('a')))),
            ),
            ("run record", Box::new(|e| e.run.stored = 3)),
            (
                "bottles_hash.json",
                Box::new(|e| {
                    e.hash_file.as_mut().unwrap().remove(&sha('b'));
                }),
            ),
            (
                "summaries",
                Box::new(|e| {
                    let again = e.messages[1].clone();
                    e.messages.push(again);
                }),
            ),
            (
                "names 0",
                Box::new(|e| {
                    e.messages[1] = e.messages[1].replace(&sha('c')[..12], "");
                }),
            ),
            (
                "runs together",
                Box::new(|e| {
                    // A killed planner's run nobody finished.
                    e.other_runs.push((
                        "r2".into(),
                        RunCounts {
                            expected: 1,
                            ..RunCounts::default()
                        },
                    ));
                }),
            ),
            (
                "exactly one per run",
                Box::new(|e| {
                    e.other_runs.push(("r2".into(), RunCounts::default()));
                }),
            ),
            (
                "r2 did not end",
                Box::new(|e| {
                    // Together the runs add up, but r2 was never summarised.
                    e.run.expected = 2;
                    e.run.stored = 1;
                    e.other_runs.push((
                        "r2".into(),
                        RunCounts {
                            expected: 1,
                            stored: 1,
                            ..RunCounts::default()
                        },
                    ));
                    e.messages.push(format!("{TITLE_COMPLETE}\nNew bottles: 1"));
                }),
            ),
            (
                "published view: faa",
                Box::new(|e| {
                    e.published_view
                        .as_mut()
                        .unwrap()
                        .push((sha('a'), "  faa (faa): wrong sha256 (00)\n".into()));
                }),
            ),
            (
                "no API files were published",
                Box::new(|e| e.published_view = None),
            ),
            (
                "still queued or claimed",
                Box::new(|e| e.marks_left.push(sha('b'))),
            ),
        ];
        for (needle, break_it) in cases {
            let mut end = good.clone();
            break_it(&mut end);
            let verdict = verify(&expected, &layout, &end);
            assert!(
                verdict.problems.iter().any(|p| p.contains(needle)),
                "{needle}: {:?}",
                verdict.problems
            );
        }
    }
}
