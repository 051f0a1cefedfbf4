//! A counting reverse proxy in front of an AWS endpoint (moto_server): every
//! request is forwarded unchanged, streamed both ways, and counted by API
//! (`SQS.ReceiveMessage`, `DynamoDB.UpdateItem`, `S3.PutObject`, ...).
//! Requests are the fleet's cost driver; counting them on the wire, outside
//! the processes that make them, also counts the ones of a worker killed
//! mid-run. Started with [`AwsRequestCounter::start_lossy`], it also
//! injects the faults of a [`FaultPlan`] (see [`crate::aws_faults`]);
//! started with [`AwsRequestCounter::start_audited`], it also records what
//! IAM authorises for each call ([`crate::iam_audit`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use futures::TryStreamExt;

use crate::aws_faults::{FaultPlan, FaultTally, Faults, InjectedFault, error_answer};
use crate::iam_audit::{self, AuditedCall};

struct Shared {
    upstream: String,
    http: reqwest::Client,
    counts: Mutex<BTreeMap<String, u64>>,
    /// See `AwsRequestCounter::answer_500_to_next`.
    injected_500s: Mutex<BTreeMap<String, u32>>,
    /// `None`: a plain counter.
    faults: Option<Faults>,
    /// `None`: no audit.
    audit: Option<Audit>,
    /// With faults: which message each faulted SQS answer was about.
    messages: Option<Mutex<SqsMessages>>,
}

/// The messages behind the SQS answers a lossy proxy lost or held: each
/// receipt handle mapped to its message's body (from the ReceiveMessage
/// answers), and the body of every message a faulted write named (sent,
/// deleted, its visibility changed). A verifier can then explain a
/// bottle's extra download or second dead letter by that bottle's own lost
/// answer, not by a pool of them.
#[derive(Default)]
struct SqsMessages {
    bodies_by_receipt: HashMap<String, String>,
    faulted: Vec<String>,
}

impl SqsMessages {
    /// Keeps the receipt -> body pairs of a ReceiveMessage answer.
    fn received(&mut self, answer: &[u8]) {
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(answer) else {
            return;
        };
        for message in answer["Messages"].as_array().into_iter().flatten() {
            if let (Some(receipt), Some(body)) =
                (message["ReceiptHandle"].as_str(), message["Body"].as_str())
            {
                self.bodies_by_receipt
                    .insert(receipt.to_string(), body.to_string());
            }
        }
    }

    /// Notes the messages a faulted write named: its bodies (sends) or the
    /// bodies of its receipt handles (deletes, visibility changes).
    fn faulted(&mut self, request: &[u8]) {
        let Ok(request) = serde_json::from_slice::<serde_json::Value>(request) else {
            return;
        };
        let entries = match request["Entries"].as_array() {
            Some(entries) => entries.iter().collect(),
            None => vec![&request],
        };
        for entry in entries {
            let body = match (
                entry["MessageBody"].as_str(),
                entry["ReceiptHandle"].as_str(),
            ) {
                (Some(body), _) => Some(body.to_string()),
                (None, Some(receipt)) => self.bodies_by_receipt.get(receipt).cloned(),
                (None, None) => None,
            };
            match body {
                Some(body) => self.faulted.push(body),
                None => tracing::warn!(
                    "a faulted SQS write names a message this proxy never saw received: it is attributed to no bottle"
                ),
            }
        }
    }
}

/// The calls an audited proxy saw, kept and, with a sink, written as JSON
/// lines as they come (a process reading them needs no shutdown).
struct Audit {
    account: String,
    calls: Mutex<Vec<AuditedCall>>,
    sink: Option<Mutex<std::fs::File>>,
}

impl Audit {
    fn record(&self, call: AuditedCall) {
        if let Some(sink) = &self.sink {
            use std::io::Write as _;
            let line = serde_json::to_string(&call).expect("a call serialises");
            let mut file = sink.lock().expect("audit sink");
            if let Err(e) = writeln!(file, "{line}") {
                tracing::error!(error = %e, "could not write an audited call: the audit will miss it");
            }
        }
        self.calls.lock().expect("audited calls").push(call);
    }
}

