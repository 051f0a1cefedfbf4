//! The worker: fetch, verify and store one bottle (`transfer`, large ones in
//! ranges over several connections: `segmented`); run many of
//! them under a concurrency bound (`pool`); `sync` once planned, through
//! compaction and publication (`sync_run`); and the fleet's
//! per-message logic (`consumer`) with its two shells, the Lambda SQS
//! handler (`lambda`) and the ECS long-poll loop (`work_loop`).

pub mod consumer;
pub mod lambda;
pub mod pool;
pub mod protection;
pub mod segmented;
pub mod sync_run;
pub mod transfer;
pub mod work_loop;

pub use consumer::{Consumer, Disposition};
pub use pool::{Failure, PoolOutcome, Progress, run_pool};
pub use transfer::{Transfer, TransferSettings, fetch_verify_store};
