//! The table's items: keys, the bottle and run codecs, attribute values
//! (the layout is in the module docs).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};

use bottlesync_core::Sha256Digest;
use bottlesync_core::model::hash_file::MirroredBottle;
use bottlesync_core::model::key::ObjectKey;
use bottlesync_core::model::tag::Tag;
use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::fleet_ledger::BottleState;
use bottlesync_core::run::record::{FailureNote, RunRecord, RunState};

use super::write::*;
use super::*;

pub(super) const BOTTLE_PREFIX: &str = "bottle#";
pub(super) const LATEST_PK: &str = "run#latest";
/// The ids of runs not yet closed, as a string set `ids`.
pub(super) const OPEN_RUNS_PK: &str = "runs#open";
pub(super) const QUEUED: &str = "queued";
pub(super) const CLAIMED: &str = "claimed";
pub(super) const STORED: &str = "stored";
pub(super) const FAILED: &str = "failed";

pub(super) fn bottle_pk(sha256: &Sha256Digest) -> String {
    format!("{BOTTLE_PREFIX}{sha256}")
}

pub(super) fn run_pk(run_id: &str) -> String {
    format!("run#{run_id}")
}

pub(super) fn marker_pk(run_id: &str, sha256: &Sha256Digest) -> String {
    format!("count#{run_id}#{sha256}")
}

pub(super) fn resent_pk(run_id: &str, sha256: &Sha256Digest) -> String {
    format!("resent#{run_id}#{sha256}")
}

#[derive(Clone, Copy)]
pub(super) enum Counter {
    Stored,
    Skipped,
    Failed,
}

impl Counter {
    pub(super) fn name(self) -> &'static str {
        match self {
            Counter::Stored => "stored",
            Counter::Skipped => "skipped",
            Counter::Failed => "failed",
        }
    }
}

/// The `count#` marker: absent until the bottle is counted for the run.
pub(super) fn marker_write(
    run_id: &str,
    sha256: &Sha256Digest,
    counter: Counter,
    now: DateTime<Utc>,
) -> Write {
    let mut item = Item::new();
    item.insert("pk".into(), s(marker_pk(run_id, sha256)));
    item.insert("run_id".into(), s(run_id));
    item.insert("sha256".into(), s(sha256.as_str()));
    item.insert("counted_as".into(), s(counter.name()));
    item.insert("counted_at".into(), s(rfc3339(now)));
    let expires = now.timestamp() + MARKER_TTL_DAYS * 24 * 3600;
    item.insert("expires_at".into(), AttributeValue::N(expires.to_string()));
    Write::put(item).condition("attribute_not_exists(#pk)")
}

/// The run's counters: the specific one, `done`, and for stored bottles
/// their bytes. The run must exist (`ADD` would otherwise create a stub).
pub(super) fn counter_write(
    run_id: &str,
    counter: Counter,
    bytes: u64,
    now: DateTime<Utc>,
) -> Write {
    let expression = match counter {
        Counter::Stored => {
            "ADD #stored :one, #done :one, #bytes_stored :bytes SET #last_counted_at = :now"
        }
        Counter::Skipped => "ADD #skipped :one, #done :one SET #last_counted_at = :now",
        Counter::Failed => "ADD #failed :one, #done :one SET #last_counted_at = :now",
    };
    Write::update(run_pk(run_id), expression)
        .condition("attribute_exists(#pk)")
        .value(":one", n(1))
        .value(":bytes", n(bytes))
        .value(":now", s(rfc3339(now)))
}

/// `claimed` by `owner` -> `stored`.
pub(super) fn store_write(
    sha256: &Sha256Digest,
    run_id: &str,
    owner: &str,
    bottle: &MirroredBottle,
    now: DateTime<Utc>,
) -> Write {
    let mut write = Write::update(
        bottle_pk(sha256),
        "SET #st = :stored, #name = :name, #version = :version, #rebuild = :rebuild, #tag = :tag, \
         #key = :key, #size = :size, #downloaded_at = :downloaded_at, #stored_at = :stored_at, \
         #run_id = :run REMOVE #owner, #lease_expires, #queued_until",
    )
    .condition("#st = :claimed AND #owner = :owner")
    .value(":claimed", s(CLAIMED))
    .value(":owner", s(owner))
    .value(":run", s(run_id));
    for (name, value) in stored_attributes(bottle, now) {
        write = write.value(name, value);
    }
    write
}

/// The stored bottle's attributes, by name (`st` included).
pub(super) fn stored_attributes(
    bottle: &MirroredBottle,
    now: DateTime<Utc>,
) -> Vec<(&'static str, AttributeValue)> {
    vec![
        (":stored", s(STORED)),
        (":name", s(&bottle.name)),
        (":version", s(&bottle.version)),
        (":rebuild", n(u64::from(bottle.rebuild))),
        (":tag", s(bottle.tag.as_str())),
        (":key", s(bottle.key.as_str())),
        (":size", n(bottle.size)),
        (":downloaded_at", s(rfc3339(bottle.downloaded_at))),
        (":stored_at", s(rfc3339(now))),
    ]
}

