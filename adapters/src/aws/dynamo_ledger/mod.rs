//! The DynamoDB [`FleetLedger`]: one on-demand table with a string partition
//! key `pk` and no sort key. Every state change is one conditional write or
//! one `TransactWriteItems`, so concurrent workers never read, modify and
//! write back.
//!
//! Items:
//! - `bottle#<sha256>`: `st` is `queued` (`run_id`, `queued_until`),
//!   `claimed` (`owner`, `lease_expires`, `run_id`), `stored` (the
//!   [`MirroredBottle`] fields, `stored_at`, `run_id`) or `failed`.
//! - `run#<run id>`: the [`RunRecord`] fields, `done` (= stored + skipped +
//!   failed, moved in the same write as the specific counter, because a
//!   condition cannot add), `finisher`, `finish_lease` and
//!   `last_progress_at` (when the fleet last sent a progress message;
//!   `started_at` when the run is created), `sealed` (expected is final;
//!   absent on records older than sealing, which read as sealed),
//!   `last_counted_at` (set by every counting transaction), and the
//!   finisher's progress: `compacted`, `summary_attempts` and
//!   `summary_error` (posts Slack did not accept; absent: none).
//! - `count#<run id>#<sha256>`: the bottle has been counted for the run
//!   (`expires_at`: a TTL 30 days out).
//! - `run#latest`: `run_id` of the newest run.
//!
//! Times that conditions compare (`queued_until`, `lease_expires`,
//! `finish_lease`, `last_progress_at`) are epoch seconds with millisecond decimals; times that
//! people read (`downloaded_at`, `started_at`, ...) are RFC 3339 strings.
//! Every attribute in an expression goes through an expression attribute
//! name (`#st` for `st`), so reserved words (`name`, `size`, `state`, `key`,
//! ...) never bite.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use bottlesync_core::Sha256Digest;
use bottlesync_core::error::{Error, Result};
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::ports::fleet_ledger::{
    BottleState, ClaimLedger, ClaimOutcome, ClaimOwner, CompleteOutcome, Counted, FinishLease,
    RunBook,
};
use bottlesync_core::run::record::{FailureNote, MAX_FAILURE_NOTES, RunRecord, RunState};

mod items;
mod write;

use items::*;
use write::*;

type Item = HashMap<String, AttributeValue>;

/// How long a `count#` marker is kept (the table's TTL attribute `expires_at`).
const MARKER_TTL_DAYS: i64 = 30;
/// Concurrent `PutItem`s of `import_stored`.
const IMPORT_CONCURRENCY: usize = 16;
/// Attempts of a transaction cancelled only by conflicts or throttling
/// (the SDK does not retry cancelled transactions itself).
const TRANSACTION_ATTEMPTS: u32 = 8;
/// Rounds of write-then-look for an item that changes under us.
const RACE_ROUNDS: u32 = 5;

