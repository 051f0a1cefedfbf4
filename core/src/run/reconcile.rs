//! The safety net that ends every run, whatever happened to its messages.
//!
//! Workers count each bottle of a run once (stored, skipped, failed) and the
//! last count finishes the run. A message that never reaches a worker that
//! counts it (dead-lettered uncounted, deleted by a crash, never sent by a
//! planner that died) would leave the run running forever. The reconcile,
//! run on a schedule (`bottlesync reconcile`, the planner Lambda's
//! `{"kind": "reconcile"}` event) and by every planner before it plans,
//! walks the open runs and, for each:
//!
//! - a run nobody is planning any more (its planner's lease ran out before
//!   it sealed the run) is resumed: every message of its manifest whose
//!   bottle is neither counted nor in work is sent again (duplicates are
//!   harmless: the ledger counts a bottle once) and the run is sealed with
//!   the manifest's count;
//! - a sealed run with no bottle counted for `BOTTLESYNC_RUN_STALL_MINUTES`
//!   is stalled: each uncounted bottle of its manifest is checked. In work
//!   under a live claim: left alone. Already stored: counted as skipped.
//!   In the DLQ: counted as failed ("dead-lettered"). Otherwise its message
//!   was lost: sent again, once; lost again (and nothing is left in the
//!   queue that could still deliver it): counted as failed ("lost");
//! - a run that drained, or whose summary is still owed, is finished
//!   ([`crate::run::finish::Finisher::finish_if_due`]); a finished, reported run is
//!   closed.
//!
//! Every step is idempotent and keyed on ledger conditions, so two
//! reconciles (or a reconcile and a worker) at once do no harm.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Sha256Digest;
use crate::error::{Error, Result};
use crate::model::index::HostPolicy;
use crate::model::message::BottleMessage;
use crate::plan::route::Route;
use crate::ports::fleet_ledger::BottleState;
use crate::run::dispatch::{Outgoing, RunDispatch, WorkQueues, send_with_retries};
use crate::run::finish::{FinishOutcome, Finisher};
use crate::run::manifest::{ManifestMessage, RunManifest};
use crate::run::record::{FailureNote, RunRecord, RunState};

/// How many dead letters a stalled run's check looks at.
const DLQ_LOOK: usize = 1000;

/// What the reconcile did to one run.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RunReconciled {
    pub run_id: String,
    /// `planning`, `resumed`, `progressing`, `stalled`, `finished`,
    /// `closed`, `waiting`, `error`.
    pub verdict: String,
    /// Seconds since the run last counted a bottle (or started).
    pub idle_seconds: i64,
    /// Messages sent again.
    pub resent: usize,
    /// Bottles in work under a live claim.
    pub in_work: usize,
    /// Bottles found stored and counted as skipped.
    pub found_stored: usize,
    /// Bottles counted failed because their message is in the DLQ.
    pub dead_lettered: usize,
    /// Bottles counted failed because their message was lost twice.
    pub lost: usize,
    /// Whether this pass finished the run (and posted its summary).
    pub finished: bool,
    pub detail: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ReconcileReport {
    pub runs: Vec<RunReconciled>,
    /// The first error of a run this pass could not reconcile.
    #[serde(skip)]
    pub first_error: Option<Error>,
}

impl ReconcileReport {
    /// `Err` when some run could not be reconciled (an AccessDenied, an
    /// outage), naming how many and the first error, so the invocation
    /// fails and the planner function's error alarm fires: a pass that
    /// returns success while no stalled run can end alerts nobody. The
    /// report is logged first, with every run's verdict.
    pub fn into_result(self) -> Result<ReconcileReport> {
        let Some(first) = self.first_error.clone() else {
            return Ok(self);
        };
        let failed = self.runs.iter().filter(|r| r.verdict == "error").count();
        tracing::error!(
            report = %serde_json::to_string(&self).expect("reports serialise"),
            "reconcile: {failed} of {} runs could not be reconciled; failing the invocation",
            self.runs.len()
        );
        Err(first)
    }
}

