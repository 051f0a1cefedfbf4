//! Faults real AWS has and moto hides, for the counting proxy
//! ([`crate::aws_counter::AwsRequestCounter::start_lossy`]): a write whose
//! answer is lost after it landed (moto did the write, the client hears a
//! 500 and retries), and an answer held past the client's timeouts (the
//! write landed, the client gives up waiting and retries). The serial moto
//! keeps DynamoDB's writes atomic; this brings back the faults it hides.
//!
//! Which calls fail is a pure function of the seed, the API and the call's
//! number for that API, so a plan replays the same faults for the same
//! sequence of calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

/// The DynamoDB calls that write.
pub const DYNAMODB_WRITES: [&str; 5] = [
    "DynamoDB.PutItem",
    "DynamoDB.UpdateItem",
    "DynamoDB.DeleteItem",
    "DynamoDB.TransactWriteItems",
    "DynamoDB.BatchWriteItem",
];

/// The SQS calls that write (send, delete, change visibility).
pub const SQS_WRITES: [&str; 6] = [
    "SQS.SendMessage",
    "SQS.SendMessageBatch",
    "SQS.DeleteMessage",
    "SQS.DeleteMessageBatch",
    "SQS.ChangeMessageVisibility",
    "SQS.ChangeMessageVisibilityBatch",
];

/// The S3 calls that write.
pub const S3_WRITES: [&str; 7] = [
    "S3.PutObject",
    "S3.CreateMultipartUpload",
    "S3.UploadPart",
    "S3.CompleteMultipartUpload",
    "S3.AbortMultipartUpload",
    "S3.DeleteObject",
    "S3.DeleteObjects",
];

/// What the proxy does to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectedFault {
    /// Forwarded (the write landed), answered 500 with the protocol's
    /// error shape.
    LostAnswer,
    /// Forwarded (the write landed), the answer held for
    /// [`FaultPlan::hold_for`] (past the client's attempt timeout), then
    /// dropped.
    HeldAnswer,
}

/// Which calls fail, and how.
#[derive(Clone, Debug, Serialize)]
pub struct FaultPlan {
    pub seed: u64,
    /// Share of the matching calls whose answer is lost after the write landed.
    pub lost_answer: f64,
    /// Share of the matching calls whose answer is held past the timeouts.
    pub held_answer: f64,
    /// How long a held answer is held (longer than the client's attempt
    /// timeout, so that it gives up and retries).
    pub hold_for: Duration,
    /// The APIs the plan applies to (`DynamoDB.PutItem`, `SQS.SendMessage`, ...).
    pub apis: BTreeSet<String>,
}

