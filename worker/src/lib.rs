//! The worker: fetch, verify and store one bottle (`transfer`), and run many
//! of them under a concurrency bound with a shared progress view (`pool`).
//! `sync` uses the pool; the SQS consumers call `transfer` per message.

pub mod pool;
pub mod transfer;

pub use pool::{Failure, PoolOutcome, Progress, run_pool};
pub use transfer::{Transfer, fetch_verify_store};