/// The proxy; stops on drop.
pub struct AwsRequestCounter {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl AwsRequestCounter {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        Self::start_with(upstream, None, None).await
    }

    /// A lossy proxy: counts like [`AwsRequestCounter::start`], and injects
    /// the faults of `plan` into the answers (the writes still land).
    pub async fn start_lossy(upstream: &str, plan: FaultPlan) -> anyhow::Result<Self> {
        Self::start_with(upstream, Some(Faults::new(plan)), None).await
    }

    /// An auditing proxy: counts like [`AwsRequestCounter::start`] and
    /// records each call's signing key and IAM authorisations (resources in
    /// `account`), appending them to `sink` as JSON lines when given.
    pub async fn start_audited(
        upstream: &str,
        account: &str,
        sink: Option<std::fs::File>,
    ) -> anyhow::Result<Self> {
        let audit = Audit {
            account: account.to_string(),
            calls: Mutex::new(Vec::new()),
            sink: sink.map(Mutex::new),
        };
        Self::start_with(upstream, None, Some(audit)).await
    }

    async fn start_with(
        upstream: &str,
        faults: Option<Faults>,
        audit: Option<Audit>,
    ) -> anyhow::Result<Self> {
        let messages = faults.as_ref().map(|_| Mutex::new(SqsMessages::default()));
        let shared = Arc::new(Shared {
            messages,
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            counts: Mutex::new(BTreeMap::new()),
            injected_500s: Mutex::new(BTreeMap::new()),
            faults,
            audit,
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(AwsRequestCounter {
            addr,
            shared,
            server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests so far, by API.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.shared.counts.lock().expect("counts").clone()
    }

    /// The calls an audited proxy saw so far (empty otherwise).
    pub fn audited_calls(&self) -> Vec<AuditedCall> {
        self.shared
            .audit
            .as_ref()
            .map(|a| a.calls.lock().expect("audited calls").clone())
            .unwrap_or_default()
    }

    pub fn reset(&self) {
        self.shared.counts.lock().expect("counts").clear();
    }

    /// Faults injected so far, by API (empty for a plain counter).
    pub fn faults(&self) -> BTreeMap<String, FaultTally> {
        self.shared
            .faults
            .as_ref()
            .map(Faults::tally)
            .unwrap_or_default()
    }

    /// Holds every call of `api` after its first `after` (counted from the
    /// start) until [`AwsRequestCounter::resume`]; the held calls are then
    /// answered 503 without reaching the upstream. For killing a client
    /// between two calls, deterministically. Lossy proxies only.
    /// The body of every SQS message a lost or held write answer named
    /// (one entry per faulted message; a lossy proxy only).
    pub fn faulted_sqs_messages(&self) -> Vec<String> {
        self.shared
            .messages
            .as_ref()
            .map(|m| m.lock().expect("sqs messages").faulted.clone())
            .unwrap_or_default()
    }

    pub fn pause_after(&self, api: &str, after: u64) {
        if let Some(faults) = &self.shared.faults {
            faults.pause_after(api, after);
        }
    }

    pub fn resume(&self) {
        if let Some(faults) = &self.shared.faults {
            faults.resume();
        }
    }
}

impl Drop for AwsRequestCounter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "host"];

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let api = classify(&parts.method, &parts.headers, &path_and_query);
    let call_number = {
        let mut counts = shared.counts.lock().expect("counts");
        let count = counts.entry(api.clone()).or_default();
        *count += 1;
        *count - 1
    };
    if let Some(refused) = injected_500(&shared, &api) {
        // Read the request first, as S3 would: the client gets the answer, not a reset.
        let _ = axum::body::to_bytes(body, usize::MAX).await;
        return refused;
    }
    let mut fault = None;
    if let Some(faults) = &shared.faults {
        if let Some(dropped) = faults.wait_if_paused(&api, call_number).await {
            return dropped;
        }
        fault = faults.plan.decide(&api, call_number);
    }

    let mut outgoing = shared.http.request(
        parts.method.clone(),
        format!("{}{}", shared.upstream, path_and_query),
    );
    // An audited proxy sits in front of a moto whose access control checks
    // SigV4 signatures, which cover the Host the client signed: keep it.
    let keep_host = shared.audit.is_some();
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) || (keep_host && name == "host") {
            outgoing = outgoing.header(name, value);
        }
    }
    // An audited call's JSON body is read first (it names the resources),
    // and so is an SQS write whose answer will be faulted (it names the
    // messages the fault is about); everything else streams.
    let attribute = fault.is_some() && api.starts_with("SQS.") && shared.messages.is_some();
    let audited_body =
        shared.audit.is_some() && iam_audit::needs_body(&parts.headers, &path_and_query);
    let buffered = if audited_body || attribute {
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Body::from(format!("aws counter: reading the request: {e}")))
                    .expect("static response");
            }
        }
    } else {
        Err(body)
    };
    let audited = shared.audit.as_ref().map(|audit| {
        let bytes = buffered.as_ref().map(|b| b.as_ref()).unwrap_or_default();
        let call = AuditedCall {
            access_key: iam_audit::access_key(&parts.headers, &path_and_query),
            api: api.clone(),
            status: 0,
            authorizations: iam_audit::authorizations(
                &api,
                &parts.method,
                &parts.headers,
                &path_and_query,
                bytes,
                &audit.account,
            ),
        };
        (audit, call)
    });
    let request_bytes = buffered.as_ref().ok().cloned();
    let body = match buffered {
        Ok(bytes) => reqwest::Body::from(bytes),
        Err(body) => reqwest::Body::wrap_stream(body.into_data_stream()),
    };
    let answer = outgoing.body(body).send().await;
    if let Some((audit, mut call)) = audited {
        call.status = answer.as_ref().map_or(0, |a| a.status().as_u16());
        audit.record(call);
    }
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("aws counter: upstream failed: {e}")))
                .expect("static response");
        }
    };
    if let (Some(fault), Some(faults)) = (fault, &shared.faults)
        && answer.status().is_success()
    {
        if let (Some(messages), Some(request)) = (&shared.messages, &request_bytes)
            && api.starts_with("SQS.")
        {
            messages.lock().expect("sqs messages").faulted(request);
        }
        return inject(faults, &api, fault, answer).await;
    }
    if let Some(messages) = &shared.messages
        && api == "SQS.ReceiveMessage"
        && answer.status().is_success()
    {
        // Small (10 messages at most): read whole, to map its receipts.
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = match answer.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(Body::from(format!(
                        "aws counter: reading the upstream answer: {e}"
                    )))
                    .expect("static response");
            }
        };
        messages.lock().expect("sqs messages").received(&bytes);
        let mut response = Response::builder().status(status);
        for (name, value) in &headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                response = response.header(name, value);
            }
        }
        return response
            .body(Body::from(bytes))
            .expect("response from upstream parts");
    }
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(
            answer.bytes_stream().map_err(std::io::Error::other),
        ))
        .expect("response from upstream parts")
}

