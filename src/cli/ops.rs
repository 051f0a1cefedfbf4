//! The flags of the operator commands on a fleet: `compact`, `reconcile`,
//! `dlq`, `status`, `import-hashes`.

use bottlesync::config::FleetArgs;
use clap::{Args, Subcommand};

#[derive(Args, Debug, Clone)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DlqAction {
    /// Show the dead letters (bottle, run, receive count, last error); they stay in the DLQ.
    List {
        #[command(flatten)]
        fleet: FleetArgs,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// Move dead letters back to work as a new run (send first, then delete).
    Replay {
        #[command(flatten)]
        fleet: FleetArgs,
        #[arg(long, default_value_t = 10_000)]
        max: usize,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The hash file: a bottles_hash.json, a JSON array of sha256, or an object keyed by sha256.
    pub source: String,
}

#[derive(Args, Debug, Clone)]
pub struct CompactArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
}