/// The cancellation codes worth another attempt of the same transaction.
const RETRYABLE_CODES: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    fn location(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }

    fn problem(&self, problem: impl std::fmt::Display) -> Error {
        Error::ledger(self.location(), problem)
    }

    fn sdk_error<E, R>(&self, label: &str, api: &str, pk: &str, err: &SdkError<E, R>) -> Error
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        self.problem(format!(
            "{label}: {api} on {pk} failed: {}",
            DisplayErrorContext(err)
        ))
    }

    fn run_missing(&self, label: &str, run_id: &str) -> Error {
        self.problem(format!(
            "{label}: run {run_id:?} does not exist (no item {})",
            run_pk(run_id)
        ))
    }

    /// A strongly consistent `GetItem`.
    async fn get(&self, label: &str, pk: &str) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| self.sdk_error(label, "GetItem", pk, &err))?;
        Ok(output.item)
    }

    async fn ensure_run(&self, label: &str, run_id: &str) -> Result<()> {
        match self.get(label, &run_pk(run_id)).await? {
            Some(_) => Ok(()),
            None => Err(self.run_missing(label, run_id)),
        }
    }

    /// One conditional `UpdateItem` or `PutItem`.
    async fn write(&self, label: &str, write: Write) -> Result<Written> {
        let names = write.names();
        let values = write.values();
        let condition = write.condition.map(str::to_string);
        match write.kind {
            WriteKind::Update { pk, expression } => {
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(pk.clone()))
                    .update_expression(expression)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(Written::Yes),
                    Err(err) => match err.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                            Ok(Written::ConditionFailed(failed.item().cloned()))
                        }
                        _ => Err(self.sdk_error(label, "UpdateItem", &pk, &err)),
                    },
                }
            }
            WriteKind::Put { pk, item } => {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(Written::Yes),
                    Err(err) => match err.as_service_error() {
                        Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                            Ok(Written::ConditionFailed(failed.item().cloned()))
                        }
                        _ => Err(self.sdk_error(label, "PutItem", &pk, &err)),
                    },
                }
            }
        }
    }

    /// One `TransactWriteItems`, attempted again (with jittered backoff)
    /// while it is cancelled only by conflicts with other transactions or
    /// throttling. Any other cancellation comes back with its reasons, one
    /// per write, in order (empty if the server gave none).
    async fn transact(&self, label: &str, writes: Vec<Write>) -> Result<Transaction> {
        let pks = writes
            .iter()
            .map(|w| w.pk().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let items = writes
            .into_iter()
            .map(|write| write.into_transact_item(&self.table))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|err| {
                self.problem(format!(
                    "{label}: cannot build the transaction on {pks}: {err}"
                ))
            })?;
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Transaction::Committed),
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                return Err(self.sdk_error(label, "TransactWriteItems", &pks, &err));
            };
            let reasons: Vec<Reason> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| Reason {
                    code: reason.code().unwrap_or("None").to_string(),
                    item: reason.item().cloned(),
                })
                .collect();
            let retryable = !reasons.is_empty()
                && reasons
                    .iter()
                    .all(|r| r.code == "None" || RETRYABLE_CODES.contains(&r.code.as_str()));
            tracing::debug!(
                table = %self.table,
                "{label}: transaction on {pks} cancelled ({})",
                reasons.iter().map(|r| r.code.as_str()).collect::<Vec<_>>().join(", ")
            );
            if !retryable {
                return Ok(Transaction::Cancelled(reasons));
            }
            if attempt >= TRANSACTION_ATTEMPTS {
                return Err(self.sdk_error(
                    label,
                    &format!("TransactWriteItems ({attempt} attempts)"),
                    &pks,
                    &err,
                ));
            }
            let base = 20u64 << attempt.min(6);
            tokio::time::sleep(Duration::from_millis(base + rand::random_range(0..base))).await;
            attempt += 1;
        }
    }

    /// Counts `sha256` for `run_id` under `counter` (skipped or failed): the
    /// marker and the counters in one transaction.
    async fn count(
        &self,
        label: &str,
        run_id: &str,
        sha256: &Sha256Digest,
        counter: Counter,
    ) -> Result<Counted> {
        for _ in 0..RACE_ROUNDS {
            let now = now();
            let writes = vec![
                marker_write(run_id, sha256, counter, now),
                counter_write(run_id, counter, 0, now),
            ];
            let reasons = match self.transact(label, writes).await? {
                Transaction::Committed => return Ok(Counted::Now),
                Transaction::Cancelled(reasons) => reasons,
            };
            let (marker_free, run_exists) = match reasons.as_slice() {
                [marker, run] => (marker.passed(), run.passed()),
                _ => (None, None),
            };
            if run_exists == Some(false) {
                return Err(self.run_missing(label, run_id));
            }
            let marker_exists = match marker_free {
                Some(free) => !free,
                None => self.get(label, &marker_pk(run_id, sha256)).await?.is_some(),
            };
            if marker_exists {
                return Ok(Counted::Already);
            }
            if run_exists.is_none() {
                self.ensure_run(label, run_id).await?;
            }
        }
        Err(self.problem(format!(
            "{label}: the transaction counting {sha256} for run {run_id:?} kept being cancelled"
        )))
    }
}

