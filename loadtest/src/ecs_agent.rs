//! A stand-in for the ECS container agent's task scale-in protection endpoint
//! (`$ECS_AGENT_URI/task-protection/v1/state`). It answers as the agent does
//! on AWS for a task whose role has a given policy: a `PUT` needs
//! `ecs:UpdateTaskProtection`, a `GET` needs `ecs:GetTaskProtection`, and
//! without them the answer is ECS's `AccessDeniedException`. The policy is
//! read from the Terraform source (`TaskRolePolicy::from_terraform`), or from
//! a policy document (e.g. the role that `terraform apply` created), so that
//! a role that lacks the actions fails the tests as it fails on AWS.
//!
//! Protection expires as on ECS, after `ExpiresInMinutes` (default 120),
//! with the length of a minute settable so that tests can scale time down;
//! a renewal that arrives after the protection expired counts as a lapse.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};

use crate::iam_policy::wildcard_match;

const TASK_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task/bottlesync-test/0123456789abcdef0";
const ROLE_SESSION: &str =
    "arn:aws:sts::123456789012:assumed-role/bottlesync-test-ecs-task/0123456789abcdef0";
/// The agent's default when a request names no expiry.
const DEFAULT_EXPIRES_IN_MINUTES: u64 = 120;

/// The IAM actions a task role allows (patterns as IAM writes them: `*` and
/// `?` wildcards, case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRolePolicy {
    allowed: BTreeSet<String>,
}

impl TaskRolePolicy {
    pub fn from_actions<I: IntoIterator<Item = S>, S: Into<String>>(actions: I) -> Self {
        TaskRolePolicy {
            allowed: actions.into_iter().map(Into::into).collect(),
        }
    }

    /// The `Allow` actions of an IAM policy document (as `GetRolePolicy`
    /// returns it). `Deny` statements and `NotAction` are refused: the
    /// stand-in would not evaluate them as IAM does.
    pub fn from_policy_document(policy: &serde_json::Value) -> anyhow::Result<Self> {
        let statements = match &policy["Statement"] {
            serde_json::Value::Array(list) => list.clone(),
            serde_json::Value::Object(_) => vec![policy["Statement"].clone()],
            other => anyhow::bail!("policy has no Statement list: {other}"),
        };
        let mut allowed = BTreeSet::new();
        for statement in statements {
            anyhow::ensure!(
                statement["Effect"] == "Allow" && statement.get("NotAction").is_none(),
                "only Allow statements with Action are supported: {statement}"
            );
            match &statement["Action"] {
                serde_json::Value::String(a) => {
                    allowed.insert(a.clone());
                }
                serde_json::Value::Array(list) => {
                    for a in list {
                        let a = a
                            .as_str()
                            .ok_or_else(|| anyhow::anyhow!("Action is not a string: {a}"))?;
                        allowed.insert(a.to_string());
                    }
                }
                other => anyhow::bail!("statement without Action: {other}"),
            }
        }
        Ok(TaskRolePolicy { allowed })
    }

    /// The ECS task role's actions as terraform/modules/iam/main.tf writes
    /// them (the `ecs_task_statements` local, following `local.*` references).
    pub fn from_terraform_source() -> anyhow::Result<Self> {
        Self::from_terraform_file(&Self::iam_module_source())
    }

    /// terraform/modules/iam/main.tf of this repository.
    pub fn iam_module_source() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/modules/iam/main.tf")
    }

    pub fn from_terraform_file(path: &Path) -> anyhow::Result<Self> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let actions = hcl_local_actions(&source, "ecs_task_statements")
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self::from_actions(actions))
    }

    /// The same policy without `action` (exactly as written).
    pub fn without(mut self, action: &str) -> Self {
        self.allowed.retain(|a| a != action);
        self
    }

    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }

    pub fn allows(&self, action: &str) -> bool {
        self.allowed.iter().any(|pattern| {
            wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
        })
    }
}

// ------------------------------------------------------------ HCL reading ----

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String),
    Ident(String),
    Punct(char),
}

