//! Local adapters: a directory as the mirror; in-memory queues and ledger
//! for the in-process fleet and tests.

mod durable_rename;
pub mod local_store;
pub mod local_upload;
pub mod memory_ledger;
pub mod memory_queue;
