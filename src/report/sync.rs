//! `bottlesync sync`'s output: the plan (`--dry-run`) and the summary, as
//! text on stdout and as JSON for `--report`.

use bottlesync_core::brew::publish::PublishReport;
use std::path::Path;
use std::time::Duration;

use bottlesync_core::Error;
use bottlesync_core::model::index::FormulaIndex;
use bottlesync_core::plan::select::Plan;
use bottlesync_worker::pool::PoolOutcome;
use indicatif::{HumanBytes, HumanDuration};
use serde_json::json;

/// What a run planned, and where to: the summaries are told about it.
pub struct SyncReport<'a> {
    pub plan: &'a Plan,
    pub index: &'a FormulaIndex,
    pub dest: &'a str,
}

impl SyncReport<'_> {
    pub fn print_plan(&self) {
        let plan = self.plan;
        let tags: Vec<&str> = plan.tags.iter().map(|t| t.as_str()).collect();
        println!("tags: {}", tags.join(", "));
        for job in &plan.jobs {
            println!("{:>12}  {}  {}", job.size, job.sha256, job.key);
        }
        println!(
            "plan: {} bottles to fetch ({}), {} already mirrored, {} in the hash file, {} disabled formulae skipped, {} index entries rejected",
            plan.jobs.len(),
            HumanBytes(plan.bytes()),
            plan.already_mirrored.len(),
            plan.in_hash_file.len(),
            plan.skipped_disabled.len(),
            self.rejected_count(),
        );
        self.print_rejected_client_entries();
    }

    pub fn plan_json(&self) -> serde_json::Value {
        let plan = self.plan;
        json!({
            "dest": self.dest,
            "tags": plan.tags,
            "bottles": plan.jobs,
            "bytes": plan.bytes(),
            "already_mirrored": plan.already_mirrored.len(),
            "in_hash_file": plan.in_hash_file.len(),
            "skipped_disabled": plan.skipped_disabled,
            "rejected_entries": self.rejected_entries(),
        })
    }

    pub fn print_summary(
        &self,
        outcome: &PoolOutcome,
        elapsed: Duration,
        mirror_size: usize,
        published: Option<&PublishReport>,
    ) {
        let (plan, bytes) = (self.plan, stored_bytes(outcome));
        let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
        println!(
            "{}: {} new ({}), {} skipped ({} already mirrored, {} in the hash file), {} failed, {} index entries rejected, in {} ({}/s)",
            if outcome.interrupted {
                "interrupted"
            } else {
                "done"
            },
            outcome.stored.len(),
            HumanBytes(bytes),
            plan.already_mirrored.len() + plan.in_hash_file.len(),
            plan.already_mirrored.len(),
            plan.in_hash_file.len(),
            outcome.failed.len(),
            self.rejected_count(),
            HumanDuration(elapsed),
            HumanBytes(rate as u64),
        );
        self.print_rejected_client_entries();
        for failure in &outcome.failed {
            let (job, reason) = (&failure.job, &failure.reason);
            println!("failed: {} ({}): {reason}", job.label(), job.sha256);
        }
        if outcome.not_started > 0 {
            let count = outcome.not_started;
            println!("not started: {count} bottles (a rerun fetches them)");
        }
        match published {
            Some(report) => {
                let files: Vec<&str> = report.api_files.iter().map(|k| k.as_str()).collect();
                println!(
                    "published: {}",
                    if files.is_empty() {
                        "no API files".to_string()
                    } else {
                        files.join(", ")
                    }
                );
                if report.flat_copies > 0 {
                    // Bottles stored before flat copies existed (or whose
                    // copy at commit failed).
                    println!(
                        "made {} missing flat copies under bottles/",
                        report.flat_copies
                    );
                }
                for missing in report.missing_labels() {
                    println!("missing from mirror (brew fetches it upstream): {missing}");
                }
            }
            None => {
                println!("API files not published: the run did not finish (a rerun publishes them)")
            }
        }
        println!(
            "mirror: {} holds {mirror_size} bottles (bottles_hash.json)",
            self.dest
        );
    }

    pub fn summary_json(
        &self,
        outcome: &PoolOutcome,
        elapsed: Duration,
        published: Option<&PublishReport>,
    ) -> serde_json::Value {
        json!({
            "published_api_files": published.map(|p| p.api_files.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
            "missing_from_mirror": published.map(|p| p.missing.clone()).unwrap_or_default(),
            "dest": self.dest,
            "new": outcome.stored.len(),
            "bytes": stored_bytes(outcome),
            "already_mirrored": self.plan.already_mirrored.len(),
            "in_hash_file": self.plan.in_hash_file.len(),
            "failed": outcome.failed.iter().map(|f| json!({
                "name": f.job.name, "tag": f.job.tag, "sha256": f.job.sha256,
                "key": f.job.key, "reason": f.reason,
            })).collect::<Vec<_>>(),
            "not_started": outcome.not_started,
            "interrupted": outcome.interrupted,
            "rejected_entries": self.rejected_entries(),
            "duration_seconds": elapsed.as_secs_f64(),
        })
    }

    /// Index entries and per-tag API file entries set aside: their
    /// bottles are not mirrored.
    fn rejected_entries(&self) -> Vec<String> {
        self.index
            .rejections
            .iter()
            .map(|r| r.to_string())
            .chain(self.plan.rejected_client_entries.iter().cloned())
            .collect()
    }

    fn rejected_count(&self) -> usize {
        self.index.rejections.len() + self.plan.rejected_client_entries.len()
    }

    /// Per-tag entries are few and each is a bottle clients will miss, so
    /// each is named (index rejections are logged while the index is read).
    fn print_rejected_client_entries(&self) {
        for rejected in &self.plan.rejected_client_entries {
            println!("rejected (not mirrored): {rejected}");
        }
    }
}

fn stored_bytes(outcome: &PoolOutcome) -> u64 {
    outcome.stored.iter().map(|(_, bytes)| bytes).sum()
}

/// `--report`: the plan or the summary as JSON (nothing without the flag).
pub fn write_report(path: Option<&Path>, value: serde_json::Value) -> Result<(), Error> {
    let Some(path) = path else {
        return Ok(());
    };
    let text = serde_json::to_vec_pretty(&value).expect("reports serialise");
    std::fs::write(path, text)
        .map_err(|e| Error::config("--report", format!("cannot write {}: {e}", path.display())))
}
