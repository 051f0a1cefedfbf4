//! The outside systems, one small trait each. The AWS, HTTP and local
//! implementations are in `bottlesync-adapters`.

pub mod capacity;
pub mod documents;
pub mod fleet_ledger;
pub mod ledger;
pub mod notifier;
pub mod protection;
pub mod queue;
pub mod registry;
pub mod store;