pub(super) fn stored_item(
    sha256: &Sha256Digest,
    bottle: &MirroredBottle,
    now: DateTime<Utc>,
) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(bottle_pk(sha256)));
    for (name, value) in stored_attributes(bottle, now) {
        let attribute = if name == ":stored" { "st" } else { &name[1..] };
        item.insert(attribute.to_string(), value);
    }
    item
}

pub(super) fn state_of(item: &Item) -> Option<&str> {
    get_s(item, "st").ok()
}

pub(super) fn holds(item: &Item, owner: &str) -> bool {
    state_of(item) == Some(CLAIMED) && get_s(item, "owner").ok() == Some(owner)
}

pub(super) fn parse_bottle(item: &Item) -> std::result::Result<BottleState, String> {
    match get_s(item, "st")? {
        STORED => Ok(BottleState::Stored(MirroredBottle {
            name: get_s(item, "name")?.to_string(),
            version: get_s(item, "version")?.to_string(),
            rebuild: get_n(item, "rebuild")?,
            tag: Tag::parse(get_s(item, "tag")?)?,
            key: ObjectKey::parse(get_s(item, "key")?).map_err(|e| e.to_string())?,
            size: get_n(item, "size")?,
            downloaded_at: get_time(item, "downloaded_at")?,
        })),
        QUEUED => Ok(BottleState::Queued {
            run_id: get_s(item, "run_id")?.to_string(),
            until: get_epoch(item, "queued_until")?,
        }),
        CLAIMED => Ok(BottleState::Claimed {
            owner: get_s(item, "owner")?.to_string(),
            lease_expires: get_epoch(item, "lease_expires")?,
        }),
        FAILED => Ok(BottleState::Failed),
        other => Err(format!("unknown state st = {other:?}")),
    }
}

pub(super) fn run_state(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Finishing => "finishing",
        RunState::Finished => "finished",
    }
}

pub(super) fn note_value(note: &FailureNote) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("name".to_string(), s(&note.name)),
        ("tag".to_string(), s(&note.tag)),
        ("sha256".to_string(), s(&note.sha256)),
        ("reason".to_string(), s(&note.reason)),
    ]))
}

pub(super) fn run_item(run: &RunRecord) -> Item {
    let mut item = Item::from([
        ("pk".to_string(), s(run_pk(&run.run_id))),
        ("run_id".to_string(), s(&run.run_id)),
        ("date".to_string(), s(&run.date)),
        ("expected".to_string(), n(run.expected)),
        ("bytes_planned".to_string(), n(run.bytes_planned)),
        ("route".to_string(), s(run.route.as_str())),
        ("started_at".to_string(), s(rfc3339(run.started_at))),
        // The start message is the first progress message.
        ("last_progress_at".to_string(), epoch(run.started_at)),
        ("state".to_string(), s(run_state(run.state))),
        ("stored".to_string(), n(run.stored)),
        ("skipped".to_string(), n(run.skipped)),
        ("failed".to_string(), n(run.failed)),
        ("bytes_stored".to_string(), n(run.bytes_stored)),
        ("done".to_string(), n(run.done())),
        (
            "failures".to_string(),
            AttributeValue::L(run.failures.iter().map(note_value).collect()),
        ),
        (
            "summary_sent".to_string(),
            AttributeValue::Bool(run.summary_sent),
        ),
        ("sealed".to_string(), AttributeValue::Bool(run.sealed)),
        ("compacted".to_string(), AttributeValue::Bool(run.compacted)),
        (
            "summary_attempts".to_string(),
            n(u64::from(run.summary_attempts)),
        ),
    ]);
    if let Some(problem) = &run.summary_error {
        item.insert("summary_error".into(), s(problem));
    }
    if let Some(at) = run.finished_at {
        item.insert("finished_at".into(), s(rfc3339(at)));
    }
    if let Some(at) = run.last_counted_at {
        item.insert("last_counted_at".into(), s(rfc3339(at)));
    }
    if let Some(planner) = &run.planner {
        item.insert("planner".into(), s(planner));
    }
    if let Some(until) = run.planning_until {
        item.insert("planning_until".into(), epoch(until));
    }
    if let Some(at) = run.reconciled_at {
        item.insert("reconciled_at".into(), s(rfc3339(at)));
    }
    item
}