/// The write landed (moto answered 2xx): read its answer to the end, then
/// lose it.
async fn inject(
    faults: &Faults,
    api: &str,
    fault: InjectedFault,
    answer: reqwest::Response,
) -> Response {
    let _ = answer.bytes().await;
    faults.record(api, fault);
    tracing::debug!(api, ?fault, "injecting a fault after the write landed");
    if fault == InjectedFault::HeldAnswer {
        // The client gives up at its attempt timeout and closes the
        // connection; this answer then goes nowhere.
        tokio::time::sleep(faults.plan.hold_for).await;
    }
    error_answer(
        api,
        StatusCode::INTERNAL_SERVER_ERROR,
        "We encountered an internal error. Please try again. (injected by the test proxy after the write landed)",
    )
}

/// The API a request calls: from `X-Amz-Target` for the JSON protocols (SQS,
/// DynamoDB, ...), else from the S3 REST shape (path-style addressing).
pub fn classify(method: &Method, headers: &HeaderMap, path_and_query: &str) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (service, operation) = target.split_once('.').unwrap_or(("?", target));
        let service = match service {
            "AmazonSQS" => "SQS",
            s if s.starts_with("DynamoDB") => "DynamoDB",
            s => s,
        };
        return format!("{service}.{operation}");
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let has = |key: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(key))
    };
    // `/bucket` or `/bucket/` addresses the bucket, `/bucket/key...` an object.
    let object = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let operation = match (method.as_str(), object) {
        ("GET", false) if has("uploads") => "ListMultipartUploads",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) => "ListObjects",
        ("GET", true) if has("uploadId") => "ListParts",
        ("GET", true) => "GetObject",
        ("HEAD", false) => "HeadBucket",
        ("HEAD", true) => "HeadObject",
        ("PUT", false) => "CreateBucket",
        ("PUT", true) if has("partNumber") => "UploadPart",
        ("PUT", true) if headers.contains_key("x-amz-copy-source") => "CopyObject",
        ("PUT", true) => "PutObject",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("DELETE", false) => "DeleteBucket",
        (other, _) => return format!("S3.{other}?"),
    };
    format!("S3.{operation}")
}

