//! bottlesync's core: the domain and its ports, with no AWS SDK, HTTP
//! client or CLI parser (a check in `scripts/test.sh` keeps it so).
//! - `model`: digests, keys, tags, naming, bottle jobs, the formula index,
//!   hash files, queue messages, locations;
//! - `ports`: the traits the outside systems implement (store, queue,
//!   ledgers, notifier, registry, capacity, task protection); the real
//!   implementations are in `bottlesync-adapters`;
//! - `plan`: which bottles a mirror lacks (`select`) and where their
//!   messages go (`route`);
//! - `brew`: the view brew clients use (`bottles/`, `api/`): publishing it
//!   after a run, verifying it;
//! - `run`: a fleet run's lifecycle (record, manifest, finish, reconcile,
//!   status, import, dead letters) and its messages;
//! - `segments`: when and how a large bottle comes down as ranges over
//!   several connections;
//! - `lease` (whatever a process holds, renewed every third of its
//!   length, with a token that fires on loss), `journal` (the ledger of a
//!   `sync`, kept in the store), `store_lease` (one `sync` per S3 prefix),
//!   `shutdown` (stop, grace, cancel).

pub mod brew;
pub mod error;
pub mod fleet_config;
pub mod journal;
pub mod lease;
pub mod metrics;
pub mod mirror_record;
pub mod model;
pub mod plan;
pub mod ports;
pub mod retry;
pub mod run;
pub mod segments;
pub mod shutdown;
pub mod store_lease;

pub use error::{Error, Result};
pub use model::digest::Sha256Digest;
pub use model::job::{BottleJob, SizeSource};
pub use model::key::ObjectKey;
pub use model::tag::Tag;

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
