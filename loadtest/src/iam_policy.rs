//! IAM identity-policy evaluation for the tests, the half moto leaves out:
//! moto's access control checks a principal's *actions* but not the
//! `Resource` or `Condition` of its statements (aws.md, "What moto does not
//! check"). [`PolicyDocument::evaluate`] decides one request the way IAM
//! does for an identity policy of the same account: an explicit `Deny`
//! wins, else any `Allow` that matches action, resource and conditions,
//! else the implicit deny
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
//!
//! `Action`/`NotAction` match case-insensitively, `Resource`/`NotResource`
//! case-sensitively, both with `*` and `?` wildcards. Conditions: the
//! `String*` operators (with `IfExists`) over the keys a request carries;
//! any other operator makes the statement [`Decision::Unevaluated`], never
//! silently allowed.

use std::collections::BTreeMap;

use serde_json::Value;

/// `*` matches any run of characters, `?` any one (IAM's wildcards).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative glob match, backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// One request as IAM authorises it: an action on a resource, with the
/// condition keys the request sets (`s3:prefix` for a listing, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Authorization {
    pub action: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

impl Authorization {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Authorization {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    pub fn with_context(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.insert(key.to_string(), value.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the statement with this Sid (or its index).
    Allowed(String),
    /// No statement allows it.
    ImplicitDeny,
    /// Denied by the statement with this Sid.
    ExplicitDeny(String),
    /// A statement that could decide it has a condition this evaluator does
    /// not implement.
    Unevaluated(String),
}

/// An identity policy (the `Statement` list of one or more documents).
#[derive(Debug, Clone, Default)]
pub struct PolicyDocument {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    name: String,
    allow: bool,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Patterns {
    /// `NotAction` / `NotResource`.
    negated: bool,
    patterns: Vec<String>,
}

#[derive(Debug, Clone)]
struct Condition {
    operator: String,
    key: String,
    values: Vec<String>,
}

impl PolicyDocument {
    /// Parses a policy document (as `GetRolePolicy` or the Terraform state
    /// hold it: a JSON object, or a string of one). Anything IAM would
    /// refuse, or that this evaluator could misread, is an error.
    pub fn parse(document: &Value) -> anyhow::Result<Self> {
        let document = match document {
            Value::String(text) => serde_json::from_str(text)
                .map_err(|e| anyhow::anyhow!("policy document is not JSON: {e}"))?,
            other => other.clone(),
        };
        let statements = match &document["Statement"] {
            Value::Array(list) => list.clone(),
            one @ Value::Object(_) => vec![one.clone()],
            other => anyhow::bail!("policy document has no Statement list: {other}"),
        };
        let statements = statements
            .iter()
            .enumerate()
            .map(|(i, s)| Statement::parse(i, s))
            .collect::<anyhow::Result<_>>()?;
        Ok(PolicyDocument { statements })
    }

    /// All statements of `self` and `other` (a role's several policies).
    pub fn merge(mut self, other: PolicyDocument) -> Self {
        self.statements.extend(other.statements);
        self
    }

    pub fn evaluate(&self, request: &Authorization) -> Decision {
        let mut allowed = None;
        let mut unevaluated = None;
        for statement in &self.statements {
            if !statement.applies_to(request) {
                continue;
            }
            match statement.conditions_hold(&request.context) {
                Err(problem) => {
                    unevaluated.get_or_insert(format!("{}: {problem}", statement.name));
                }
                Ok(false) => {}
                Ok(true) if !statement.allow => {
                    return Decision::ExplicitDeny(statement.name.clone());
                }
                Ok(true) => {
                    allowed.get_or_insert(statement.name.clone());
                }
            }
        }
        match (unevaluated, allowed) {
            (Some(problem), _) => Decision::Unevaluated(problem),
            (None, Some(name)) => Decision::Allowed(name),
            (None, None) => Decision::ImplicitDeny,
        }
    }
}

impl Statement {
    fn parse(index: usize, statement: &Value) -> anyhow::Result<Self> {
        let name = statement["Sid"]
            .as_str()
            .map_or_else(|| format!("statement {index}"), str::to_string);
        let allow = match statement["Effect"].as_str() {
            Some("Allow") => true,
            Some("Deny") => false,
            other => anyhow::bail!("{name}: Effect must be Allow or Deny, not {other:?}"),
        };
        anyhow::ensure!(
            statement.get("Principal").is_none() && statement.get("NotPrincipal").is_none(),
            "{name}: an identity policy has no Principal"
        );
        let actions = Patterns::parse(&name, statement, "Action", "NotAction")?;
        let resources = Patterns::parse(&name, statement, "Resource", "NotResource")?;
        let mut conditions = Vec::new();
        if let Some(block) = statement.get("Condition") {
            let block = block
                .as_object()
                .ok_or_else(|| anyhow::anyhow!("{name}: Condition is not an object"))?;
            for (operator, keys) in block {
                let keys = keys.as_object().ok_or_else(|| {
                    anyhow::anyhow!("{name}: Condition {operator} is not an object")
                })?;
                for (key, values) in keys {
                    conditions.push(Condition {
                        operator: operator.clone(),
                        key: key.clone(),
                        values: strings(values)
                            .map_err(|e| anyhow::anyhow!("{name}: {operator} {key}: {e}"))?,
                    });
                }
            }
        }
        Ok(Statement {
            name,
            allow,
            actions,
            resources,
            conditions,
        })
    }

    fn applies_to(&self, request: &Authorization) -> bool {
        let action = request.action.to_ascii_lowercase();
        self.actions
            .matches(|p| wildcard_match(&p.to_ascii_lowercase(), &action))
            && self
                .resources
                .matches(|p| wildcard_match(p, &request.resource))
    }

    /// Every condition holds (IAM ANDs the operators and the keys).
    fn conditions_hold(&self, context: &BTreeMap<String, String>) -> Result<bool, String> {
        for condition in &self.conditions {
            if !condition.holds(context)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Patterns {
    fn parse(name: &str, statement: &Value, field: &str, negated: &str) -> anyhow::Result<Self> {
        match (statement.get(field), statement.get(negated)) {
            (Some(v), None) => Ok(Patterns {
                negated: false,
                patterns: strings(v).map_err(|e| anyhow::anyhow!("{name}: {field}: {e}"))?,
            }),
            (None, Some(v)) => Ok(Patterns {
                negated: true,
                patterns: strings(v).map_err(|e| anyhow::anyhow!("{name}: {negated}: {e}"))?,
            }),
            _ => anyhow::bail!("{name}: needs exactly one of {field} and {negated}"),
        }
    }

    fn matches(&self, one: impl Fn(&str) -> bool) -> bool {
        self.patterns.iter().any(|p| one(p)) != self.negated
    }
}

impl Condition {
    fn holds(&self, context: &BTreeMap<String, String>) -> Result<bool, String> {
        let (operator, if_exists) = match self.operator.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (self.operator.as_str(), false),
        };
        // Condition keys are case-insensitive.
        let value = context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.key))
            .map(|(_, v)| v);
        let Some(value) = value else {
            return match operator {
                "StringNotEquals" | "StringNotLike" => Ok(true),
                _ if if_exists => Ok(true),
                _ if is_string_operator(operator) => Ok(false),
                _ => Err(format!(
                    "condition operator {} not evaluated",
                    self.operator
                )),
            };
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        match operator {
            "StringEquals" => Ok(any(&|v| v == value)),
            "StringNotEquals" => Ok(!any(&|v| v == value)),
            "StringEqualsIgnoreCase" => Ok(any(&|v| v.eq_ignore_ascii_case(value))),
            "StringLike" => Ok(any(&|v| wildcard_match(v, value))),
            "StringNotLike" => Ok(!any(&|v| wildcard_match(v, value))),
            other => Err(format!("condition operator {other} not evaluated")),
        }
    }
}

fn is_string_operator(operator: &str) -> bool {
    matches!(
        operator,
        "StringEquals" | "StringEqualsIgnoreCase" | "StringLike"
    )
}

fn strings(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("not a string: {v}"))
            })
            .collect(),
        other => Err(format!("not a string or a list of strings: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUCKET: &str = "arn:aws:s3:::mirror";

    fn policy(statements: Value) -> PolicyDocument {
        PolicyDocument::parse(&json!({ "Version": "2012-10-17", "Statement": statements })).unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            "ecs:*TaskProtection",
            "ecs:UpdateTaskProtection"
        ));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match(
            "arn:aws:s3:::mirror/p/*",
            "arn:aws:s3:::mirror/q/x"
        ));
    }

