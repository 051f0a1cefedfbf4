//! Reading a document from wherever a setting points (a path, `s3://` or
//! `https://`): external hash files. The adapter knows all three.

use async_trait::async_trait;

use crate::model::location::Location;

#[async_trait]
pub trait Documents: Send + Sync {
    /// The bytes at `location`, refusing more than `max_bytes`. The error
    /// is the problem alone; the caller names the document.
    async fn read(&self, location: &Location, max_bytes: u64) -> Result<Vec<u8>, String>;
}