pub(super) fn parse_run(item: &Item) -> std::result::Result<RunRecord, String> {
    let state = match get_s(item, "state")? {
        "running" => RunState::Running,
        "finishing" => RunState::Finishing,
        "finished" => RunState::Finished,
        other => return Err(format!("unknown run state {other:?}")),
    };
    let route = Route::parse(get_s(item, "route")?)?;
    let failures = match item.get("failures") {
        None => Vec::new(),
        Some(AttributeValue::L(notes)) => notes
            .iter()
            .map(|note| match note {
                AttributeValue::M(note) => Ok(FailureNote {
                    name: get_s(note, "name")?.to_string(),
                    tag: get_s(note, "tag")?.to_string(),
                    sha256: get_s(note, "sha256")?.to_string(),
                    reason: get_s(note, "reason")?.to_string(),
                }),
                _ => Err("a failure note is not a map".to_string()),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => return Err("attribute failures is not a list".into()),
    };
    let optional_time = |name: &str| match item.get(name) {
        None => Ok(None),
        Some(_) => get_time(item, name).map(Some),
    };
    let finished_at = optional_time("finished_at")?;
    let summary_sent = match item.get("summary_sent") {
        None => false,
        Some(AttributeValue::Bool(sent)) => *sent,
        Some(_) => return Err("attribute summary_sent is not a boolean".into()),
    };
    // Runs written before sealing existed were created with their final count.
    let sealed = match item.get("sealed") {
        None => true,
        Some(AttributeValue::Bool(sealed)) => *sealed,
        Some(_) => return Err("attribute sealed is not a boolean".into()),
    };
    let last_counted_at = optional_time("last_counted_at")?;
    let reconciled_at = optional_time("reconciled_at")?;
    let planner = match item.get("planner") {
        None => None,
        Some(_) => Some(get_s(item, "planner")?.to_string()),
    };
    let planning_until = match item.get("planning_until") {
        None => None,
        Some(_) => Some(get_epoch(item, "planning_until")?),
    };
    let compacted = match item.get("compacted") {
        None => false,
        Some(AttributeValue::Bool(compacted)) => *compacted,
        Some(_) => return Err("attribute compacted is not a boolean".into()),
    };
    let summary_attempts = u32::try_from(get_n_or_zero(item, "summary_attempts")?)
        .map_err(|_| "attribute summary_attempts is out of range".to_string())?;
    let summary_error = match item.get("summary_error") {
        None => None,
        Some(_) => Some(get_s(item, "summary_error")?.to_string()),
    };
    Ok(RunRecord {
        run_id: get_s(item, "run_id")?.to_string(),
        date: get_s(item, "date")?.to_string(),
        expected: get_n(item, "expected")?,
        bytes_planned: get_n(item, "bytes_planned")?,
        route,
        started_at: get_time(item, "started_at")?,
        state,
        stored: get_n_or_zero(item, "stored")?,
        skipped: get_n_or_zero(item, "skipped")?,
        failed: get_n_or_zero(item, "failed")?,
        bytes_stored: get_n_or_zero(item, "bytes_stored")?,
        failures,
        finished_at,
        summary_sent,
        sealed,
        last_counted_at,
        compacted,
        summary_attempts,
        summary_error,
        planner,
        planning_until,
        reconciled_at,
    })
}

// ---- attribute values -------------------------------------------------

pub(super) fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub(super) fn n(number: u64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> std::result::Result<&'a str, String> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Ok(text),
        Some(_) => Err(format!("attribute {name} is not a string")),
        None => Err(format!("attribute {name} is missing")),
    }
}

pub(super) fn get_n<T: FromStr>(item: &Item, name: &str) -> std::result::Result<T, String> {
    match item.get(name) {
        Some(AttributeValue::N(number)) => number
            .parse()
            .map_err(|_| format!("attribute {name} = {number} is out of range")),
        Some(_) => Err(format!("attribute {name} is not a number")),
        None => Err(format!("attribute {name} is missing")),
    }
}

pub(super) fn get_n_or_zero(item: &Item, name: &str) -> std::result::Result<u64, String> {
    if item.contains_key(name) {
        get_n(item, name)
    } else {
        Ok(0)
    }
}

pub(super) fn get_time(item: &Item, name: &str) -> std::result::Result<DateTime<Utc>, String> {
    let text = get_s(item, name)?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("attribute {name} = {text:?} is not an RFC 3339 time: {e}"))
}

pub(super) fn get_epoch(item: &Item, name: &str) -> std::result::Result<DateTime<Utc>, String> {
    match item.get(name) {
        Some(AttributeValue::N(number)) => parse_epoch(number)
            .ok_or_else(|| format!("attribute {name} = {number} is not epoch seconds")),
        Some(_) => Err(format!("attribute {name} is not a number")),
        None => Err(format!("attribute {name} is missing")),
    }
}

pub(super) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The clock, to the millisecond (what the table keeps).
pub(super) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_else(Utc::now)
}

pub(super) fn expiry(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Epoch seconds with millisecond decimals (`1764400000.25`).
pub(super) fn epoch(time: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(format_epoch(time.timestamp_millis()))
}

pub(super) fn format_epoch(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let abs = millis.unsigned_abs();
    let (seconds, fraction) = (abs / 1000, abs % 1000);
    if fraction == 0 {
        format!("{sign}{seconds}")
    } else {
        let digits = format!("{fraction:03}");
        format!("{sign}{seconds}.{}", digits.trim_end_matches('0'))
    }
}

pub(super) fn parse_epoch(text: &str) -> Option<DateTime<Utc>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        // DynamoDB hands numbers back in plain notation, but be lenient.
        let seconds: f64 = text.parse().ok()?;
        return DateTime::from_timestamp_millis((seconds * 1000.0).round() as i64);
    }
    let millis_part: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
        .parse()
        .ok()?;
    let millis = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis_part)?;
    DateTime::from_timestamp_millis(if negative { -millis } else { millis })
}