/// Tokens of HCL source: strings (interpolations kept as text), identifiers
/// (with dots: `local.name`), punctuation; comments dropped.
fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '#' || (c == '/' && chars.get(i + 1) == Some(&'/')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let mut text = String::new();
            let mut interpolation = 0usize;
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                if d == '\\' && i + 1 < chars.len() {
                    text.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                if interpolation == 0 && d == '"' {
                    break;
                }
                if d == '$' && chars.get(i + 1) == Some(&'{') {
                    interpolation += 1;
                    text.push_str("${");
                    i += 2;
                    continue;
                }
                if interpolation > 0 && d == '}' {
                    interpolation -= 1;
                }
                text.push(d);
                i += 1;
            }
            i += 1;
            tokens.push(Token::Str(text));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_-.".contains(chars[i])) {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '=' && chars.get(i + 1) == Some(&'=') {
            tokens.push(Token::Punct('≡'));
            i += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    tokens
}

/// The tokens inside the `locals { ... }` blocks.
fn locals_blocks(tokens: &[Token]) -> Vec<Token> {
    let mut inside = Vec::new();
    let mut i = 0;
    while i + 1 < tokens.len() {
        if tokens[i] == Token::Ident("locals".into()) && tokens[i + 1] == Token::Punct('{') {
            let mut depth = 1;
            i += 2;
            while i < tokens.len() {
                match tokens[i] {
                    Token::Punct('(' | '[' | '{') => depth += 1,
                    Token::Punct(')' | ']' | '}') => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                inside.push(tokens[i].clone());
                i += 1;
            }
        }
        i += 1;
    }
    inside
}

/// The tokens of the expression `name = <expression>` (`tokens`: the
/// contents of the `locals` blocks).
fn local_tokens(tokens: &[Token], name: &str) -> anyhow::Result<Vec<Token>> {
    let mut depth = 0i32;
    let mut start = None;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => depth -= 1,
            Token::Ident(id)
                if depth == 0 && id == name && tokens.get(i + 1) == Some(&Token::Punct('=')) =>
            {
                start = Some(i + 2);
                break;
            }
            _ => {}
        }
    }
    let start = start.ok_or_else(|| anyhow::anyhow!("no local named {name}"))?;
    // The expression ends where its brackets balance, before the next
    // `identifier =` at depth zero.
    let mut depth = 0i32;
    let mut end = start;
    while end < tokens.len() {
        match &tokens[end] {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth < 0 {
                    break;
                }
            }
            Token::Ident(_)
                if depth == 0 && end > start && tokens.get(end + 1) == Some(&Token::Punct('=')) =>
            {
                break;
            }
            _ => {}
        }
        end += 1;
    }
    Ok(tokens[start..end].to_vec())
}

/// Every IAM action named in `Action = ...` of the statements a local
/// builds, following `local.*` references (both statement lists and action
/// lists). Conditional statements count as present.
fn hcl_local_actions(source: &str, name: &str) -> anyhow::Result<BTreeSet<String>> {
    let tokens = locals_blocks(&tokenize(source));
    let mut actions = BTreeSet::new();
    let mut seen = BTreeSet::new();
    collect_actions(&tokens, name, &mut actions, &mut seen)?;
    anyhow::ensure!(!actions.is_empty(), "local {name} names no Action");
    Ok(actions)
}

