//! Reading what a run left behind: the parts both backends read the same
//! way, through the harness's own [`FleetServices`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use bottlesync_core::model::message::salvage_ids;
use bottlesync_core::services::FleetServices;
use bottlesync_loadtest::webhook::WebhookReceiver;

use crate::drive::Driven;
use crate::verify::{EndState, RunCounts};
use crate::world::World;

/// The part of the end state both backends read the same way.
#[allow(clippy::too_many_arguments)]
pub async fn finish_end_state(
    services: &FleetServices,
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
        dlq_copies_allowed: false,
        redownloads_allowed_by_lost_answers: 0,
    })
}

/// The sha256 of every DLQ message (each received once, kept invisible).
async fn drain_dlq(services: &FleetServices) -> anyhow::Result<Vec<Option<String>>> {
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
