//! `bottlesync sync`'s summary of a run, as text on stdout and as JSON for
//! `--report`.

use std::time::Duration;

use bottlesync_core::brew::publish::PublishReport;
use bottlesync_worker::pool::PoolOutcome;
use indicatif::{HumanBytes, HumanDuration};
use serde_json::json;

use super::sync_plan::SyncReport;

impl SyncReport<'_> {
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
        super::publication::print_publication(published);
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
}

fn stored_bytes(outcome: &PoolOutcome) -> u64 {
    outcome.stored.iter().map(|(_, bytes)| bytes).sum()
}