#[async_trait]
impl ClaimLedger for DynamoLedger {
    async fn bottle_states(&self) -> Result<BTreeMap<Sha256Digest, BottleState>> {
        let mut states = BTreeMap::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(#pk, :prefix)")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(BOTTLE_PREFIX.to_string()),
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| self.sdk_error("bottle_states", "Scan", "bottle# items", &err))?;
            for item in page.items() {
                let pk = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    .unwrap_or("?");
                let parsed = pk
                    .strip_prefix(BOTTLE_PREFIX)
                    .ok_or_else(|| "not a bottle item".to_string())
                    .and_then(Sha256Digest::parse)
                    .and_then(|sha256| Ok((sha256, parse_bottle(item)?)));
                match parsed {
                    Ok((sha256, state)) => {
                        states.insert(sha256, state);
                    }
                    Err(problem) => {
                        tracing::warn!(table = %self.table, pk, "ignoring an unreadable bottle item: {problem}");
                    }
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(states)
    }

    async fn mark_queued(
        &self,
        sha256: &Sha256Digest,
        run_id: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let write = Write::update(
            bottle_pk(sha256),
            "SET #st = :queued, #run_id = :run, #queued_until = :until REMOVE #owner, #lease_expires",
        )
        .condition(
            "attribute_not_exists(#pk) OR #st = :failed \
             OR (#st = :queued AND (#queued_until < :now OR #run_id = :run)) \
             OR (#st = :claimed AND #lease_expires < :now)",
        )
        .value(":queued", s(QUEUED))
        .value(":failed", s(FAILED))
        .value(":claimed", s(CLAIMED))
        .value(":run", s(run_id))
        .value(":until", epoch(until))
        .value(":now", epoch(now()));
        Ok(matches!(
            self.write("mark_queued", write).await?,
            Written::Yes
        ))
    }

    async fn claim(
        &self,
        sha256: &Sha256Digest,
        run_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<ClaimOutcome> {
        let pk = bottle_pk(sha256);
        // The owner's message and receive, kept beside the token so the
        // condition can let a later receive of the same message take over.
        let parsed = ClaimOwner::parse(owner);
        let (message, receive) = parsed
            .as_ref()
            .map_or(("-".to_string(), 0), |o| (o.message_id.clone(), o.receive));
        for _ in 0..RACE_ROUNDS {
            let now = now();
            let write = Write::update(
                pk.clone(),
                "SET #st = :claimed, #owner = :owner, #owner_message = :message, \
                 #owner_receive = :receive, #lease_expires = :expires, #run_id = :run \
                 REMOVE #queued_until",
            )
            .condition(
                "attribute_not_exists(#pk) OR #st IN (:queued, :failed) \
                 OR (#st = :claimed AND (#lease_expires < :now OR #owner = :owner \
                     OR (#owner_message = :message AND #owner_receive < :receive)))",
            )
            .value(":claimed", s(CLAIMED))
            .value(":queued", s(QUEUED))
            .value(":failed", s(FAILED))
            .value(":owner", s(owner))
            .value(":message", s(&message))
            .value(":receive", n(u64::from(receive)))
            .value(":run", s(run_id))
            .value(":expires", epoch(expiry(now, lease)))
            .value(":now", epoch(now));
            let old = match self.write("claim", write).await? {
                Written::Yes => return Ok(ClaimOutcome::Granted),
                Written::ConditionFailed(Some(old)) => Some(old),
                Written::ConditionFailed(None) => self.get("claim", &pk).await?,
            };
            let Some(old) = old else { continue };
            match parse_bottle(&old) {
                Ok(BottleState::Stored(bottle)) => return Ok(ClaimOutcome::AlreadyStored(bottle)),
                Ok(BottleState::Claimed {
                    owner: holder,
                    lease_expires,
                }) if holder != owner
                    && lease_expires >= now
                    && !parsed.as_ref().is_some_and(|o| o.supersedes(&holder)) =>
                {
                    return Ok(ClaimOutcome::HeldElsewhere {
                        owner: holder,
                        lease_expires,
                    });
                }
                // It changed between the write and the read: try again.
                Ok(_) => {}
                Err(problem) => {
                    return Err(self.problem(format!("claim: item {pk} is unreadable: {problem}")));
                }
            }
        }
        Err(self.problem(format!("claim: item {pk} kept changing under the claim")))
    }

    async fn bottle_state(&self, sha256: &Sha256Digest) -> Result<Option<BottleState>> {
        let pk = bottle_pk(sha256);
        match self.get("bottle_state", &pk).await? {
            None => Ok(None),
            Some(item) => parse_bottle(&item).map(Some).map_err(|problem| {
                self.problem(format!("bottle_state: item {pk} is unreadable: {problem}"))
            }),
        }
    }

    async fn extend_claim(
        &self,
        sha256: &Sha256Digest,
        owner: &str,
        lease: Duration,
    ) -> Result<bool> {
        let write = Write::update(bottle_pk(sha256), "SET #lease_expires = :expires")
            .condition("#st = :claimed AND #owner = :owner")
            .value(":claimed", s(CLAIMED))
            .value(":owner", s(owner))
            .value(":expires", epoch(expiry(now(), lease)));
        Ok(matches!(
            self.write("extend_claim", write).await?,
            Written::Yes
        ))
    }

    async fn release_claim(&self, sha256: &Sha256Digest, owner: &str) -> Result<()> {
        // The lease ends now: anyone may claim the bottle at once. A claim
        // already lost needs no release.
        let write = Write::update(bottle_pk(sha256), "SET #lease_expires = :zero")
            .condition("#st = :claimed AND #owner = :owner")
            .value(":claimed", s(CLAIMED))
            .value(":owner", s(owner))
            .value(":zero", AttributeValue::N("0".into()));
        self.write("release_claim", write).await?;
        Ok(())
    }

    async fn complete(
        &self,
        run_id: &str,
        owner: &str,
        sha256: &Sha256Digest,
        bottle: &MirroredBottle,
    ) -> Result<CompleteOutcome> {
        const LABEL: &str = "complete";
        let pk = bottle_pk(sha256);
        for _ in 0..RACE_ROUNDS {
            let now = now();
            let writes = vec![
                store_write(sha256, run_id, owner, bottle, now),
                marker_write(run_id, sha256, Counter::Stored, now),
                counter_write(run_id, Counter::Stored, bottle.size, now),
            ];
            let reasons = match self.transact(LABEL, writes).await? {
                Transaction::Committed => return Ok(CompleteOutcome::Counted(Counted::Now)),
                Transaction::Cancelled(reasons) => reasons,
            };
            // What failed: from the cancellation reasons, else by looking.
            let (mut held, marker_free, run_exists, mut bottle_item) = match reasons.as_slice() {
                [b, m, r] => (b.passed(), m.passed(), r.passed(), b.item.clone()),
                _ => (None, None, None, None),
            };
            if run_exists == Some(false) {
                return Err(self.run_missing(LABEL, run_id));
            }
            if held.is_none() {
                bottle_item = self.get(LABEL, &pk).await?;
                held = Some(bottle_item.as_ref().is_some_and(|item| holds(item, owner)));
            }
            let marker_exists = match marker_free {
                Some(free) => !free,
                None => self.get(LABEL, &marker_pk(run_id, sha256)).await?.is_some(),
            };
            match (held == Some(true), marker_exists) {
                // Counted for this run already (a redelivery): store it without counting.
                (true, true) => {
                    let write = store_write(sha256, run_id, owner, bottle, now);
                    if let Written::Yes = self.write(LABEL, write).await? {
                        return Ok(CompleteOutcome::Counted(Counted::Already));
                    }
                }
                // A conflict we could not see: try again (unless the run is gone).
                (true, false) => {
                    if run_exists.is_none() {
                        self.ensure_run(LABEL, run_id).await?;
                    }
                }
                (false, marker_exists) => {
                    let item = match bottle_item {
                        Some(item) => Some(item),
                        None => self.get(LABEL, &pk).await?,
                    };
                    let stored = item
                        .as_ref()
                        .is_some_and(|item| state_of(item) == Some(STORED));
                    return Ok(if stored && marker_exists {
                        CompleteOutcome::Counted(Counted::Already)
                    } else {
                        CompleteOutcome::ClaimLost
                    });
                }
            }
        }
        Err(self.problem(format!(
            "{LABEL}: the transaction storing {sha256} for run {run_id:?} kept being cancelled"
        )))
    }

    async fn count_skipped(&self, run_id: &str, sha256: &Sha256Digest) -> Result<Counted> {
        self.count("count_skipped", run_id, sha256, Counter::Skipped)
            .await
    }

    async fn count_failed(
        &self,
        run_id: &str,
        sha256: &Sha256Digest,
        note: &FailureNote,
    ) -> Result<Counted> {
        const LABEL: &str = "count_failed";
        let counted = self.count(LABEL, run_id, sha256, Counter::Failed).await?;
        // The note goes with a failure counted now, or counted before by a
        // call whose answer was lost (its retry sees `Already`): `noted`
        // keeps the note from being kept twice.
        let counted_as_failed = match counted {
            Counted::Now => true,
            Counted::Already => self
                .get(LABEL, &marker_pk(run_id, sha256))
                .await?
                .is_some_and(|marker| {
                    get_s(&marker, "counted_as").ok() == Some(Counter::Failed.name())
                }),
        };
        if counted_as_failed {
            let write = Write::update(
                run_pk(run_id),
                "SET #failures = list_append(if_not_exists(#failures, :empty), :note) ADD #noted :sha",
            )
            .condition(
                "attribute_exists(#pk) AND NOT contains(#noted, :one_sha) \
                 AND (attribute_not_exists(#failures) OR size(#failures) < :max)",
            )
            .value(":empty", AttributeValue::L(Vec::new()))
            .value(":note", AttributeValue::L(vec![note_value(note)]))
            .value(":sha", AttributeValue::Ss(vec![sha256.to_string()]))
            .value(":one_sha", s(sha256.as_str()))
            .value(":max", n(MAX_FAILURE_NOTES as u64));
            if let Err(err) = self.write(LABEL, write).await {
                tracing::warn!(table = %self.table, run_id, %sha256, "the failure note was not kept: {err}");
            }
        }
        // Also on a redelivery, in case the first call stopped before this.
        // Never over a live claim: its holder is still at work.
        let write = Write::update(
            bottle_pk(sha256),
            "SET #st = :failed REMOVE #owner, #lease_expires, #queued_until",
        )
        .condition(
            "attribute_not_exists(#pk) \
             OR (#st <> :stored AND (#st <> :claimed OR #lease_expires < :now))",
        )
        .value(":failed", s(FAILED))
        .value(":stored", s(STORED))
        .value(":claimed", s(CLAIMED))
        .value(":now", epoch(now()));
        self.write(LABEL, write).await?;
        Ok(counted)
    }

    async fn import_stored(&self, bottles: &[(Sha256Digest, MirroredBottle)]) -> Result<usize> {
        let now = now();
        // The writes are built first: futures that borrow the slice trip
        // the compiler's higher-ranked lifetime check under async_trait.
        let writes: Vec<Write> = bottles
            .iter()
            .map(|(sha256, bottle)| {
                Write::put(stored_item(sha256, bottle, now))
                    .condition("attribute_not_exists(#pk) OR #st <> :stored")
                    .value(":stored", s(STORED))
            })
            .collect();
        futures::stream::iter(writes)
            .map(|write| async move {
                Ok::<_, Error>(matches!(
                    self.write("import_stored", write).await?,
                    Written::Yes
                ))
            })
            .buffer_unordered(IMPORT_CONCURRENCY)
            .try_fold(
                0,
                |new, written| async move { Ok(new + usize::from(written)) },
            )
            .await
    }
}

#[async_trait]
impl RunBook for DynamoLedger {
    async fn seal_run(&self, run_id: &str, expected: u64) -> Result<()> {
        const LABEL: &str = "seal_run";
        let write = Write::update(
            run_pk(run_id),
            "SET #expected = :expected, #sealed = :true REMOVE #planning_until",
        )
        .condition("attribute_exists(#pk)")
        .value(":expected", n(expected))
        .value(":true", AttributeValue::Bool(true));
        match self.write(LABEL, write).await? {
            Written::Yes => Ok(()),
            Written::ConditionFailed(_) => Err(self.run_missing(LABEL, run_id)),
        }
    }

    async fn hold_planning(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = now();
        let write = Write::update(
            run_pk(run_id),
            "SET #planner = :owner, #planning_until = :until",
        )
        .condition(
            "#sealed = :false AND (attribute_not_exists(#planner) OR #planner = :owner \
             OR attribute_not_exists(#planning_until) OR #planning_until < :now)",
        )
        .value(":false", AttributeValue::Bool(false))
        .value(":owner", s(owner))
        .value(":until", epoch(expiry(now, lease)))
        .value(":now", epoch(now));
        Ok(matches!(
            self.write("hold_planning", write).await?,
            Written::Yes
        ))
    }

    async fn open_runs(&self) -> Result<Vec<RunRecord>> {
        const LABEL: &str = "open_runs";
        let Some(item) = self.get(LABEL, OPEN_RUNS_PK).await? else {
            return Ok(Vec::new());
        };
        let ids = match item.get("ids") {
            None => Vec::new(),
            Some(AttributeValue::Ss(ids)) => ids.clone(),
            Some(_) => {
                return Err(self.problem(format!(
                    "{LABEL}: attribute ids of {OPEN_RUNS_PK} is not a string set"
                )));
            }
        };
        let mut runs = Vec::with_capacity(ids.len());
        for run_id in ids {
            match self.run(&run_id).await? {
                Some(run) => runs.push(run),
                None => tracing::warn!(table = %self.table, run_id, "an open run has no record"),
            }
        }
        Ok(runs)
    }

    async fn close_run(&self, run_id: &str) -> Result<()> {
        // DELETE from a set is idempotent: a retried write is harmless.
        let write = Write::update(OPEN_RUNS_PK.to_string(), "DELETE #ids :ids")
            .value(":ids", AttributeValue::Ss(vec![run_id.to_string()]));
        self.write("close_run", write).await?;
        Ok(())
    }

    async fn counted(
        &self,
        run_id: &str,
        sha256s: &[Sha256Digest],
    ) -> Result<BTreeSet<Sha256Digest>> {
        const LABEL: &str = "counted";
        let mut counted = BTreeSet::new();
        for chunk in sha256s.chunks(100) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|sha| Item::from([("pk".to_string(), s(marker_pk(run_id, sha)))]))
                .collect();
            let mut rounds = 0;
            while !keys.is_empty() {
                rounds += 1;
                if rounds > RACE_ROUNDS * 4 {
                    return Err(self.problem(format!(
                        "{LABEL}: BatchGetItem left {} keys unprocessed after {rounds} rounds",
                        keys.len()
                    )));
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .projection_expression("#pk, sha256")
                    .expression_attribute_names("#pk", "pk")
                    .build()
                    .map_err(|e| self.problem(format!("{LABEL}: {e}")))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|err| self.sdk_error(LABEL, "BatchGetItem", "count# items", &err))?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Ok(sha) = get_s(item, "sha256").and_then(Sha256Digest::parse) {
                        counted.insert(sha);
                    }
                }
                if let Some(left) = output.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    keys = left.keys().to_vec();
                    if !keys.is_empty() {
                        tokio::time::sleep(Duration::from_millis(50 << rounds.min(5))).await;
                    }
                }
            }
        }
        Ok(counted)
    }

    async fn mark_resent(&self, run_id: &str, sha256: &Sha256Digest, by: &str) -> Result<bool> {
        const LABEL: &str = "mark_resent";
        let now = now();
        let mut item = Item::new();
        item.insert("pk".into(), s(resent_pk(run_id, sha256)));
        item.insert("by".into(), s(by));
        item.insert("resent_at".into(), s(rfc3339(now)));
        let expires = now.timestamp() + MARKER_TTL_DAYS * 24 * 3600;
        item.insert("expires_at".into(), AttributeValue::N(expires.to_string()));
        let write = Write::put(item).condition("attribute_not_exists(#pk)");
        let old = match self.write(LABEL, write).await? {
            Written::Yes => return Ok(true),
            Written::ConditionFailed(Some(old)) => Some(old),
            Written::ConditionFailed(None) => self.get(LABEL, &resent_pk(run_id, sha256)).await?,
        };
        // Our own earlier write whose answer was lost counts as ours.
        Ok(old.is_some_and(|old| get_s(&old, "by").ok() == Some(by)))
    }

    async fn note_reconciled(&self, run_id: &str) -> Result<()> {
        const LABEL: &str = "note_reconciled";
        let write = Write::update(run_pk(run_id), "SET #reconciled_at = :now")
            .condition("attribute_exists(#pk)")
            .value(":now", s(rfc3339(now())));
        match self.write(LABEL, write).await? {
            Written::Yes => Ok(()),
            Written::ConditionFailed(_) => Err(self.run_missing(LABEL, run_id)),
        }
    }

    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        const LABEL: &str = "create_run";
        if run.run_id == "latest" {
            return Err(self.problem(format!(
                "{LABEL}: the run id \"latest\" is reserved ({LATEST_PK} points at the newest run)"
            )));
        }
        let mut pointer = Item::new();
        pointer.insert("pk".into(), s(LATEST_PK));
        pointer.insert("run_id".into(), s(&run.run_id));
        let writes = vec![
            Write::put(run_item(run)).condition("attribute_not_exists(#pk)"),
            Write::put(pointer),
            Write::update(OPEN_RUNS_PK.to_string(), "ADD #ids :ids")
                .value(":ids", AttributeValue::Ss(vec![run.run_id.clone()])),
        ];
        match self.transact(LABEL, writes).await? {
            Transaction::Committed => Ok(()),
            Transaction::Cancelled(reasons) => {
                let existing = self.get(LABEL, &run_pk(&run.run_id)).await?;
                // Our own earlier attempt, whose answer was lost: the SDK's
                // retry then fails the condition on what the first wrote.
                if existing.as_ref().is_some_and(|item| {
                    get_s(item, "started_at").ok() == Some(rfc3339(run.started_at).as_str())
                        && get_s(item, "date").ok() == Some(run.date.as_str())
                }) {
                    return Ok(());
                }
                let exists = match reasons.first().and_then(Reason::passed) {
                    Some(passed) => !passed,
                    None => existing.is_some(),
                };
                let codes = reasons
                    .iter()
                    .map(|r| r.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(self.problem(if exists {
                    format!("{LABEL}: run {:?} already exists", run.run_id)
                } else {
                    format!(
                        "{LABEL}: the transaction writing run {:?} was cancelled ({codes})",
                        run.run_id
                    )
                }))
            }
        }
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let pk = run_pk(run_id);
        match self.get("run", &pk).await? {
            None => Ok(None),
            Some(item) => parse_run(&item).map(Some).map_err(|problem| {
                self.problem(format!("run: item {pk} is unreadable: {problem}"))
            }),
        }
    }

    async fn latest_run(&self) -> Result<Option<RunRecord>> {
        let Some(pointer) = self.get("latest_run", LATEST_PK).await? else {
            return Ok(None);
        };
        let run_id = get_s(&pointer, "run_id").map_err(|problem| {
            self.problem(format!(
                "latest_run: item {LATEST_PK} is unreadable: {problem}"
            ))
        })?;
        match self.run(run_id).await? {
            Some(run) => Ok(Some(run)),
            None => Err(self.problem(format!(
                "latest_run: {LATEST_PK} points at run {run_id:?}, which does not exist"
            ))),
        }
    }

    async fn try_progress_slot(
        &self,
        run_id: &str,
        interval: Duration,
    ) -> Result<Option<RunRecord>> {
        const LABEL: &str = "try_progress_slot";
        const EXPRESSION: &str = "SET #last_progress_at = :now";
        let pk = run_pk(run_id);
        let now = now();
        // A condition cannot subtract: the cut-off is computed here. Only
        // one writer per interval can see `last_progress_at <= :due` hold,
        // because the winner moves it to `:now`.
        let due = chrono::Duration::from_std(interval)
            .ok()
            .and_then(|interval| now.checked_sub_signed(interval))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        // `#state = :running` also fails for a missing item, so the update
        // never creates a stub run. A run written before `last_progress_at`
        // existed gets its first slot at once.
        let write = Write::update(pk.clone(), EXPRESSION)
            .condition(
                "#state = :running \
                 AND (attribute_not_exists(#last_progress_at) OR #last_progress_at <= :due)",
            )
            .value(":running", s(run_state(RunState::Running)))
            .value(":now", epoch(now))
            .value(":due", epoch(due));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .update_expression(EXPRESSION)
            .set_condition_expression(write.condition.map(str::to_string))
            .set_expression_attribute_names(write.names())
            .set_expression_attribute_values(write.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match result {
            Ok(output) => output.attributes,
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => return Ok(None),
                _ => return Err(self.sdk_error(LABEL, "UpdateItem", &pk, &err)),
            },
        };
        let item = match item {
            Some(item) if !item.is_empty() => item,
            // Not what DynamoDB does with ALL_NEW, but a read is as good.
            _ => match self.get(LABEL, &pk).await? {
                Some(item) => item,
                None => return Ok(None),
            },
        };
        parse_run(&item)
            .map(Some)
            .map_err(|problem| self.problem(format!("{LABEL}: item {pk} is unreadable: {problem}")))
    }
}

