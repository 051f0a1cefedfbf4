//! A fleet run from its manifest to its summary: finishing (counting,
//! compaction, the one summary), the reconcile that ends stalled runs,
//! status, dead letters, and the messages people read.

pub mod dlq;
pub mod finish;
pub mod import;
pub mod manifest;
pub mod messages;
pub mod reconcile;
pub mod record;
pub mod status;
