//! What a load run measured and found: `report.json`, `report.md`,
//! `timeline.csv`, and `timeline.png` drawn from it by `chart.py`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::drive::{Driven, Sample};
use crate::verify::Verdict;
use crate::world::{FaultKind, World};
use crate::{Backend, LoadOptions};

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub options: LoadOptions,
    pub bottles: usize,
    /// Bytes of the bottles that had to be stored (corrupt ones excluded).
    pub bytes: u64,
    pub faults: BTreeMap<FaultKind, usize>,
    pub plan_seconds: f64,
    /// From the first worker's start to the summary.
    pub drain_seconds: f64,
    pub bottles_per_second: f64,
    pub megabytes_per_second: f64,
    /// From the last counted bottle to the summary (±0.25 s).
    pub last_bottle_to_summary_seconds: Option<f64>,
    pub kills: usize,
    /// Bottles whose claim a killed worker held when it was killed.
    pub held_at_kills: usize,
    pub peak_rss_mib: Vec<f64>,
    /// Requests the fleet made (planner and workers), by API (moto backend).
    pub aws_requests: Option<BTreeMap<String, u64>>,
    /// The same, per bottle planned.
    pub aws_requests_per_bottle: Option<f64>,
    /// moto's own GetQueueAttributes rate in this run, at the fleet's concurrency.
    pub moto_bare_requests_per_second: Option<f64>,
    /// moto's TransactWriteItems rate on the ledger table at the end of the run.
    pub moto_transactions_per_second: Option<f64>,
    /// Faults the lossy proxies injected, by API (moto backend).
    pub aws_faults: BTreeMap<String, bottlesync_aws_harness::aws_faults::FaultTally>,
    /// When the Slack outage began (seconds from the first worker) and the
    /// posts Slack refused.
    pub slack_outage: Option<(f64, u64)>,
    pub worker_problems: Vec<String>,
    pub timed_out: bool,
    pub verdict: Verdict,
    #[serde(skip)]
    pub timeline: Vec<Sample>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        options: &LoadOptions,
        world: &World,
        plan_seconds: f64,
        driven: Driven,
        peak_rss: Vec<u64>,
        aws_requests: Option<BTreeMap<String, u64>>,
        moto_bare_requests_per_second: Option<f64>,
        verdict: Verdict,
    ) -> Report {
        let drain_seconds = driven.elapsed.as_secs_f64().max(1e-9);
        let bytes = world.bytes_to_store();
        let bottles = world.bottles.len();
        let aws_requests_per_bottle = aws_requests
            .as_ref()
            .map(|counts| counts.values().sum::<u64>() as f64 / bottles.max(1) as f64);
        Report {
            options: options.clone(),
            bottles,
            bytes,
            faults: world.fault_counts(),
            plan_seconds,
            drain_seconds,
            bottles_per_second: bottles as f64 / drain_seconds,
            megabytes_per_second: bytes as f64 / 1e6 / drain_seconds,
            last_bottle_to_summary_seconds: driven.last_bottle_to_summary.map(|d| d.as_secs_f64()),
            kills: driven.kills,
            held_at_kills: driven.held_at_kills.len(),
            peak_rss_mib: peak_rss
                .iter()
                .map(|b| *b as f64 / (1 << 20) as f64)
                .collect(),
            aws_requests,
            aws_requests_per_bottle,
            moto_bare_requests_per_second,
            moto_transactions_per_second: None,
            aws_faults: BTreeMap::new(),
            slack_outage: driven
                .slack_outage
                .map(|(at, refused)| (at.as_secs_f64(), refused)),
            worker_problems: driven.problems,
            timed_out: driven.timed_out,
            verdict,
            timeline: driven.samples,
        }
    }

    pub fn with_aws_faults(
        mut self,
        faults: BTreeMap<String, bottlesync_aws_harness::aws_faults::FaultTally>,
    ) -> Report {
        self.aws_faults = faults;
        self
    }

    pub fn with_moto_transaction_rate(mut self, per_second: f64) -> Report {
        self.moto_transactions_per_second = Some(per_second);
        self
    }

    /// Passed: verified, in time, no worker failed on its own.
    pub fn passed(&self) -> bool {
        self.verdict.passed() && !self.timed_out && self.worker_problems.is_empty()
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        let mut csv = String::from("seconds,visible,in_flight,dlq,done,stored,workers\n");
        for s in &self.timeline {
            let _ = writeln!(
                csv,
                "{:.2},{},{},{},{},{},{}",
                s.seconds, s.visible, s.in_flight, s.dlq, s.done, s.stored, s.workers
            );
        }
        std::fs::write(dir.join("timeline.csv"), csv)?;
        draw_chart(dir);
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut md = String::new();
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        let _ = writeln!(md, "# Load run: {verdict}\n");
        let _ = writeln!(
            md,
            "{} backend, {} bottles ({:.1} MB to store), {} workers x {} concurrency, \
             {} kill(s), faults {:?}, seed {}.\n",
            match o.backend {
                Backend::Moto => "moto",
                Backend::InProcess => "in-process",
            },
            self.bottles,
            self.bytes as f64 / 1e6,
            o.workers,
            o.concurrency,
            self.kills,
            self.faults,
            o.seed
        );
        let _ = writeln!(md, "| measure | value |\n|---|---|");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(md, "| {k} | {v} |");
        };
        row("plan", format!("{:.1} s", self.plan_seconds));
        row(
            "drain (first worker to summary)",
            format!("{:.1} s", self.drain_seconds),
        );
        row("bottles/s", format!("{:.1}", self.bottles_per_second));
        row("MB/s", format!("{:.2}", self.megabytes_per_second));
        if let Some(s) = self.last_bottle_to_summary_seconds {
            row("last bottle to summary", format!("{s:.2} s"));
        }
        if let (Some(max), Some(min)) = (
            self.peak_rss_mib.iter().copied().reduce(f64::max),
            self.peak_rss_mib.iter().copied().reduce(f64::min),
        ) {
            row(
                "peak RSS per worker",
                format!("{min:.1}-{max:.1} MiB over {}", self.peak_rss_mib.len()),
            );
        }
        if let Some(per) = self.aws_requests_per_bottle {
            row("AWS requests per bottle", format!("{per:.2}"));
        }
        if let (Some(rate), Some(per)) = (
            self.moto_bare_requests_per_second,
            self.aws_requests_per_bottle,
        ) {
            row(
                "moto bare rate (ceiling bottles/s)",
                format!(
                    "{rate:.0} req/s ({:.1} bottles/s; this run {:.0}% of it)",
                    rate / per,
                    100.0 * self.bottles_per_second / (rate / per)
                ),
            );
        }
        if let Some(rate) = self.moto_transactions_per_second {
            row(
                "moto TransactWriteItems at the end (one per bottle)",
                format!("{rate:.1}/s"),
            );
        }
        if o.aws_fault_share > 0.0 {
            let (lost, held) = self
                .aws_faults
                .values()
                .fold((0, 0), |(l, h), t| (l + t.lost_answers, h + t.held_answers));
            row(
                "AWS write answers lost / held (DynamoDB, SQS)",
                format!("{lost} / {held} (at {:.0}%)", 100.0 * o.aws_fault_share),
            );
        }
        row(
            "claim lease / visibility timeout / receives",
            format!(
                "{} s / {} s / {}",
                o.claim_lease_secs, o.visibility_timeout_secs, o.max_receive_count
            ),
        );
        if o.planner_kill {
            row(
                "planner",
                "SIGKILLed after its first SendMessageBatch, then rerun".into(),
            );
        }
        if let Some((at, refused)) = self.slack_outage {
            row(
                "Slack outage",
                format!(
                    "from {at:.0} s until {:?} after the last bottle and a refused post: {refused} posts refused",
                    o.slack_outage.unwrap_or_default()
                ),
            );
        }
        row(
            "bottles held by killed workers",
            self.held_at_kills.to_string(),
        );
        row(
            "re-downloads (faults / kills / lost visibility answers)",
            format!(
                "{} / {} / {}",
                self.verdict.redownloads_by_faults,
                self.verdict.redownloads_by_kills,
                self.verdict.redownloads_by_lost_answers
            ),
        );
        if !self.aws_faults.is_empty() {
            let _ = writeln!(
                md,
                "\n| AWS API | answers lost | answers held |\n|---|---|---|"
            );
            for (api, tally) in &self.aws_faults {
                let _ = writeln!(
                    md,
                    "| {api} | {} | {} |",
                    tally.lost_answers, tally.held_answers
                );
            }
        }
        if let Some(counts) = &self.aws_requests {
            let _ = writeln!(md, "\n| AWS API | requests | per bottle |\n|---|---|---|");
            for (api, n) in counts {
                let _ = writeln!(
                    md,
                    "| {api} | {n} | {:.2} |",
                    *n as f64 / self.bottles.max(1) as f64
                );
            }
        }
        let problems: Vec<&String> = self
            .verdict
            .problems
            .iter()
            .chain(&self.worker_problems)
            .collect();
        if !problems.is_empty() || self.timed_out {
            let _ = writeln!(md, "\n## Problems\n");
            if self.timed_out {
                let _ = writeln!(md, "- timed out after {:?}", o.timeout);
            }
            for p in problems.iter().take(50) {
                let _ = writeln!(md, "- {p}");
            }
            if problems.len() > 50 {
                let _ = writeln!(md, "- ... and {} more", problems.len() - 50);
            }
        }
        md
    }
}

/// `timeline.png`, by `chart.py` with matplotlib (`BOTTLESYNC_PYTHON`, else
/// the project's `.venv/bin/python`, else `python3`). A missing matplotlib
/// is a note, not a failure: the CSV has the same data.
fn draw_chart(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("chart.py");
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let python = std::env::var("BOTTLESYNC_PYTHON").unwrap_or_else(|_| {
        if venv.exists() {
            venv.to_string_lossy().into_owned()
        } else {
            "python3".into()
        }
    });
    let drawn = Command::new(&python)
        .arg(&script)
        .arg(dir.join("timeline.csv"))
        .arg(dir.join("timeline.png"))
        .output();
    match drawn {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "no chart: {} {}: {}",
            python,
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("no chart: cannot run {python}: {e}"),
    }
}