#[async_trait]
impl FinishLease for DynamoLedger {
    async fn begin_finish(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = now();
        let write = Write::update(
            run_pk(run_id),
            "SET #state = :finishing, #finisher = :owner, #finish_lease = :expires",
        )
        .condition(
            "(#state = :running AND #done >= #expected \
              AND (attribute_not_exists(#sealed) OR #sealed = :true)) \
             OR (#state = :finishing AND (#finish_lease < :now OR #finisher = :owner))",
        )
        .value(":true", AttributeValue::Bool(true))
        .value(":running", s(run_state(RunState::Running)))
        .value(":finishing", s(run_state(RunState::Finishing)))
        .value(":owner", s(owner))
        .value(":expires", epoch(expiry(now, lease)))
        .value(":now", epoch(now));
        Ok(matches!(
            self.write("begin_finish", write).await?,
            Written::Yes
        ))
    }

    async fn extend_finish(&self, run_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let write = Write::update(run_pk(run_id), "SET #finish_lease = :expires")
            .condition("#state = :finishing AND #finisher = :owner")
            .value(":finishing", s(run_state(RunState::Finishing)))
            .value(":owner", s(owner))
            .value(":expires", epoch(expiry(now(), lease)));
        Ok(matches!(
            self.write("extend_finish", write).await?,
            Written::Yes
        ))
    }

