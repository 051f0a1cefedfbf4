//! The AWS side of bottlesync's tests, kept apart from the Homebrew
//! stand-in (`bottlesync-loadtest`) so that the stand-in builds without the
//! AWS SDK:
//! - [`moto`]: a `moto_server` per test (S3, SQS, and a serial one for
//!   DynamoDB), SDK clients for it, the ledger table and the fleet's queues,
//!   production-like timeouts;
//! - [`aws_counter`]: a counting reverse proxy in front of moto (requests by
//!   API), which in its lossy mode injects [`aws_faults`]: writes whose
//!   answer is lost after they landed, answers held past the SDK's timeouts;
//! - [`iam_audit`]: what IAM authorises for each call (action, resource
//!   ARN, condition keys), recorded by an audited counter and checked by
//!   `bottlesync-aws-audit` against the roles Terraform created;
//! - [`s3_mirror`]: a mirror in S3 read by request path, for the brew
//!   client replay.

pub mod aws_counter;
pub mod aws_faults;
pub mod iam_audit;
pub mod moto;
pub mod s3_mirror;