fn collect_actions(
    tokens: &[Token],
    name: &str,
    actions: &mut BTreeSet<String>,
    seen: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let expression = local_tokens(tokens, name)?;
    let mut i = 0;
    while i < expression.len() {
        match &expression[i] {
            Token::Ident(id)
                if id == "Action" && expression.get(i + 1) == Some(&Token::Punct('=')) =>
            {
                i += 2;
                match expression.get(i) {
                    Some(Token::Str(action)) => {
                        actions.insert(action.clone());
                    }
                    Some(Token::Punct('[')) => {
                        while let Some(token) = expression.get(i + 1) {
                            i += 1;
                            match token {
                                Token::Str(action) => {
                                    actions.insert(action.clone());
                                }
                                Token::Punct(']') => break,
                                _ => {}
                            }
                        }
                    }
                    Some(Token::Ident(reference)) if reference.starts_with("local.") => {
                        let list = local_tokens(tokens, &reference["local.".len()..])?;
                        for token in list {
                            if let Token::Str(action) = token {
                                actions.insert(action);
                            }
                        }
                    }
                    other => {
                        anyhow::bail!("Action = {other:?} in local {name}: not a list of strings")
                    }
                }
            }
            Token::Ident(reference) if reference.starts_with("local.") => {
                let referenced = &reference["local.".len()..];
                // Statement lists are followed; scalars (account, region) name no actions.
                if local_tokens(tokens, referenced)?.iter().any(|t| {
                    *t == Token::Ident("Action".into())
                        || matches!(t, Token::Ident(r) if r.starts_with("local."))
                }) {
                    collect_actions(tokens, referenced, actions, seen)?;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

// -------------------------------------------------------------- the agent ----

/// One request the stand-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionRequest {
    pub method: String,
    /// `ProtectionEnabled` of a PUT.
    pub enabled: Option<bool>,
    /// `ExpiresInMinutes` of a PUT, when given.
    pub expires_in_minutes: Option<u64>,
    /// Ok, or the error code answered (`AccessDeniedException`, ...).
    pub outcome: Result<(), String>,
}

struct AgentState {
    policy: TaskRolePolicy,
    minute: Duration,
    protected_until: Option<Instant>,
    requests: Vec<ProtectionRequest>,
    lapses: u32,
}

/// The ECS agent stand-in on a loopback port; stopped on drop.
pub struct EcsAgent {
    addr: SocketAddr,
    state: Arc<Mutex<AgentState>>,
    server: tokio::task::JoinHandle<()>,
}

impl EcsAgent {
    /// An agent for a task whose role has `policy`; a protection minute lasts `minute`.
    pub async fn start(policy: TaskRolePolicy, minute: Duration) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(AgentState {
            policy,
            minute,
            protected_until: None,
            requests: Vec::new(),
            lapses: 0,
        }));
        let app = axum::Router::new()
            .route("/task-protection/v1/state", put(put_state).get(get_state))
            .route("/__standin/requests", get(list_requests))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EcsAgent {
            addr,
            state,
            server,
        })
    }

    /// `ECS_AGENT_URI` for the worker.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the task role's policy (an IAM change).
    pub fn set_policy(&self, policy: TaskRolePolicy) {
        self.state.lock().expect("agent state").policy = policy;
    }

    pub fn requests(&self) -> Vec<ProtectionRequest> {
        self.state.lock().expect("agent state").requests.clone()
    }

    /// Whether the task is protected now (granted and not yet expired).
    pub fn is_protected(&self) -> bool {
        let state = self.state.lock().expect("agent state");
        state.protected_until.is_some_and(|t| Instant::now() < t)
    }

    /// Renewals that came after the protection had expired (the task was
    /// exposed to scale-in in between).
    pub fn lapses(&self) -> u32 {
        self.state.lock().expect("agent state").lapses
    }
}

impl Drop for EcsAgent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn access_denied(action: &str) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({
            "requestID": "00000000-0000-0000-0000-000000000000",
            "error": {
                "Arn": TASK_ARN,
                "Code": "AccessDeniedException",
                "Message": format!(
                    "User: {ROLE_SESSION} is not authorized to perform: {action} on resource: {TASK_ARN} because no identity-based policy allows the {action} action"
                ),
            }
        })),
    )
}

fn protection_body(state: &AgentState) -> serde_json::Value {
    let now = Instant::now();
    let until = state.protected_until.filter(|t| now < *t);
    let expiration = until.map(|t| rfc3339(SystemTime::now() + (t - now)));
    serde_json::json!({
        "protection": {
            "ExpirationDate": expiration,
            "ProtectionEnabled": until.is_some(),
            "TaskArn": TASK_ARN,
        }
    })
}

async fn put_state(
    State(state): State<Arc<Mutex<AgentState>>>,
    body: axum::body::Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    let mut state = state.lock().expect("agent state");
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let enabled = request["ProtectionEnabled"].as_bool();
    let expires = request["ExpiresInMinutes"].as_u64();
    let mut record = ProtectionRequest {
        method: "PUT".into(),
        enabled,
        expires_in_minutes: expires,
        outcome: Ok(()),
    };
    if !state.policy.allows("ecs:UpdateTaskProtection") {
        record.outcome = Err("AccessDeniedException".into());
        state.requests.push(record);
        return access_denied("ecs:UpdateTaskProtection");
    }
    let Some(enabled) = enabled else {
        record.outcome = Err("InvalidRequest".into());
        state.requests.push(record);
        return (
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({"error": {"Arn": TASK_ARN, "Code": "InvalidRequest", "Message": "ProtectionEnabled is required"}}),
            ),
        );
    };
    if enabled && expires.is_some_and(|m| !(1..=2880).contains(&m)) {
        record.outcome = Err("InvalidParameterException".into());
        state.requests.push(record);
        return (
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({"error": {"Arn": TASK_ARN, "Code": "InvalidParameterException", "Message": "expiresInMinutes must be between 1 and 2880"}}),
            ),
        );
    }
    let now = Instant::now();
    if let Some(until) = state.protected_until
        && until <= now
    {
        // It expired while nobody dropped it: the task was exposed.
        state.lapses += 1;
    }
    state.protected_until = if enabled {
        let minutes = expires.unwrap_or(DEFAULT_EXPIRES_IN_MINUTES);
        Some(now + state.minute * minutes as u32)
    } else {
        None
    };
    state.requests.push(record);
    (StatusCode::OK, Json(protection_body(&state)))
}