    async fn mark_compacted(&self, run_id: &str, owner: &str) -> Result<()> {
        const LABEL: &str = "mark_compacted";
        let write = Write::update(run_pk(run_id), "SET #compacted = :true")
            .condition("#state = :finishing AND #finisher = :owner")
            .value(":true", AttributeValue::Bool(true))
            .value(":finishing", s(run_state(RunState::Finishing)))
            .value(":owner", s(owner));
        match self.write(LABEL, write).await? {
            Written::Yes => Ok(()),
            Written::ConditionFailed(old) => {
                Err(self.not_finisher(LABEL, run_id, owner, old).await)
            }
        }
    }

    async fn defer_summary(&self, run_id: &str, owner: &str, problem: &str) -> Result<()> {
        const LABEL: &str = "defer_summary";
        // No finisher, and the lease ends now: the next caller of
        // begin_finish posts again.
        let write = Write::update(
            run_pk(run_id),
            "SET #finish_lease = :zero, #summary_error = :problem ADD #summary_attempts :one REMOVE #finisher",
        )
        .condition("#state = :finishing AND #finisher = :owner")
        .value(":zero", AttributeValue::N("0".into()))
        .value(":problem", s(problem))
        .value(":one", n(1))
        .value(":finishing", s(run_state(RunState::Finishing)))
        .value(":owner", s(owner));
        match self.write(LABEL, write).await? {
            Written::Yes => Ok(()),
            Written::ConditionFailed(old) => {
                Err(self.not_finisher(LABEL, run_id, owner, old).await)
            }
        }
    }

