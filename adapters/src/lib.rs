//! bottlesync's ports implemented: the only crate that links the AWS SDK
//! and the HTTP client.
//! - `aws`: S3 (the mirror), SQS (the queues), DynamoDB (the fleet
//!   ledger), ECS (waking the large-run workers), Secrets Manager;
//! - `http`: the Homebrew registry and API, the Slack webhook, the ECS
//!   agent's task protection;
//! - `local`: a directory as the mirror, and in-memory queues and ledger
//!   (the in-process fleet, tests);
//! - `wiring`: building them from settings, for the shells.

pub mod aws;
pub mod http;
pub mod local;
pub mod wiring;
