//! `bottlesync sync`'s plan (`--dry-run`), as text on stdout and as JSON
//! for `--report`; what the plan and the summary (`sync_summary`) share.

use std::path::Path;

use bottlesync_core::Error;
use bottlesync_core::model::index::FormulaIndex;
use bottlesync_core::plan::select::Plan;
use indicatif::HumanBytes;
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

    /// Index entries and per-tag API file entries set aside: their
    /// bottles are not mirrored.
    pub(super) fn rejected_entries(&self) -> Vec<String> {
        self.index
            .rejections
            .iter()
            .map(|r| r.to_string())
            .chain(self.plan.rejected_client_entries.iter().cloned())
            .collect()
    }

    pub(super) fn rejected_count(&self) -> usize {
        self.index.rejections.len() + self.plan.rejected_client_entries.len()
    }

    /// Per-tag entries are few and each is a bottle clients will miss, so
    /// each is named (index rejections are logged while the index is read).
    pub(super) fn print_rejected_client_entries(&self) {
        for rejected in &self.plan.rejected_client_entries {
            println!("rejected (not mirrored): {rejected}");
        }
    }
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