    async fn mark_summary_sent(&self, run_id: &str, _owner: &str) -> Result<()> {
        const LABEL: &str = "mark_summary_sent";
        // Not conditional on the finisher: whoever got Slack's 2xx records
        // it, so that a finisher that took over meanwhile does not post again.
        let write = Write::update(run_pk(run_id), "SET #summary_sent = :true")
            .condition("attribute_exists(#pk)")
            .value(":true", AttributeValue::Bool(true));
        match self.write(LABEL, write).await? {
            Written::Yes => Ok(()),
            Written::ConditionFailed(_) => Err(self.run_missing(LABEL, run_id)),
        }
    }

    async fn finish(&self, run_id: &str, owner: &str) -> Result<()> {
        const LABEL: &str = "finish";
        let now = now();
        let write = Write::update(run_pk(run_id), "SET #state = :finished, #finished_at = :at")
            .condition("#finisher = :owner AND #state = :finishing")
            .value(":finished", s(run_state(RunState::Finished)))
            .value(":finishing", s(run_state(RunState::Finishing)))
            .value(":owner", s(owner))
            .value(":at", s(rfc3339(now)));
        let old = match self.write(LABEL, write).await? {
            Written::Yes => return Ok(()),
            Written::ConditionFailed(Some(old)) => Some(old),
            Written::ConditionFailed(None) => self.get(LABEL, &run_pk(run_id)).await?,
        };
        let finished_by_me = old.as_ref().is_some_and(|item| {
            get_s(item, "finisher").ok() == Some(owner)
                && get_s(item, "state").ok() == Some(run_state(RunState::Finished))
        });
        if finished_by_me {
            // A repeated call by the finisher.
            return Ok(());
        }
        Err(self.not_finisher(LABEL, run_id, owner, old).await)
    }
}

