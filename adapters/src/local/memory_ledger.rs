//! The in-process [`FleetLedger`]: the same contract as `dynamo_ledger`,
//! held in one mutex, for unit tests and single-machine load runs. Every
//! method is one critical section, which plays the part of DynamoDB's
//! single conditional write or transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use bottlesync_core::Sha256Digest;
use bottlesync_core::error::{Error, Result};
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::ports::fleet_ledger::{
    BottleState, ClaimLedger, ClaimOutcome, ClaimOwner, CompleteOutcome, Counted, FinishLease,
    RunBook,
};
use bottlesync_core::run::record::{FailureNote, MAX_FAILURE_NOTES, RunRecord, RunState};

const LOCATION: &str = "memory ledger";

/// A bottle's item (what `bottle#<sha256>` holds in DynamoDB).
#[derive(Clone, Debug)]
enum Entry {
    Queued {
        run_id: String,
        until: DateTime<Utc>,
    },
    Claimed {
        owner: String,
        lease_expires: DateTime<Utc>,
    },
    Stored(MirroredBottle),
    Failed,
}

impl Entry {
    fn view(&self) -> BottleState {
        match self {
            Entry::Queued { run_id, until } => BottleState::Queued {
                run_id: run_id.clone(),
                until: *until,
            },
            Entry::Claimed {
                owner,
                lease_expires,
            } => BottleState::Claimed {
                owner: owner.clone(),
                lease_expires: *lease_expires,
            },
            Entry::Stored(bottle) => BottleState::Stored(bottle.clone()),
            Entry::Failed => BottleState::Failed,
        }
    }
}

struct RunEntry {
    record: RunRecord,
    finisher: Option<String>,
    finish_lease: DateTime<Utc>,
    /// When the last progress message went out (`started_at` at first).
    last_progress_at: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    bottles: BTreeMap<Sha256Digest, Entry>,
    runs: HashMap<String, RunEntry>,
    /// `count#<run id>#<sha256>` markers.
    counted: HashSet<(String, Sha256Digest)>,
    /// `resent#<run id>#<sha256>` markers, with the pass that made them.
    resent: HashMap<(String, Sha256Digest), String>,
    /// Runs not yet closed.
    open: BTreeSet<String>,
    latest: Option<String>,
}

impl State {
    fn run_mut(&mut self, run_id: &str, operation: &str) -> Result<&mut RunEntry> {
        self.runs.get_mut(run_id).ok_or_else(|| {
            Error::ledger(
                LOCATION,
                format!("{operation}: run {run_id:?} does not exist"),
            )
        })
    }

    fn holds(&self, sha256: &Sha256Digest, owner: &str) -> bool {
        matches!(self.bottles.get(sha256), Some(Entry::Claimed { owner: o, .. }) if o == owner)
    }
}

