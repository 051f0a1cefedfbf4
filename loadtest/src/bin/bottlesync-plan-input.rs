//! Writes the inputs of the planning benchmark (`loadtest/bench/plan.sh`):
//!
//! - `formula.json`: the stand-in's index of a generated catalog (Homebrew's
//!   schema, served by an in-process stand-in and fetched over HTTP like a
//!   client would), each entry padded with a `variations` object (per-tag
//!   dependency overrides, as the real index carries) until the whole file
//!   is about `--index-mb` MB, the size of homebrew/core's today;
//! - `bottles_hash.json`: a schema-1 mirror record of `--stored` bottles: a
//!   share (`--stored-share`) of the index's bottles plus bottles of older
//!   versions that are no longer in the index (a long-running mirror);
//! - `packages.<tag>.jws.json` for every current tag: the per-tag API files
//!   the stand-in serves for the same catalog (what brew >= 6 installs
//!   from, and what the planner plans from);
//! - `meta.json`: the API URL (for the host policy), the counts, and how
//!   many bottles a plan over all current tags must leave to fetch.
//!
//! Everything is fixed by the arguments: the same arguments give the same
//! files, byte for byte, except for the API port inside the URLs.

use std::path::PathBuf;

use anyhow::Context as _;
use bottlesync_loadtest::{CURRENT_TAGS, Catalog, SizeModel, StandIn, StandInConfig};
use clap::Parser;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

#[derive(Debug, Parser)]
#[command(name = "bottlesync-plan-input")]
struct Args {
    /// Directory to write formula.json, bottles_hash.json and meta.json to.
    #[arg(long)]
    out: PathBuf,
    /// Formulae in the index.
    #[arg(long, default_value_t = 7000)]
    formulae: usize,
    /// Catalog seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bottles in the mirror record.
    #[arg(long, default_value_t = 60_000)]
    stored: usize,
    /// Share of the index's bottles the record holds (the rest is missing).
    #[arg(long, default_value_t = 0.9)]
    stored_share: f64,
    /// Target size of formula.json in MB (10^6 bytes); 0: no padding.
    #[arg(long, default_value_t = 30.0)]
    index_mb: f64,
}

