//! Reading what a run left behind: the parts both backends read the same
//! way, through the harness's own [`FleetAdapters`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_core::brew::publish::PublishedRecord;
use bottlesync_core::model::message::salvage_ids;
use bottlesync_core::ports::fleet_ledger::BottleState;
use bottlesync_loadtest::webhook::WebhookReceiver;

use crate::drive::Driven;
use crate::verify::{EndState, RunCounts};
use crate::world::World;

/// The part of the end state both backends read the same way.
#[allow(clippy::too_many_arguments)]
pub async fn finish_end_state(
    services: &FleetAdapters,
    run_id: &str,
    world: &World,
    webhook: &WebhookReceiver,
    driven: &Driven,
    objects: BTreeMap<String, String>,
    incomplete_uploads: Vec<String>,
    hash_file: Option<BTreeSet<String>>,
) -> anyhow::Result<EndState> {
    let run = services
        .ledger
        .run(run_id)
        .await?
        .context("the run record is gone")?;
    let stats = world.standin.stats();
    Ok(EndState {
        objects,
        incomplete_uploads,
        dlq: drain_dlq(services).await?,
        run: RunCounts::of(&run),
        other_runs: Vec::new(),
        hash_file,
        messages: webhook
            .messages()
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_string())
            .collect(),
        downloads: world
            .bottles
            .keys()
            .map(|sha| (sha.clone(), stats.bottle(sha).storage_gets))
            .collect(),
        held_at_kills: driven.held_at_kills.clone(),
        dlq_copies_allowed_by_kills: false,
        lost_answers_by_bottle: Default::default(),
        published_view: published_view(services).await?,
        marks_left: marks_left(services).await?,
    })
}

/// `bottlesync verify`'s findings over the mirror, as (sha256, line).
async fn published_view(services: &FleetAdapters) -> anyhow::Result<Option<Vec<(String, String)>>> {
    let store = services.store.as_ref();
    if PublishedRecord::read(store).await?.is_none() {
        return Ok(None);
    }
    let report = bottlesync_core::brew::verify::verify(store).await?;
    let mut findings = Vec::new();
    for (tag, tag_report) in &report.tags {
        if let Some(problem) = &tag_report.api_file_problem {
            findings.push((String::new(), format!("{tag}: {problem}")));
        }
        for finding in &tag_report.findings {
            findings.push((finding.sha256.clone(), finding.line()));
        }
    }
    for finding in &report.portable_ruby.findings {
        findings.push((finding.sha256.clone(), finding.line()));
    }
    Ok(Some(findings))
}

/// Bottles still marked queued or claimed in the ledger.
async fn marks_left(services: &FleetAdapters) -> anyhow::Result<Vec<String>> {
    Ok(services
        .ledger
        .bottle_states()
        .await?
        .into_iter()
        .filter(|(_, state)| {
            matches!(
                state,
                BottleState::Queued { .. } | BottleState::Claimed { .. }
            )
        })
        .map(|(sha, _)| sha.to_string())
        .collect())
}

/// The sha256 of every DLQ message (each received once, kept invisible).
async fn drain_dlq(services: &FleetAdapters) -> anyhow::Result<Vec<Option<String>>> {
    let dlq = services.dlq.clone().context("no DLQ")?;
    let mut letters = Vec::new();
    loop {
        let batch = dlq.receive(10, Duration::from_millis(200)).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            letters.push(salvage_ids(&message.body).map(|(_, sha)| sha.to_string()));
            // Out of sight until this check is over, so it is counted once.
            dlq.set_visibility(&message.receipt, Duration::from_secs(600))
                .await?;
        }
    }
    Ok(letters)
}

/// The sha256 keys of a `bottles_hash.json`.
pub fn hash_file_keys(bytes: &[u8]) -> Option<BTreeSet<String>> {
    let record: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(record["bottles"].as_object()?.keys().cloned().collect())
}