/// Why a running run is not advancing, if it is stalled (for `status`).
pub fn stall_of(run: &RunRecord, stall: Duration, now: DateTime<Utc>) -> Option<String> {
    if run.state != RunState::Running {
        return None;
    }
    let idle = now - run.last_progress();
    if !run.sealed {
        return match run.planning_until {
            Some(until) if until > now => None,
            _ => Some(format!(
                "its planner stopped before sending every message ({} s ago); the reconcile resumes it",
                idle.num_seconds()
            )),
        };
    }
    let stall = chrono::Duration::from_std(stall).unwrap_or(chrono::Duration::MAX);
    (run.done() < run.expected && idle >= stall).then(|| {
        format!(
            "no bottle counted for {} min ({} of {} done); the reconcile re-sends lost messages and counts what cannot progress as failed",
            idle.num_minutes(),
            run.done(),
            run.expected
        )
    })
}

/// What the reconcile touches: the finisher (its ledger, store and DLQ),
/// the work queues it re-sends to, the hosts a message may name, and the
/// two clocks it judges runs by. Built by `bottlesync_adapters::wiring`;
/// the planner runs it before planning, the scheduled Lambda on its own.
#[derive(Clone)]
pub struct Reconciler {
    pub finisher: Finisher,
    pub queues: WorkQueues,
    pub hosts: HostPolicy,
    /// How long a sender may go silent before its run is resumed.
    pub planning_lease: Duration,
    /// How long a run may count nothing before it is settled.
    pub run_stall: Duration,
}