/// A stable pseudo-random u64 from a key.
fn h64(key: &str) -> u64 {
    let d = Sha256::digest(key.as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

fn sha_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.stored_share),
        "--stored-share must be within 0..1"
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    // Small bottles: only their sha256s matter here, and the stand-in hashes
    // every one of them at start.
    let catalog = Catalog::generated(
        args.formulae,
        args.seed,
        SizeModel::log_normal(2 << 10, 64 << 10),
    );
    let standin = StandIn::start(StandInConfig::new(catalog)).await?;
    let api_url = standin.api_url();
    let body = reqwest::get(format!("{api_url}/formula.json"))
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let bottles = standin.bottles();
    let names: Vec<String> = standin
        .catalog()
        .formulae()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let mut packages_bytes = 0;
    for tag in CURRENT_TAGS {
        let file = standin
            .packages_file(tag)
            .with_context(|| format!("the stand-in has no per-tag file for {tag}"))?;
        packages_bytes += file.len();
        std::fs::write(args.out.join(format!("packages.{tag}.jws.json")), file)?;
    }
    standin.shutdown().await;

    // ---- formula.json, padded like the real index.
    let mut entries: Vec<Value> = serde_json::from_slice(&body).context("stand-in index")?;
    let target = (args.index_mb * 1e6) as usize;
    let per_entry = target.saturating_sub(body.len()) / entries.len().max(1);
    for (i, entry) in entries.iter_mut().enumerate() {
        pad_entry(entry, i, per_entry, &names);
    }
    let index_text = serde_json::to_vec(&entries)?;
    std::fs::write(args.out.join("formula.json"), &index_text)?;

    // ---- bottles_hash.json.
    let mut record = Map::new();
    let mut matching = 0usize;
    let mut missing_active = 0usize;
    let share_cut = (args.stored_share * u64::MAX as f64) as u64;
    for b in &bottles {
        if record.len() >= args.stored {
            break;
        }
        let stored = h64(&format!("stored/{}", b.sha256)) < share_cut || args.stored_share >= 1.0;
        if !stored {
            if !b.disabled {
                missing_active += 1;
            }
            continue;
        }
        matching += 1;
        record.insert(
            b.sha256.clone(),
            json!({
                "name": b.name,
                "version": b.pkg_version,
                "rebuild": b.rebuild,
                "tag": b.tag,
                "key": format!("2026-{:02}-{:02}/{}", 1 + h64(&b.sha256) % 11, 1 + h64(&b.name) % 28, b.mirror_file_name),
                "size": b.size,
                "downloaded_at": "2026-10-01T03:00:00Z",
            }),
        );
    }
    // Older versions of the same formulae, no longer in the index.
    let mut k = 0u64;
    while record.len() < args.stored && !bottles.is_empty() {
        let b = &bottles[(h64(&format!("old/{k}")) % bottles.len() as u64) as usize];
        let version = format!("0.{}.{}", k % 97, k / 97 % 1000);
        let file = format!("{}-{version}.{}.bottle.tar.gz", b.name, b.tag);
        record.insert(
            sha_hex(&format!("old/{}/{version}/{}", b.name, b.tag)),
            json!({
                "name": b.name,
                "version": version,
                "rebuild": 0,
                "tag": b.tag,
                "key": format!("2025-{:02}-{:02}/{file}", 1 + k % 12, 1 + k % 28),
                "size": b.size,
                "downloaded_at": "2025-06-01T03:00:00Z",
            }),
        );
        k += 1;
    }
    let hash_file = json!({
        "schema": 1,
        "updated_at": "2026-11-28T03:00:00Z",
        "bottles": record,
    });
    let hash_text = serde_json::to_vec_pretty(&hash_file)?;
    std::fs::write(args.out.join("bottles_hash.json"), &hash_text)?;

    // Bottles per tag, to describe the input.
    let mut per_tag = Map::new();
    for b in &bottles {
        let n = per_tag.entry(b.tag.clone()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    let meta = json!({
        "api_url": api_url,
        "formulae": entries.len(),
        "seed": args.seed,
        "tags": CURRENT_TAGS,
        "index_bytes": index_text.len(),
        "packages_files_bytes": packages_bytes,
        "index_bottles": bottles.len(),
        "bottles_per_tag": per_tag,
        "disabled_formulae": standin_disabled(&bottles),
        "hash_file_bytes": hash_text.len(),
        "stored": args.stored,
        "stored_matching_index": matching,
        "stored_older_versions": k,
        // Every bottle of an enabled formula is installed on some current
        // tag (exactly, or as `all`), so this is what the plan must fetch.
        "expected_jobs": missing_active,
    });
    std::fs::write(
        args.out.join("meta.json"),
        serde_json::to_vec_pretty(&meta)?,
    )?;
    println!("{}", serde_json::to_string(&meta)?);
    Ok(())
}

/// Formulae with the disabled flag (counted once each).
fn standin_disabled(bottles: &[bottlesync_loadtest::BottleInfo]) -> usize {
    let mut names: Vec<&str> = bottles
        .iter()
        .filter(|b| b.disabled)
        .map(|b| b.name.as_str())
        .collect();
    names.dedup();
    names.len()
}

/// Adds what real entries carry and the stand-in leaves out: `variations`
/// (per-tag `dependencies` overrides), `uses_from_macos`, and a caveat on
/// some, until the entry grew by about `budget` bytes.
fn pad_entry(entry: &mut Value, i: usize, budget: usize, names: &[String]) {
    let Some(obj) = entry.as_object_mut() else {
        return;
    };
    if budget == 0 {
        return;
    }
    let pick = |k: u64| names[(h64(&format!("{i}/{k}")) % names.len() as u64) as usize].clone();
    let uses: Vec<Value> = (0..3)
        .map(|k| {
            if k == 0 {
                json!({ pick(k): "build" })
            } else {
                json!(pick(k))
            }
        })
        .collect();
    let mut added = serde_json::to_string(&uses).map_or(0, |s| s.len()) + 20;
    obj.insert("uses_from_macos".into(), Value::Array(uses));
    obj.insert(
        "uses_from_macos_bounds".into(),
        json!([{ "since": "sonoma" }, {}, {}]),
    );
    added += 60;
    if i.is_multiple_of(7) {
        let caveat = format!(
            "To start {} now and restart at login:\n  brew services start {}\nOr, if you don't want/need a background service you can just run:\n  {} --foreground\n",
            names[i % names.len()],
            names[i % names.len()],
            names[i % names.len()]
        );
        added += caveat.len() + 12;
        obj.insert("caveats".into(), Value::String(caveat));
    }
    // Per-tag dependency lists, grown round-robin until the budget is met.
    let tags = CURRENT_TAGS;
    let mut deps: Vec<Vec<String>> = vec![Vec::new(); tags.len()];
    added += tags.iter().map(|t| t.len() + 40).sum::<usize>();
    let mut k = 0u64;
    while added < budget {
        let name = pick(100 + k);
        added += name.len() + 3;
        deps[k as usize % tags.len()].push(name);
        k += 1;
    }
    let variations: Map<String, Value> = tags
        .iter()
        .zip(deps)
        .map(|(tag, deps)| {
            (
                tag.to_string(),
                json!({ "dependencies": deps, "uses_from_macos": [] }),
            )
        })
        .collect();
    obj.insert("variations".into(), Value::Object(variations));
}
