//! Planning rules with no I/O: which bottles a mirror needs (`select`) and
//! which workers take them (`route`). The planner crate runs them against
//! the registry and the ledger.

pub mod portable_ruby;
pub mod route;
pub mod select;
