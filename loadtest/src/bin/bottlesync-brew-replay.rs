//! Many `brew install`s at once against a served mirror, for the serve
//! benchmark (`loadtest/bench/serve.sh`): `--clients` tokio tasks, each
//! its own client (own connection pool), each replaying brew 6.0's
//! requests (`brew_client::replay_install`: the per-tag API file, then per
//! bottle HEAD, an abandoned GET, the full GET checked against its sha256,
//! and the manifest with `Authorization: Bearer QQ==`) for every formula
//! of the stand-in's `brew-mirror` catalog, on the tags in turn.
//!
//! Prints one line of `key=value` figures; exits 1 when any install is
//! incomplete or any request failed, naming each problem on stderr.

use std::time::Instant;

use anyhow::Context as _;
use bottlesync_loadtest::Catalog;
use bottlesync_loadtest::brew_client::{HttpMirror, replay_install};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bottlesync-brew-replay")]
struct Args {
    /// The mirror's base URL (`http://127.0.0.1:PORT`): the clients use
    /// `<base>/api` and `<base>/bottles`.
    #[arg(long)]
    base: String,
    /// Installs running at once.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Client tags, comma-separated; client i installs on tag i mod n
    /// (each must be a tag the mirror was synced for).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "arm64_tahoe,tahoe,x86_64_linux"
    )]
    tags: Vec<String>,
}

struct Outcome {
    requests: usize,
    bottles: usize,
    problems: Vec<String>,
}

async fn one_client(base: String, tag: String, names: Vec<String>) -> Outcome {
    let replayed = async {
        let mirror = HttpMirror::new(base)?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        replay_install(&mirror, &tag, &names).await
    }
    .await;
    match replayed {
        Ok(report) => Outcome {
            requests: report.requests().len(),
            bottles: report
                .formulae
                .iter()
                .filter(|f| f.bottle.is_some())
                .count(),
            problems: if report.is_complete() {
                Vec::new()
            } else {
                vec![report.to_string()]
            },
        },
        Err(e) => Outcome {
            requests: 0,
            bottles: 0,
            problems: vec![format!("brew install on {tag}: {e:#}")],
        },
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(!args.tags.is_empty(), "--tags: at least one tag");
    let names: Vec<String> = Catalog::brew_mirror()
        .formulae()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let tag = args.tags[i % args.tags.len()].clone();
            tokio::spawn(one_client(args.base.clone(), tag, names.clone()))
        })
        .collect();
    let (mut requests, mut bottles, mut failed) = (0, 0, 0);
    for task in tasks {
        let outcome = task.await.context("a client task panicked")?;
        requests += outcome.requests;
        bottles += outcome.bottles;
        if !outcome.problems.is_empty() {
            failed += 1;
        }
        for problem in outcome.problems {
            eprintln!("{problem}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "clients={} complete={} failed={failed} bottles={bottles} requests={requests} seconds={seconds:.3}",
        args.clients,
        args.clients - failed,
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
