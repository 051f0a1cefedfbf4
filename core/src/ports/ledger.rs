//! The ledger of a one-machine `sync`: what the mirror holds. The journal
//! (`crate::journal::JournalLedger`) keeps it in the store itself.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::digest::Sha256Digest;
use crate::model::hash_file::MirroredBottle;

#[async_trait]
pub trait Ledger: Send + Sync {
    /// Every bottle recorded as stored.
    async fn stored_bottles(&self) -> Result<BTreeMap<Sha256Digest, MirroredBottle>>;

    /// Records one committed bottle, durably, before returning.
    async fn record_stored(&self, sha256: &Sha256Digest, bottle: &MirroredBottle) -> Result<()>;
}