impl Reconciler {
    /// One pass over every open run. `owner` names this pass (leases, marks).
    pub async fn reconcile(&self, owner: &str) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        for run in self.finisher.ledger.open_runs().await? {
            let run_id = run.run_id.clone();
            let outcome = match self.reconcile_run(run, owner).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(run_id, error = %e, "reconcile of the run failed; the next pass tries again");
                    report.first_error.get_or_insert_with(|| e.clone());
                    RunReconciled {
                        run_id,
                        verdict: "error".into(),
                        detail: Some(e.to_string()),
                        ..RunReconciled::default()
                    }
                }
            };
            report.runs.push(outcome);
        }
        Ok(report)
    }

    async fn reconcile_run(&self, run: RunRecord, owner: &str) -> Result<RunReconciled> {
        let ledger = &self.finisher.ledger;
        let now = Utc::now();
        let mut outcome = RunReconciled {
            run_id: run.run_id.clone(),
            idle_seconds: (now - run.last_progress()).num_seconds(),
            ..RunReconciled::default()
        };
        // A finished run is never posted again (its summary went out, or it
        // had nothing to report): close it.
        if run.state == RunState::Finished {
            // Before the close: a failed close is retried by the next pass,
            // which deletes again (idempotent), so no manifest outlives its run.
            if let Err(e) = RunManifest::delete(self.finisher.store.as_ref(), &run.run_id).await {
                tracing::warn!(run_id = %run.run_id, error = %e, "could not delete the closed run's manifest: it stays in .bottlesync/runs/ (harmless: nothing reads it)");
            }
            ledger.close_run(&run.run_id).await?;
            outcome.verdict = "closed".into();
            return Ok(outcome);
        }
        if run.state == RunState::Running {
            if !run.sealed {
                if !ledger
                    .hold_planning(&run.run_id, owner, self.planning_lease)
                    .await?
                {
                    outcome.verdict = "planning".into();
                    return Ok(outcome);
                }
                self.resume(&run, owner, &mut outcome).await?;
            } else if stall_of(&run, self.run_stall, now).is_some() {
                self.settle_stalled(&run, owner, &mut outcome).await?;
            } else {
                outcome.verdict = "progressing".into();
            }
        }
        match self.finisher.finish_if_due(&run.run_id, owner).await {
            Ok(FinishOutcome::Finished { .. }) => {
                outcome.finished = true;
                outcome.verdict = "finished".into();
            }
            Ok(FinishOutcome::SummaryRejected { problem }) => {
                outcome.finished = true;
                outcome.verdict = "finished".into();
                outcome.detail = Some(format!("Slack refused the summary: {problem}"));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(run_id = %run.run_id, error = %e, "could not finish the run; the next pass tries again");
                outcome.detail = Some(format!("finishing: {e}"));
            }
        }
        Ok(outcome)
    }

    /// A run whose planner died before sealing it: send what is not done, seal.
    async fn resume(
        &self,
        run: &RunRecord,
        owner: &str,
        outcome: &mut RunReconciled,
    ) -> Result<()> {
        outcome.verdict = "resumed".into();
        let Some(manifest) = RunManifest::read(self.finisher.store.as_ref(), &run.run_id).await?
        else {
            // The manifest is written before any message: none was sent.
            tracing::error!(run_id = %run.run_id, "resuming a run without a manifest: no message can have been sent; sealing it with what it counted");
            outcome.detail = Some("no manifest: sealed with what it had counted".into());
            self.finisher
                .ledger
                .seal_run(&run.run_id, run.done())
                .await?;
            return Ok(());
        };
        let pending = self.uncounted(run, &manifest).await?;
        let mut resend = Vec::new();
        for (sha256, message) in pending {
            match self.finisher.ledger.bottle_state(&sha256).await? {
                Some(BottleState::Claimed { lease_expires, .. }) if lease_expires >= Utc::now() => {
                    outcome.in_work += 1;
                }
                _ => resend.push(Outgoing {
                    sha256,
                    size: 0,
                    message,
                }),
            }
        }
        // The lease was just taken (`hold_planning`): sent and sealed as every
        // run is, under it.
        outcome.resent = RunDispatch {
            ledger: self.finisher.ledger.clone(),
            store: self.finisher.store.as_ref(),
            queues: &self.queues,
            planning_lease: self.planning_lease,
            owner,
        }
        .resume(&run.run_id, &manifest, resend)
        .await?;
        tracing::warn!(run_id = %run.run_id, planner = ?run.planner, resent = outcome.resent, expected = manifest.messages.len(), by = owner, "resumed a run its planner left unsealed");
        Ok(())
    }

    /// A sealed run that stopped counting: account for every uncounted bottle.
    async fn settle_stalled(
        &self,
        run: &RunRecord,
        owner: &str,
        outcome: &mut RunReconciled,
    ) -> Result<()> {
        let ledger = &self.finisher.ledger;
        outcome.verdict = "stalled".into();
        let Some(manifest) = RunManifest::read(self.finisher.store.as_ref(), &run.run_id).await?
        else {
            outcome.verdict = "waiting".into();
            outcome.detail =
                Some("no manifest (planned before manifests existed): nothing to re-send".into());
            tracing::error!(run_id = %run.run_id, "stalled run has no manifest: cannot tell which bottles it lost");
            return Ok(());
        };
        let pending = self.uncounted(run, &manifest).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let dead: HashMap<(String, String), Option<String>> = match &self.finisher.dlq {
            Some(dlq) => {
                crate::run::dlq::list(dlq.as_ref(), ledger.as_ref(), &self.hosts, DLQ_LOOK)
                    .await?
                    .into_iter()
                    .filter_map(|l| Some(((l.run_id?, l.sha256?), l.last_error)))
                    .collect()
            }
            None => HashMap::new(),
        };
        let mut queues_empty: HashMap<Route, bool> = HashMap::new();
        let mut resend = Vec::new();
        for (sha, message) in pending {
            let parsed = BottleMessage::parse(&message.body, &self.hosts).ok();
            let (name, tag) = parsed
                .as_ref()
                .map_or(("(unreadable message)".to_string(), String::new()), |m| {
                    (m.job.name.clone(), m.job.tag.to_string())
                });
            let note = |reason: String| FailureNote {
                name: name.clone(),
                tag: tag.clone(),
                sha256: sha.to_string(),
                reason,
            };
            match ledger.bottle_state(&sha).await? {
                Some(BottleState::Claimed { lease_expires, .. }) if lease_expires >= Utc::now() => {
                    outcome.in_work += 1;
                    continue;
                }
                Some(BottleState::Stored(_)) => {
                    ledger.count_skipped(&run.run_id, &sha).await?;
                    outcome.found_stored += 1;
                    continue;
                }
                _ => {}
            }
            if let Some(last_error) = dead.get(&(run.run_id.clone(), sha.to_string())) {
                let reason = format!(
                    "dead-lettered: {}",
                    last_error
                        .as_deref()
                        .unwrap_or("no worker counted it before SQS moved it")
                );
                ledger
                    .count_failed(&run.run_id, &sha, &note(reason))
                    .await?;
                outcome.dead_lettered += 1;
                continue;
            }
            if ledger.mark_resent(&run.run_id, &sha, owner).await? {
                resend.push(message);
                continue;
            }
            // Sent again once already and still not counted. Messages still in
            // its queue could yet deliver it: give up only when it is empty.
            let empty = match queues_empty.get(&message.route) {
                Some(empty) => *empty,
                None => {
                    // A route without its queue holds nothing that could deliver it.
                    let empty = match self.queues.get(message.route) {
                        Ok(queue) => queue.depth().await?.is_empty(),
                        Err(_) => true,
                    };
                    queues_empty.insert(message.route, empty);
                    empty
                }
            };
            if empty {
                let reason =
                    "lost: its message was sent again once by the reconcile and never counted"
                        .to_string();
                ledger
                    .count_failed(&run.run_id, &sha, &note(reason))
                    .await?;
                outcome.lost += 1;
            }
        }
        outcome.resent = self.send(&run.run_id, resend).await?;
        ledger.note_reconciled(&run.run_id).await?;
        tracing::warn!(
            run_id = %run.run_id,
            idle_s = outcome.idle_seconds,
            resent = outcome.resent,
            in_work = outcome.in_work,
            found_stored = outcome.found_stored,
            dead_lettered = outcome.dead_lettered,
            lost = outcome.lost,
            "reconciled a stalled run"
        );
        Ok(())
    }

    /// The manifest's messages whose bottles the run has not counted, by sha256.
    async fn uncounted(
        &self,
        run: &RunRecord,
        manifest: &RunManifest,
    ) -> Result<BTreeMap<Sha256Digest, ManifestMessage>> {
        let mut by_sha = BTreeMap::new();
        for message in &manifest.messages {
            match BottleMessage::parse(&message.body, &self.hosts) {
                Ok(parsed) => {
                    by_sha.insert(parsed.job.sha256, message.clone());
                }
                Err(e) => {
                    tracing::error!(run_id = %run.run_id, error = %e, "the run's manifest holds an invalid message: skipped");
                }
            }
        }
        let shas: Vec<Sha256Digest> = by_sha.keys().cloned().collect();
        for sha in self.finisher.ledger.counted(&run.run_id, &shas).await? {
            by_sha.remove(&sha);
        }
        Ok(by_sha)
    }

    /// Sends messages to their route's queue; returns how many went out.
    async fn send(&self, run_id: &str, messages: Vec<ManifestMessage>) -> Result<usize> {
        let mut sent = 0;
        for route in [Route::Lambda, Route::Ecs] {
            let bodies: Vec<String> = messages
                .iter()
                .filter(|m| m.route == route)
                .map(|m| m.body.clone())
                .collect();
            if bodies.is_empty() {
                continue;
            }
            let queue = match self.queues.get(route) {
                Ok(queue) => queue,
                Err(e) => {
                    tracing::error!(run_id, error = %e, count = bodies.len(), "cannot re-send these messages: their route has no queue");
                    continue;
                }
            };
            let count = bodies.len();
            if !send_with_retries(queue, bodies, run_id).await.is_empty() {
                // Marked resent all the same: the next pass counts what never
                // arrived as lost once its queue is empty.
                tracing::error!(run_id, count, "could not confirm the re-sent messages");
            }
            sent += count;
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, verdict: &str) -> RunReconciled {
        RunReconciled {
            run_id: id.into(),
            verdict: verdict.into(),
            ..RunReconciled::default()
        }
    }

    /// A pass where a run could not be reconciled (on AWS: the planner role
    /// lacked dynamodb:BatchGetItem) fails, so the Lambda's error alarm
    /// fires; one where every run got a verdict succeeds.
    #[test]
    fn a_pass_with_an_unreconciled_run_is_an_error() {
        let fine = ReconcileReport {
            runs: vec![run("a", "progressing"), run("b", "finished")],
            first_error: None,
        };
        assert_eq!(fine.into_result().unwrap().runs.len(), 2);
        let denied = Error::Ledger {
            location: "table ledger".into(),
            problem: "BatchGetItem: AccessDeniedException".into(),
        };
        let failed = ReconcileReport {
            runs: vec![run("a", "progressing"), run("b", "error")],
            first_error: Some(denied),
        };
        let error = failed.into_result().unwrap_err();
        assert!(
            error.to_string().contains("AccessDeniedException"),
            "{error}"
        );
    }
}