/// The in-process ledger. Cheap to create; share it behind an `Arc`.
#[derive(Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
    /// Claims whose write lands and whose answer is then lost (tests).
    lost_claim_answers: std::sync::atomic::AtomicU32,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` claims are written, then answered with a transient
    /// error, as DynamoDB's answer lost on the way (for tests).
    pub fn lose_next_claim_answers(&self, n: u32) {
        self.lost_claim_answers
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave a half-made change: every method
        // checks before it writes.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn expiry(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[async_trait]
impl ClaimLedger for MemoryLedger {
    async fn bottle_states(&self) -> Result<BTreeMap<Sha256Digest, BottleState>> {
        let state = self.lock();
        Ok(state
            .bottles
            .iter()
            .map(|(sha256, entry)| (sha256.clone(), entry.view()))
            .collect())
    }

    async fn bottle_state(&self, sha256: &Sha256Digest) -> Result<Option<BottleState>> {
        Ok(self.lock().bottles.get(sha256).map(Entry::view))
    }

    async fn mark_queued(
        &self,
        sha256: &Sha256Digest,
        run_id: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let now = Utc::now();
        let mut state = self.lock();
        let free = match state.bottles.get(sha256) {
            None | Some(Entry::Failed) => true,
            Some(Entry::Queued { run_id: by, until }) => by == run_id || *until < now,
            Some(Entry::Claimed { lease_expires, .. }) => *lease_expires < now,
            Some(Entry::Stored(_)) => false,
        };
        if free {
            state.bottles.insert(
                sha256.clone(),
                Entry::Queued {
                    run_id: run_id.to_string(),
                    until,
                },
            );
        }
        Ok(free)
    }

    async fn claim(
        &self,
        sha256: &Sha256Digest,
        _run_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<ClaimOutcome> {
        let now = Utc::now();
        let mut state = self.lock();
        match state.bottles.get(sha256) {
            Some(Entry::Stored(bottle)) => return Ok(ClaimOutcome::AlreadyStored(bottle.clone())),
            Some(Entry::Claimed {
                owner: holder,
                lease_expires,
            }) if holder != owner
                && *lease_expires >= now
                && !ClaimOwner::parse(owner).is_some_and(|o| o.supersedes(holder)) =>
            {
                return Ok(ClaimOutcome::HeldElsewhere {
                    owner: holder.clone(),
                    lease_expires: *lease_expires,
                });
            }
            _ => {}
        }
        state.bottles.insert(
            sha256.clone(),
            Entry::Claimed {
                owner: owner.to_string(),
                lease_expires: expiry(now, lease),
            },
        );
        let lose = self.lost_claim_answers.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        if lose.is_ok() {
            return Err(Error::ledger(
                "memory ledger",
                "claim: the answer was lost after the write landed (injected)",
            ));
        }
        Ok(ClaimOutcome::Granted)
    }

    async fn extend_claim(
        &self,
        sha256: &Sha256Digest,
        owner: &str,
        lease: Duration,
    ) -> Result<bool> {
        let now = Utc::now();
        let mut state = self.lock();
        match state.bottles.get_mut(sha256) {
            Some(Entry::Claimed {
                owner: holder,
                lease_expires,
            }) if holder == owner => {
                *lease_expires = expiry(now, lease);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_claim(&self, sha256: &Sha256Digest, owner: &str) -> Result<()> {
        let mut state = self.lock();
        if let Some(Entry::Claimed {
            owner: holder,
            lease_expires,
        }) = state.bottles.get_mut(sha256)
            && holder == owner
        {
            *lease_expires = DateTime::<Utc>::UNIX_EPOCH;
        }
        Ok(())
    }

    async fn complete(
        &self,
        run_id: &str,
        owner: &str,
        sha256: &Sha256Digest,
        bottle: &MirroredBottle,
    ) -> Result<CompleteOutcome> {
        let mut state = self.lock();
        state.run_mut(run_id, "complete")?;
        let marker = (run_id.to_string(), sha256.clone());
        let counted = state.counted.contains(&marker);
        if !state.holds(sha256, owner) {
            let stored = matches!(state.bottles.get(sha256), Some(Entry::Stored(_)));
            return Ok(if stored && counted {
                CompleteOutcome::Counted(Counted::Already)
            } else {
                CompleteOutcome::ClaimLost
            });
        }
        state
            .bottles
            .insert(sha256.clone(), Entry::Stored(bottle.clone()));
        if counted {
            return Ok(CompleteOutcome::Counted(Counted::Already));
        }
        state.counted.insert(marker);
        let run = &mut state.run_mut(run_id, "complete")?.record;
        run.last_counted_at = Some(Utc::now());
        run.stored += 1;
        run.bytes_stored += bottle.size;
        Ok(CompleteOutcome::Counted(Counted::Now))
    }

    async fn count_skipped(&self, run_id: &str, sha256: &Sha256Digest) -> Result<Counted> {
        let mut state = self.lock();
        state.run_mut(run_id, "count_skipped")?;
        if !state.counted.insert((run_id.to_string(), sha256.clone())) {
            return Ok(Counted::Already);
        }
        let run = &mut state.run_mut(run_id, "count_skipped")?.record;
        run.last_counted_at = Some(Utc::now());
        run.skipped += 1;
        Ok(Counted::Now)
    }

    async fn count_failed(
        &self,
        run_id: &str,
        sha256: &Sha256Digest,
        note: &FailureNote,
    ) -> Result<Counted> {
        let mut state = self.lock();
        state.run_mut(run_id, "count_failed")?;
        let counted = if state.counted.insert((run_id.to_string(), sha256.clone())) {
            let run = &mut state.run_mut(run_id, "count_failed")?.record;
            run.last_counted_at = Some(Utc::now());
            run.failed += 1;
            if run.failures.len() < MAX_FAILURE_NOTES {
                run.failures.push(note.clone());
            }
            Counted::Now
        } else {
            Counted::Already
        };
        let keep = match state.bottles.get(sha256) {
            Some(Entry::Stored(_)) => true,
            Some(Entry::Claimed { lease_expires, .. }) => *lease_expires >= Utc::now(),
            _ => false,
        };
        if !keep {
            state.bottles.insert(sha256.clone(), Entry::Failed);
        }
        Ok(counted)
    }

    async fn import_stored(&self, bottles: &[(Sha256Digest, MirroredBottle)]) -> Result<usize> {
        let mut state = self.lock();
        let mut new = 0;
        for (sha256, bottle) in bottles {
            if !matches!(state.bottles.get(sha256), Some(Entry::Stored(_))) {
                state
                    .bottles
                    .insert(sha256.clone(), Entry::Stored(bottle.clone()));
                new += 1;
            }
        }
        Ok(new)
    }
}

#[async_trait]
impl RunBook for MemoryLedger {
    async fn seal_run(&self, run_id: &str, expected: u64) -> Result<()> {
        let mut state = self.lock();
        let run = &mut state.run_mut(run_id, "seal_run")?.record;
        run.expected = expected;
        run.sealed = true;
        run.planning_until = None;
        Ok(())
    }

    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        if run.run_id == "latest" {
            return Err(Error::ledger(
                LOCATION,
                "create_run: the run id \"latest\" is reserved for the pointer to the newest run",
            ));
        }
        let mut state = self.lock();
        if let Some(existing) = state.runs.get(&run.run_id) {
            // The same record again is a retried write: already done.
            if existing.record.started_at == run.started_at && existing.record.date == run.date {
                return Ok(());
            }
            return Err(Error::ledger(
                LOCATION,
                format!("create_run: run {:?} already exists", run.run_id),
            ));
        }
        state.runs.insert(
            run.run_id.clone(),
            RunEntry {
                record: run.clone(),
                finisher: None,
                finish_lease: DateTime::<Utc>::UNIX_EPOCH,
                last_progress_at: run.started_at,
            },
        );
        state.latest = Some(run.run_id.clone());
        state.open.insert(run.run_id.clone());
        Ok(())
    }

    async fn hold_planning(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = Utc::now();
        let mut state = self.lock();
        let Some(run) = state.runs.get_mut(run_id) else {
            return Ok(false);
        };
        let run = &mut run.record;
        let free = !run.sealed
            && (run.planner.as_deref() == Some(owner)
                || run.planning_until.is_none_or(|until| until < now));
        if free {
            run.planner = Some(owner.to_string());
            run.planning_until = Some(expiry(now, lease));
        }
        Ok(free)
    }

    async fn open_runs(&self) -> Result<Vec<RunRecord>> {
        let state = self.lock();
        Ok(state
            .open
            .iter()
            .filter_map(|id| state.runs.get(id))
            .map(|run| run.record.clone())
            .collect())
    }

    async fn close_run(&self, run_id: &str) -> Result<()> {
        self.lock().open.remove(run_id);
        Ok(())
    }

    async fn counted(
        &self,
        run_id: &str,
        sha256s: &[Sha256Digest],
    ) -> Result<BTreeSet<Sha256Digest>> {
        let state = self.lock();
        Ok(sha256s
            .iter()
            .filter(|sha| {
                state
                    .counted
                    .contains(&(run_id.to_string(), (*sha).clone()))
            })
            .cloned()
            .collect())
    }

    async fn mark_resent(&self, run_id: &str, sha256: &Sha256Digest, by: &str) -> Result<bool> {
        let mut state = self.lock();
        let key = (run_id.to_string(), sha256.clone());
        Ok(match state.resent.get(&key) {
            Some(earlier) => earlier == by,
            None => {
                state.resent.insert(key, by.to_string());
                true
            }
        })
    }

    async fn note_reconciled(&self, run_id: &str) -> Result<()> {
        let mut state = self.lock();
        state
            .run_mut(run_id, "note_reconciled")?
            .record
            .reconciled_at = Some(Utc::now());
        Ok(())
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        Ok(self.lock().runs.get(run_id).map(|run| run.record.clone()))
    }

    async fn latest_run(&self) -> Result<Option<RunRecord>> {
        let state = self.lock();
        Ok(state
            .latest
            .as_ref()
            .and_then(|id| state.runs.get(id))
            .map(|run| run.record.clone()))
    }

    async fn try_progress_slot(
        &self,
        run_id: &str,
        interval: Duration,
    ) -> Result<Option<RunRecord>> {
        let now = Utc::now();
        let mut state = self.lock();
        let Some(run) = state.runs.get_mut(run_id) else {
            return Ok(None);
        };
        if run.record.state != RunState::Running || expiry(run.last_progress_at, interval) > now {
            return Ok(None);
        }
        run.last_progress_at = now;
        Ok(Some(run.record.clone()))
    }
}

#[async_trait]
impl FinishLease for MemoryLedger {
    async fn begin_finish(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = Utc::now();
        let mut state = self.lock();
        let Some(run) = state.runs.get_mut(run_id) else {
            return Ok(false);
        };
        let free = match run.record.state {
            RunState::Running => run.record.sealed && run.record.done() >= run.record.expected,
            RunState::Finishing => run.finish_lease < now || run.finisher.as_deref() == Some(owner),
            RunState::Finished => false,
        };
        if free {
            run.record.state = RunState::Finishing;
            run.finisher = Some(owner.to_string());
            run.finish_lease = expiry(now, lease);
        }
        Ok(free)
    }

    async fn extend_finish(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = Utc::now();
        let mut state = self.lock();
        let Some(run) = state.runs.get_mut(run_id) else {
            return Ok(false);
        };
        let holds =
            run.record.state == RunState::Finishing && run.finisher.as_deref() == Some(owner);
        if holds {
            run.finish_lease = expiry(now, lease);
        }
        Ok(holds)
    }

    async fn mark_compacted(&self, run_id: &str, owner: &str) -> Result<()> {
        let mut state = self.lock();
        let run = state.run_mut(run_id, "mark_compacted")?;
        if run.record.state != RunState::Finishing || run.finisher.as_deref() != Some(owner) {
            return Err(not_finisher("mark_compacted", run_id, owner, run));
        }
        run.record.compacted = true;
        Ok(())
    }

    async fn defer_summary(&self, run_id: &str, owner: &str, problem: &str) -> Result<()> {
        let mut state = self.lock();
        let run = state.run_mut(run_id, "defer_summary")?;
        if run.record.state != RunState::Finishing || run.finisher.as_deref() != Some(owner) {
            return Err(not_finisher("defer_summary", run_id, owner, run));
        }
        run.record.summary_attempts += 1;
        run.record.summary_error = Some(problem.to_string());
        run.finisher = None;
        run.finish_lease = DateTime::<Utc>::UNIX_EPOCH;
        Ok(())
    }

    async fn mark_summary_sent(&self, run_id: &str, _owner: &str) -> Result<()> {
        let mut state = self.lock();
        let run = state.run_mut(run_id, "mark_summary_sent")?;
        run.record.summary_sent = true;
        Ok(())
    }

    async fn finish(&self, run_id: &str, owner: &str) -> Result<()> {
        let now = Utc::now();
        let mut state = self.lock();
        let run = state.run_mut(run_id, "finish")?;
        if run.finisher.as_deref() != Some(owner) {
            return Err(not_finisher("finish", run_id, owner, run));
        }
        match run.record.state {
            RunState::Finishing => {
                run.record.state = RunState::Finished;
                run.record.finished_at = Some(now);
                Ok(())
            }
            // A repeated call by the finisher.
            RunState::Finished => Ok(()),
            RunState::Running => Err(Error::ledger(
                LOCATION,
                format!("finish: run {run_id:?} is still running"),
            )),
        }
    }
}

fn not_finisher(operation: &str, run_id: &str, owner: &str, run: &RunEntry) -> Error {
    Error::ledger(
        LOCATION,
        format!(
            "{operation}: {owner:?} does not hold the finishing lease of run {run_id:?} (finisher: {})",
            run.finisher.as_deref().unwrap_or("none")
        ),
    )
}
