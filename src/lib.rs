//! The shells: what the `bottlesync` binary and the two Lambda binaries
//! share (settings from flags and the environment, the tracing setup).
//! Each binary builds the adapters and hands over to a use case in
//! `bottlesync-planner`, `bottlesync-worker` or `bottlesync-core`.

pub mod config;
pub mod telemetry;
