//! A fleet run from its manifest to its summary: sending it (`dispatch`,
//! for every kind of run), finishing (counting, compaction, publication,
//! the one summary), the reconcile that ends stalled runs, status, dead
//! letters, and the messages people read.

pub mod dispatch;
pub mod dlq;
pub mod finish;
pub mod import;
pub mod manifest;
pub mod messages;
pub mod publication;
pub mod reconcile;
pub mod record;
pub mod status;
