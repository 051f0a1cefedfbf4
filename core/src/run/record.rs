//! A fleet run's record: what the planner expected and what the workers
//! counted, with the failures its summary names. The fleet ledger stores it
//! (`ports::fleet_ledger`); `RunRecord::new` is the one way a run begins.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::job::BottleJob;
use crate::plan::route::Route;

/// The first failures a run keeps for its summary.
pub const MAX_FAILURE_NOTES: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// One worker is compacting and sending the summary.
    Finishing,
    Finished,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureNote {
    pub name: String,
    pub tag: String,
    pub sha256: String,
    pub reason: String,
}

impl FailureNote {
    /// A bottle that failed for `reason`.
    pub fn for_job(job: &BottleJob, reason: impl Into<String>) -> Self {
        FailureNote {
            name: job.name.clone(),
            tag: job.tag.to_string(),
            sha256: job.sha256.to_string(),
            reason: reason.into(),
        }
    }

    /// A message too broken to name its bottle (only its sha256 survived).
    pub fn for_invalid_message(sha256: &crate::Sha256Digest, reason: impl Into<String>) -> Self {
        FailureNote {
            name: "(invalid message)".into(),
            tag: String::new(),
            sha256: sha256.to_string(),
            reason: reason.into(),
        }
    }
}

/// A run: what the planner expected and what the workers counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// The dated folder (YYYY-MM-DD).
    pub date: String,
    pub expected: u64,
    pub bytes_planned: u64,
    pub route: Route,
    pub started_at: DateTime<Utc>,
    pub state: RunState,
    pub stored: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes_stored: u64,
    /// The first [`MAX_FAILURE_NOTES`] failures.
    pub failures: Vec<FailureNote>,
    pub finished_at: Option<DateTime<Utc>>,
    pub summary_sent: bool,
    /// Whether `expected` is final: the planner (or a replay) has sent every
    /// message it is going to send and written the count of those it did.
    /// A run that is not sealed cannot finish, however many it counted.
    /// Records written before sealing existed read as sealed.
    #[serde(default = "sealed_by_default")]
    pub sealed: bool,
    /// When a bottle was last counted for the run (`None`: not yet). With
    /// `started_at`, what tells a stalled run from a busy one.
    #[serde(default)]
    pub last_counted_at: Option<DateTime<Utc>>,
    /// Whether a finisher of this run has compacted the ledger into
    /// `bottles_hash.json`, so that a finisher retrying the summary after a
    /// failed post does not compact again.
    #[serde(default)]
    pub compacted: bool,
    /// Posts of the summary that Slack did not accept (the run stays
    /// `Finishing`, without a finisher, until one is accepted).
    #[serde(default)]
    pub summary_attempts: u32,
    /// Why the last post of the summary failed, while it is pending.
    #[serde(default)]
    pub summary_error: Option<String>,
    /// Who is sending the run's messages, while it is not sealed.
    #[serde(default)]
    pub planner: Option<String>,
    /// Until when the planner's right to send lasts (renewed while it
    /// sends); an unsealed run past it was abandoned and may be resumed.
    #[serde(default)]
    pub planning_until: Option<DateTime<Utc>>,
    /// The last reconcile pass that found the run stalled and acted on it.
    #[serde(default)]
    pub reconciled_at: Option<DateTime<Utc>>,
}

fn sealed_by_default() -> bool {
    true
}

impl RunRecord {
    /// A new run, `Running` and not yet sealed: `expected` is what the
    /// planner means to send; [`FleetLedger::seal_run`] makes it final.
    pub fn new(
        run_id: impl Into<String>,
        date: impl Into<String>,
        expected: u64,
        bytes_planned: u64,
        route: Route,
        started_at: DateTime<Utc>,
    ) -> Self {
        RunRecord {
            run_id: run_id.into(),
            date: date.into(),
            expected,
            bytes_planned,
            route,
            started_at,
            state: RunState::Running,
            stored: 0,
            skipped: 0,
            failed: 0,
            bytes_stored: 0,
            failures: Vec::new(),
            finished_at: None,
            summary_sent: false,
            sealed: false,
            last_counted_at: None,
            compacted: false,
            summary_attempts: 0,
            summary_error: None,
            planner: None,
            planning_until: None,
            reconciled_at: None,
        }
    }

    /// Drained and finishing, but Slack has not accepted the summary yet:
    /// the next `run::finish::Finisher::finish_if_due` posts it again.
    pub fn summary_pending(&self) -> bool {
        self.state == RunState::Finishing && !self.summary_sent && self.summary_error.is_some()
    }

    pub fn done(&self) -> u64 {
        self.stored + self.skipped + self.failed
    }

    /// The last sign of life of a running run: its last count or
    /// reconcile pass, else its start.
    pub fn last_progress(&self) -> DateTime<Utc> {
        [self.last_counted_at, self.reconciled_at]
            .into_iter()
            .flatten()
            .fold(self.started_at, DateTime::max)
    }
}

/// `YYYYMMDDTHHMMSSZ-xxxxxxxx`: sortable, unique enough, safe in keys.
pub fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}
