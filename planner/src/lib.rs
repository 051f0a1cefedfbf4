//! The planner: from the formula index and what the mirror already holds to
//! the list of `BottleJob`s still to fetch, with their sizes.
//! `select` is pure; `sizing` asks the registry.

pub mod fleet;
pub mod index_source;
pub mod lambda;
pub mod select;
pub mod sizing;

pub use select::{Plan, PlanRequest, TagSelection, Unavailable, plan};
pub use sizing::{SizingReport, estimate_unknown_sizes, size_jobs};