impl AwsRequestCounter {
    /// Answers the next `times` requests to `api` (e.g. `S3.UploadPart`)
    /// with a 500 `InternalError` without forwarding them: a transient
    /// failure before anything was written. They are still counted.
    pub fn answer_500_to_next(&self, api: &str, times: u32) {
        self.shared
            .injected_500s
            .lock()
            .expect("injected 500s")
            .insert(api.to_string(), times);
    }
}

/// Takes one injected 500 for `api`, if any are left.
fn injected_500(shared: &Shared, api: &str) -> Option<Response> {
    let mut injected = shared.injected_500s.lock().expect("injected 500s");
    let left = injected.get_mut(api).filter(|left| **left > 0)?;
    *left -= 1;
    Some(
        Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header("content-type", "application/xml")
            .body(Body::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
                 <Message>injected by the aws counter</Message></Error>",
            ))
            .expect("static response"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(method: Method, target: Option<&str>, path: &str) -> String {
        let mut headers = HeaderMap::new();
        if let Some(target) = target {
            headers.insert("x-amz-target", target.parse().unwrap());
        }
        classify(&method, &headers, path)
    }

    #[test]
    fn json_protocols_are_named_by_their_target() {
        assert_eq!(
            api(Method::POST, Some("AmazonSQS.SendMessageBatch"), "/"),
            "SQS.SendMessageBatch"
        );
        assert_eq!(
            api(
                Method::POST,
                Some("DynamoDB_20120810.TransactWriteItems"),
                "/"
            ),
            "DynamoDB.TransactWriteItems"
        );
    }

    #[test]
    fn s3_calls_are_named_by_method_path_and_query() {
        let cases = [
            (Method::PUT, "/b/k/x.tar.gz?x-id=PutObject", "S3.PutObject"),
            (Method::PUT, "/b/k?partNumber=2&uploadId=u", "S3.UploadPart"),
            (Method::POST, "/b/k?uploads", "S3.CreateMultipartUpload"),
            (
                Method::POST,
                "/b/k?uploadId=u",
                "S3.CompleteMultipartUpload",
            ),
            (Method::DELETE, "/b/k?uploadId=u", "S3.AbortMultipartUpload"),
            (Method::GET, "/b?list-type=2&prefix=p", "S3.ListObjectsV2"),
            (
                Method::GET,
                "/b/?uploads&prefix=p",
                "S3.ListMultipartUploads",
            ),
            (Method::GET, "/b/p/bottles_hash.json", "S3.GetObject"),
            (Method::HEAD, "/b/p/x", "S3.HeadObject"),
        ];
        for (method, path, expected) in cases {
            assert_eq!(api(method, None, path), expected, "{path}");
        }
    }
}