    #[test]
    fn the_resource_half_moto_leaves_out() {
        // The planner's ledger statement before BatchGetItem was added, and
        // the worker's queue statement before the ECS hand-off was.
        let p = policy(json!([
            { "Sid": "Ledger", "Effect": "Allow",
              "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
              "Resource": ["arn:aws:dynamodb:us-east-1:1:table/ledger"] },
            { "Sid": "Consume", "Effect": "Allow", "Action": "sqs:SendMessage",
              "Resource": "arn:aws:sqs:us-east-1:1:lambda" },
        ]));
        let get = Authorization::new(
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:1:table/ledger",
        );
        assert_eq!(p.evaluate(&get), Decision::Allowed("Ledger".into()));
        let batch = Authorization::new(
            "dynamodb:BatchGetItem",
            "arn:aws:dynamodb:us-east-1:1:table/ledger",
        );
        assert_eq!(p.evaluate(&batch), Decision::ImplicitDeny);
        let other_table = Authorization::new(
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:1:table/other",
        );
        assert_eq!(p.evaluate(&other_table), Decision::ImplicitDeny);
        let hand_off = Authorization::new("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:ecs");
        assert_eq!(p.evaluate(&hand_off), Decision::ImplicitDeny);
        // Actions are case-insensitive, resources are not.
        let upper = Authorization::new("SQS:SENDMESSAGE", "arn:aws:sqs:us-east-1:1:lambda");
        assert!(matches!(p.evaluate(&upper), Decision::Allowed(_)));
        let upper = Authorization::new("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:LAMBDA");
        assert_eq!(p.evaluate(&upper), Decision::ImplicitDeny);
    }

