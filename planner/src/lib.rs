//! The planner: from the formula index and what the mirror already holds to
//! the list of `BottleJob`s still to fetch, with their sizes.
//! The pure rules (bottle selection, routing) are in `bottlesync_core::plan`;
//! `sizing` asks the registry, `prepare` is the one plan pipeline `sync` and
//! the fleet share, `replay` moves dead letters back to work.

pub mod fleet;
pub mod index_source;
pub mod lambda;
pub mod portable_ruby;
pub mod prepare;
pub mod replay;
pub mod sizing;