impl DynamoLedger {
    async fn not_finisher(
        &self,
        label: &str,
        run_id: &str,
        owner: &str,
        old: Option<Item>,
    ) -> Error {
        let old = match old {
            Some(old) => Some(old),
            None => match self.get(label, &run_pk(run_id)).await {
                Ok(old) => old,
                Err(err) => return err,
            },
        };
        let Some(old) = old else {
            return self.run_missing(label, run_id);
        };
        self.problem(format!(
            "{label}: {owner:?} does not hold the finishing lease of run {run_id:?} (finisher: {}, state: {})",
            get_s(&old, "finisher").unwrap_or("none"),
            get_s(&old, "state").unwrap_or("?"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_round_trip_to_the_millisecond() {
        for millis in [
            0,
            1_764_400_000_000,
            1_764_400_000_250,
            1_764_400_000_007,
            -1_500,
        ] {
            let text = format_epoch(millis);
            assert_eq!(
                parse_epoch(&text).unwrap().timestamp_millis(),
                millis,
                "{text}"
            );
        }
        assert_eq!(format_epoch(1_764_400_000_250), "1764400000.25");
        assert_eq!(format_epoch(-1_500), "-1.5");
        assert_eq!(
            parse_epoch("1764400000.1239").unwrap().timestamp_millis(),
            1_764_400_000_123
        );
        assert_eq!(parse_epoch("1.5E3").unwrap().timestamp_millis(), 1_500_000);
        assert!(parse_epoch("soon").is_none());
    }

    #[test]
    fn names_and_values_come_from_the_expressions() {
        let write = Write::update("bottle#x".into(), "SET #st = :a REMOVE #owner")
            .condition("attribute_not_exists(#pk) OR #st IN (:a, :b)")
            .value(":a", s("1"))
            .value(":b", s("2"))
            .value(":unused", s("3"));
        let names = write.names().unwrap();
        assert_eq!(names.len(), 3);
        assert_eq!(names["#st"], "st");
        assert_eq!(names["#pk"], "pk");
        let values = write.values().unwrap();
        assert_eq!(values.len(), 2);
        assert!(!values.contains_key(":unused"));
        assert!(Write::put(Item::new()).names().is_none());
    }
}