    #[test]
    fn deny_wins_and_not_elements_invert() {
        let p = policy(json!([
            { "Effect": "Allow", "Action": "s3:*", "Resource": "*" },
            { "Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:DeleteObject",
              "NotResource": format!("{BUCKET}/tmp/*") },
        ]));
        let delete = Authorization::new("s3:DeleteObject", format!("{BUCKET}/bottles/x"));
        assert_eq!(
            p.evaluate(&delete),
            Decision::ExplicitDeny("NoDeletes".into())
        );
        let tmp = Authorization::new("s3:DeleteObject", format!("{BUCKET}/tmp/x"));
        assert_eq!(p.evaluate(&tmp), Decision::Allowed("statement 0".into()));
        let p = policy(json!([{ "Effect": "Allow", "NotAction": "iam:*", "Resource": "*" }]));
        assert!(matches!(p.evaluate(&tmp), Decision::Allowed(_)));
        let iam = Authorization::new("iam:CreateUser", "*");
        assert_eq!(p.evaluate(&iam), Decision::ImplicitDeny);
    }

    #[test]
    fn listing_is_limited_to_the_prefix() {
        // terraform/modules/iam/main.tf's MirrorBucketList.
        let p = policy(json!([{
            "Sid": "MirrorBucketList", "Effect": "Allow", "Action": ["s3:ListBucket"],
            "Resource": [BUCKET],
            "Condition": { "StringLikeIfExists": { "s3:prefix": ["mirror", "mirror/*"] } },
        }]));
        let list = |prefix: Option<&str>| {
            let request = Authorization::new("s3:ListBucket", BUCKET);
            p.evaluate(&match prefix {
                Some(prefix) => request.with_context("s3:prefix", prefix),
                None => request,
            })
        };
        assert!(matches!(
            list(Some("mirror/2026-11-29/")),
            Decision::Allowed(_)
        ));
        assert!(matches!(list(Some("mirror")), Decision::Allowed(_)));
        assert_eq!(list(Some("other/")), Decision::ImplicitDeny);
        // HeadBucket sets no prefix: IfExists lets it through.
        assert!(matches!(list(None), Decision::Allowed(_)));
    }

    #[test]
    fn conditions_it_cannot_evaluate_are_said_not_allowed() {
        let p = policy(json!([{
            "Sid": "Dated", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
            "Condition": { "DateGreaterThan": { "aws:CurrentTime": "2020-01-01T00:00:00Z" } },
        }]));
        let get = Authorization::new("s3:GetObject", format!("{BUCKET}/k"))
            .with_context("aws:CurrentTime", "2026-12-07T00:00:00Z");
        assert!(
            matches!(p.evaluate(&get), Decision::Unevaluated(problem) if problem.contains("DateGreaterThan"))
        );
    }

    #[test]
    fn malformed_documents_are_errors_that_name_the_statement() {
        let bad = [
            (json!({ "Statement": "x" }), "no Statement list"),
            (
                json!({ "Statement": [{ "Sid": "A", "Effect": "Maybe", "Action": "*", "Resource": "*" }] }),
                "A: Effect",
            ),
            (
                json!({ "Statement": [{ "Sid": "B", "Effect": "Allow", "Resource": "*" }] }),
                "B: needs exactly one of Action",
            ),
            (
                json!({ "Statement": [{ "Sid": "C", "Effect": "Allow", "Action": [1], "Resource": "*" }] }),
                "C: Action: not a string",
            ),
            (
                json!({ "Statement": [{ "Sid": "D", "Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*" }] }),
                "D: an identity policy",
            ),
        ];
        for (document, expected) in bad {
            let error = PolicyDocument::parse(&document).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
        // As the Terraform state holds it: a string of JSON.
        let text = json!({ "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }] })
            .to_string();
        assert!(PolicyDocument::parse(&Value::String(text)).is_ok());
    }
}