async fn get_state(
    State(state): State<Arc<Mutex<AgentState>>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let mut state = state.lock().expect("agent state");
    let mut record = ProtectionRequest {
        method: "GET".into(),
        enabled: None,
        expires_in_minutes: None,
        outcome: Ok(()),
    };
    if !state.policy.allows("ecs:GetTaskProtection") {
        record.outcome = Err("AccessDeniedException".into());
        state.requests.push(record);
        return access_denied("ecs:GetTaskProtection");
    }
    state.requests.push(record);
    (StatusCode::OK, Json(protection_body(&state)))
}

/// What the stand-in answered so far, for scripts (outcome: "ok" or the error code).
async fn list_requests(State(state): State<Arc<Mutex<AgentState>>>) -> Json<serde_json::Value> {
    let state = state.lock().expect("agent state");
    Json(serde_json::Value::Array(
        state
            .requests
            .iter()
            .map(|r| {
                serde_json::json!({
                    "method": r.method,
                    "enabled": r.enabled,
                    "expires_in_minutes": r.expires_in_minutes,
                    "outcome": match &r.outcome { Ok(()) => "ok".to_string(), Err(code) => code.clone() },
                })
            })
            .collect(),
    ))
}

/// `2026-11-29T03:00:00Z` (UTC, whole seconds).
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_does() {
        let policy = TaskRolePolicy::from_actions(["ecs:*TaskProtection", "sqs:Receive?essage"]);
        assert!(policy.allows("ecs:UpdateTaskProtection"));
        assert!(policy.allows("ECS:gettaskprotection"));
        assert!(policy.allows("sqs:ReceiveMessage"));
        assert!(!policy.allows("ecs:UpdateService"));
        assert!(TaskRolePolicy::from_actions(["*"]).allows("ecs:UpdateTaskProtection"));
        assert!(!TaskRolePolicy::from_actions(["ecs:Get*"]).allows("ecs:UpdateTaskProtection"));
    }

    #[test]
    fn reads_actions_through_locals_and_conditionals() {
        let source = r#"
locals {
  shared = [
    { Sid = "A", Action = ["s3:GetObject"], Resource = ["${var.bucket}/*"] },
  ]
  consumer = ["sqs:ReceiveMessage", "sqs:DeleteMessage"] # a comment "x:Y"
  task = concat(
    local.shared,
    [{ Sid = "Q", Action = local.consumer, Resource = [local.arn] }],
    var.on ? [{ Sid = "E", Action = "ecs:UpdateTaskProtection", Condition = { StringLike = { "s3:prefix" = ["a"] } } }] : [],
  )
  arn = "arn:${local.partition}:sqs"
}
"#;
        let actions = hcl_local_actions(source, "task").unwrap();
        assert_eq!(
            actions.into_iter().collect::<Vec<_>>(),
            [
                "ecs:UpdateTaskProtection",
                "s3:GetObject",
                "sqs:DeleteMessage",
                "sqs:ReceiveMessage"
            ]
        );
    }

    #[test]
    fn policy_documents_with_deny_are_refused() {
        let doc =
            serde_json::json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]});
        assert!(TaskRolePolicy::from_policy_document(&doc).is_err());
        let doc = serde_json::json!({"Statement": {"Effect": "Allow", "Action": "ecs:GetTaskProtection", "Resource": "*"}});
        assert!(
            TaskRolePolicy::from_policy_document(&doc)
                .unwrap()
                .allows("ecs:GetTaskProtection")
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_921_200)),
            "2026-11-29T03:00:00Z"
        );
    }
}
