//! bottlesync's core: the domain (formula index, tags, naming, bottle jobs,
//! the mirror record) and the ports to the outside (store, ledger, registry)
//! with their local and AWS adapters. `planner`, `worker` and the
//! `bottlesync` binary are thin layers over this crate.

pub mod aws;
pub mod capacity;
pub mod destination;
pub mod digest;
pub mod dlq;
pub mod drain;
pub mod dynamo_ledger;
pub mod error;
pub mod fleet_config;
pub mod fleet_ledger;
pub mod hash_file;
pub mod index;
pub mod job;
pub mod key;
pub mod ledger;
pub mod local_store;
pub mod memory_ledger;
pub mod memory_queue;
pub mod message;
pub mod metrics;
pub mod naming;
pub mod notifier;
pub mod operations;
pub mod queue;
pub mod registry;
pub mod retry;
pub mod run_manifest;
pub mod s3_store;
pub mod services;
pub mod sqs_queue;
pub mod store;
pub mod store_lease;
pub mod tag;

pub use digest::Sha256Digest;
pub use error::{Error, Result};
pub use job::{BottleJob, SizeSource};
pub use key::ObjectKey;
pub use tag::Tag;

/// At most `max` characters of untrusted text, for error messages.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max).collect();
        short.push('…');
        short
    }
}

/// A serde error for a message: serde quotes offending values and field
/// names whole (a 256 KiB "URL" would come back verbatim), so keep the
/// start and the position at the end.
pub fn serde_problem(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.chars().count() <= 300 {
        return text;
    }
    let head: String = text.chars().take(200).collect();
    match error.line() {
        0 => format!("{head}…"),
        line => format!("{head}… at line {line} column {}", error.column()),
    }
}