impl FaultPlan {
    /// `share` of the DynamoDB and SQS write answers go wrong: three in four
    /// of those are lost (500 after the write), one in four held for
    /// `hold_for`.
    pub fn dynamodb_and_sqs_writes(seed: u64, share: f64, hold_for: Duration) -> FaultPlan {
        FaultPlan {
            seed,
            lost_answer: share * 0.75,
            held_answer: share * 0.25,
            hold_for,
            apis: DYNAMODB_WRITES
                .iter()
                .chain(SQS_WRITES.iter())
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// The same faults on S3's writes too.
    pub fn with_s3_writes(mut self) -> FaultPlan {
        self.apis.extend(S3_WRITES.iter().map(|s| s.to_string()));
        self
    }

    /// The fault for call number `n` (from 0) of `api`, if any.
    pub fn decide(&self, api: &str, n: u64) -> Option<InjectedFault> {
        if !self.apis.contains(api) {
            return None;
        }
        let draw = unit(self.seed, api, n);
        if draw < self.lost_answer {
            Some(InjectedFault::LostAnswer)
        } else if draw < self.lost_answer + self.held_answer {
            Some(InjectedFault::HeldAnswer)
        } else {
            None
        }
    }
}

/// Uniform in `[0, 1)`, fixed by (seed, api, n): FNV-1a of the API mixed
/// with the seed and n by SplitMix64's finaliser.
fn unit(seed: u64, api: &str, n: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in api.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z =
        h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Faults injected so far, per API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultTally {
    pub lost_answers: u64,
    pub held_answers: u64,
}

impl FaultTally {
    pub fn total(&self) -> u64 {
        self.lost_answers + self.held_answers
    }
}

/// The proxy's fault state: the plan, what it did, and an optional pause.
pub(crate) struct Faults {
    pub(crate) plan: FaultPlan,
    tally: Mutex<BTreeMap<String, FaultTally>>,
    pause: Mutex<Option<Pause>>,
    resumed: tokio::sync::Notify,
}

/// Calls of `api` after the first `after` wait until [`Faults::resume`],
/// then are answered 503 without reaching moto (their client is gone).
struct Pause {
    api: String,
    after: u64,
}

impl Faults {
    pub(crate) fn new(plan: FaultPlan) -> Faults {
        Faults {
            plan,
            tally: Mutex::new(BTreeMap::new()),
            pause: Mutex::new(None),
            resumed: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn record(&self, api: &str, fault: InjectedFault) {
        let mut tally = self.tally.lock().expect("fault tally");
        let entry = tally.entry(api.to_string()).or_default();
        match fault {
            InjectedFault::LostAnswer => entry.lost_answers += 1,
            InjectedFault::HeldAnswer => entry.held_answers += 1,
        }
    }

    pub(crate) fn tally(&self) -> BTreeMap<String, FaultTally> {
        self.tally.lock().expect("fault tally").clone()
    }

    pub(crate) fn pause_after(&self, api: &str, after: u64) {
        *self.pause.lock().expect("pause") = Some(Pause {
            api: api.to_string(),
            after,
        });
    }

    pub(crate) fn resume(&self) {
        *self.pause.lock().expect("pause") = None;
        self.resumed.notify_waiters();
    }

    /// Whether call number `n` of `api` is paused: if so, waits for the
    /// resume and returns the answer to give instead of forwarding.
    pub(crate) async fn wait_if_paused(&self, api: &str, n: u64) -> Option<Response> {
        loop {
            let resumed = self.resumed.notified();
            let paused = self
                .pause
                .lock()
                .expect("pause")
                .as_ref()
                .is_some_and(|p| p.api == api && n >= p.after);
            if !paused {
                return None;
            }
            resumed.await;
            // Resumed: this call's client was killed while it waited.
            if self.pause.lock().expect("pause").is_none() {
                return Some(error_answer(
                    api,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "paused by the test proxy; dropped unforwarded",
                ));
            }
        }
    }
}

/// The answer AWS gives for an internal error (500) or when it is
/// unavailable (503), in `api`'s protocol: the JSON shape (`__type`,
/// `message`) for DynamoDB and SQS, S3's XML.
pub fn error_answer(api: &str, status: StatusCode, message: &str) -> Response {
    let (service, _) = api.split_once('.').unwrap_or((api, ""));
    let unavailable = status == StatusCode::SERVICE_UNAVAILABLE;
    let (content_type, body, query_error) = match service {
        "S3" => {
            let code = if unavailable {
                "ServiceUnavailable"
            } else {
                "InternalError"
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message><RequestId>injected</RequestId></Error>"
            );
            ("application/xml", body, None)
        }
        "SQS" => {
            let code = if unavailable {
                "ServiceUnavailable"
            } else {
                "InternalError"
            };
            let body = serde_json::json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message});
            (
                "application/x-amz-json-1.0",
                body.to_string(),
                Some(format!("{code};Receiver")),
            )
        }
        _ => {
            let code = if unavailable {
                "ServiceUnavailable"
            } else {
                "InternalServerError"
            };
            let body = serde_json::json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message});
            ("application/x-amz-json-1.0", body.to_string(), None)
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", content_type);
    if let Some(query_error) = query_error {
        builder = builder.header("x-amzn-query-error", query_error);
    }
    builder.body(Body::from(body)).expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_a_function_of_seed_api_and_call_number_at_the_asked_share() {
        let plan = FaultPlan::dynamodb_and_sqs_writes(7, 0.15, Duration::from_secs(3));
        let decisions: Vec<_> = (0..4000)
            .map(|n| plan.decide("DynamoDB.PutItem", n))
            .collect();
        let again: Vec<_> = (0..4000)
            .map(|n| plan.decide("DynamoDB.PutItem", n))
            .collect();
        assert_eq!(decisions, again);
        let lost = decisions
            .iter()
            .filter(|d| **d == Some(InjectedFault::LostAnswer))
            .count();
        let held = decisions
            .iter()
            .filter(|d| **d == Some(InjectedFault::HeldAnswer))
            .count();
        // 0.1125 and 0.0375 of 4000, within a generous margin.
        assert!((350..550).contains(&lost), "{lost} lost answers");
        assert!((90..220).contains(&held), "{held} held answers");
        let other_seed = FaultPlan::dynamodb_and_sqs_writes(8, 0.15, Duration::from_secs(3));
        assert_ne!(
            decisions,
            (0..4000)
                .map(|n| other_seed.decide("DynamoDB.PutItem", n))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn reads_and_unlisted_services_are_never_faulted() {
        let plan = FaultPlan::dynamodb_and_sqs_writes(1, 1.0, Duration::from_secs(3));
        for n in 0..100 {
            assert_eq!(plan.decide("DynamoDB.GetItem", n), None);
            assert_eq!(plan.decide("SQS.ReceiveMessage", n), None);
            assert_eq!(plan.decide("S3.PutObject", n), None);
            assert!(plan.decide("SQS.DeleteMessageBatch", n).is_some());
        }
        assert!(plan.with_s3_writes().decide("S3.PutObject", 0).is_some());
    }

    #[tokio::test]
    async fn error_answers_have_each_protocols_shape() {
        for (api, content_type, needle) in [
            (
                "DynamoDB.PutItem",
                "application/x-amz-json-1.0",
                "dynamodb.v20120810#InternalServerError",
            ),
            (
                "SQS.SendMessageBatch",
                "application/x-amz-json-1.0",
                "com.amazonaws.sqs#InternalError",
            ),
            (
                "S3.PutObject",
                "application/xml",
                "<Code>InternalError</Code>",
            ),
        ] {
            let answer = error_answer(api, StatusCode::INTERNAL_SERVER_ERROR, "lost");
            assert_eq!(answer.status(), 500);
            assert_eq!(answer.headers()["content-type"], content_type);
            let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
                .await
                .unwrap();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains(needle), "{api}: {body}");
        }
    }
}
