//! A fleet run from its manifest to its summary: finishing (counting,
//! compaction, the one summary), the reconcile that ends stalled runs,
//! status, dead letters, the messages people read, and the publication of
//! the brew-usable view (`bottles/`, `api/`).

pub mod dlq;
pub mod finish;
pub mod import;
pub mod manifest;
pub mod messages;
pub mod publish;
pub mod reconcile;
pub mod record;
pub mod status;
