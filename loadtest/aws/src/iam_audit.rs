//! What IAM authorises for one request on the wire: the signing access key
//! and the (action, resource ARN, condition keys) it needs, read from the
//! request as the AWS SDK sends it (path-style S3; the JSON protocols of
//! SQS, DynamoDB, ECS and Secrets Manager). The [`crate::aws_counter`]
//! records one [`AuditedCall`] per request when started audited; the
//! `bottlesync-aws-audit` binary evaluates them against each role's policy
//! (`bottlesync_loadtest::iam_policy`), the resource half moto does not
//! check.
//!
//! A request this module cannot map is recorded as unmapped, never
//! guessed: the audit fails on it, naming the API, so a new call is mapped
//! here before it can pass unchecked.

use axum::http::{HeaderMap, Method};
use bottlesync_loadtest::iam_policy::Authorization;
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// One request as the audit proxy saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditedCall {
    /// The access key that signed it (`None`: unsigned).
    pub access_key: Option<String>,
    /// As the counter names it (`SQS.SendMessage`, `S3.PutObject`).
    pub api: String,
    /// The status the upstream answered (0: no answer).
    pub status: u16,
    /// What IAM checks for it, or why it could not be mapped.
    pub authorizations: Result<Vec<Authorization>, String>,
}

/// Whether the audit needs the request's body (the JSON protocols name
/// their resources there; S3's DeleteObjects lists its keys there).
pub fn needs_body(headers: &HeaderMap, path_and_query: &str) -> bool {
    headers.contains_key("x-amz-target")
        || path_and_query
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p == "delete" || p == "delete="))
}

/// The access key of a SigV4 request: `Credential=<key>/<date>/<region>/...`
/// of the `Authorization` header or of a presigned URL.
pub fn access_key(headers: &HeaderMap, path_and_query: &str) -> Option<String> {
    credential_scope(headers, path_and_query).map(|(key, _)| key)
}

fn credential_scope(headers: &HeaderMap, path_and_query: &str) -> Option<(String, String)> {
    let credential = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(header) => header
            .split([',', ' '])
            .find_map(|part| part.trim().strip_prefix("Credential="))?
            .to_string(),
        None => {
            let query = path_and_query.split_once('?')?.1;
            let raw = query
                .split('&')
                .find_map(|p| p.strip_prefix("X-Amz-Credential="))?;
            percent_decode_str(raw).decode_utf8().ok()?.into_owned()
        }
    };
    let mut parts = credential.split('/');
    let key = parts.next()?.to_string();
    let region = parts.nth(1)?.to_string();
    Some((key, region))
}

/// What IAM authorises for this request. `account` is the account the
/// resources live in (moto's is 123456789012).
pub fn authorizations(
    api: &str,
    method: &Method,
    headers: &HeaderMap,
    path_and_query: &str,
    body: &[u8],
    account: &str,
) -> Result<Vec<Authorization>, String> {
    let region = credential_scope(headers, path_and_query)
        .map(|(_, region)| region)
        .ok_or("unsigned request: no SigV4 credential scope")?;
    let (service, operation) = api.split_once('.').unwrap_or(("?", api));
    if service == "S3" {
        return s3(operation, method, headers, path_and_query, body);
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| format!("{api}: the request body is not JSON: {e}"))?;
    let arns = Arns {
        region: &region,
        account,
    };
    match service {
        "SQS" => sqs(operation, &body, &arns),
        "DynamoDB" => dynamodb(operation, &body, &arns),
        "AmazonEC2ContainerServiceV20141113" => ecs(operation, &body, &arns),
        "secretsmanager" => secrets_manager(operation, &body, &arns),
        _ => Err(format!("{api}: no IAM mapping for this service")),
    }
}

struct Arns<'a> {
    region: &'a str,
    account: &'a str,
}

impl Arns<'_> {
    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account
        )
    }
}

fn field<'a>(body: &'a Value, name: &str, api: &str) -> Result<&'a str, String> {
    body[name]
        .as_str()
        .ok_or_else(|| format!("{api}: the request has no {name}"))
}

// ------------------------------------------------------------------ S3 ----

fn s3(
    operation: &str,
    method: &Method,
    headers: &HeaderMap,
    path_and_query: &str,
    body: &[u8],
) -> Result<Vec<Authorization>, String> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|e| format!("S3.{operation}: {s:?} is not UTF-8: {e}"))
    };
    let path = path.trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let object_arn = || decode(key).map(|key| format!("{bucket_arn}/{key}"));
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| decode(v))
        })
    };
    // Subresources this mapping does not know (?acl, ?tagging, ...) are
    // other APIs with other actions.
    let known = [
        "x-id",
        "list-type",
        "prefix",
        "continuation-token",
        "start-after",
        "max-keys",
        "delimiter",
        "encoding-type",
        "fetch-owner",
        "uploads",
        "uploadId",
        "partNumber",
        "delete",
        "key-marker",
        "upload-id-marker",
        "max-uploads",
        "max-parts",
        "part-number-marker",
        "versionId",
    ];
    if let Some(unknown) = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split('=').next().unwrap_or(p))
        .find(|name| !known.contains(name))
    {
        return Err(format!(
            "S3 {method} with ?{unknown}: no IAM mapping for this subresource"
        ));
    }
    let tagging = headers.contains_key("x-amz-tagging");
    let one = |action: &str, resource: String| vec![Authorization::new(action, resource)];
    let mut needed = match operation {
        "GetObject" | "HeadObject" => one("s3:GetObject", object_arn()?),
        "PutObject" | "UploadPart" | "CreateMultipartUpload" | "CompleteMultipartUpload" => {
            one("s3:PutObject", object_arn()?)
        }
        "CopyObject" => {
            let source = headers
                .get("x-amz-copy-source")
                .and_then(|v| v.to_str().ok())
                .ok_or("S3.CopyObject: no x-amz-copy-source")?;
            let source = source.split('?').next().unwrap_or(source);
            let source = decode(source.trim_start_matches('/'))?;
            vec![
                Authorization::new("s3:GetObject", format!("arn:aws:s3:::{source}")),
                Authorization::new("s3:PutObject", object_arn()?),
            ]
        }
        "AbortMultipartUpload" => one("s3:AbortMultipartUpload", object_arn()?),
        "ListParts" => one("s3:ListMultipartUploadParts", object_arn()?),
        "DeleteObject" => one("s3:DeleteObject", object_arn()?),
        "DeleteObjects" => {
            let text = std::str::from_utf8(body)
                .map_err(|e| format!("S3.DeleteObjects: the body is not UTF-8: {e}"))?;
            let keys: Vec<_> = text
                .split("<Key>")
                .skip(1)
                .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| xml_unescape(k)))
                .collect();
            if keys.is_empty() {
                return Err("S3.DeleteObjects: no <Key> in the body".into());
            }
            keys.into_iter()
                .map(|k| Authorization::new("s3:DeleteObject", format!("{bucket_arn}/{k}")))
                .collect()
        }
        "HeadBucket" => one("s3:ListBucket", bucket_arn.clone()),
        "ListObjects" | "ListObjectsV2" => {
            let mut list = Authorization::new("s3:ListBucket", bucket_arn.clone());
            if let Some(prefix) = param("prefix") {
                list = list.with_context("s3:prefix", prefix?);
            }
            vec![list]
        }
        "ListMultipartUploads" => one("s3:ListBucketMultipartUploads", bucket_arn.clone()),
        other => return Err(format!("S3.{other}: no IAM mapping for this API")),
    };
    if tagging {
        needed.push(Authorization::new("s3:PutObjectTagging", object_arn()?));
    }
    Ok(needed)
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

// ----------------------------------------------------------------- SQS ----

fn sqs(operation: &str, body: &Value, arns: &Arns) -> Result<Vec<Authorization>, String> {
    let api = format!("SQS.{operation}");
    // The batch APIs are authorised as their single-message actions.
    let action = match operation {
        "SendMessageBatch" => "SendMessage",
        "DeleteMessageBatch" => "DeleteMessage",
        "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
        "SendMessage"
        | "ReceiveMessage"
        | "DeleteMessage"
        | "ChangeMessageVisibility"
        | "GetQueueAttributes"
        | "PurgeQueue" => operation,
        "GetQueueUrl" => {
            let name = field(body, "QueueName", &api)?;
            return Ok(vec![Authorization::new(
                "sqs:GetQueueUrl",
                arns.arn("sqs", name),
            )]);
        }
        "ListQueues" => return Ok(vec![Authorization::new("sqs:ListQueues", "*")]),
        other => return Err(format!("SQS.{other}: no IAM mapping for this API")),
    };
    let url = field(body, "QueueUrl", &api)?;
    // http(s)://host/<account>/<name>
    let mut segments = url.rsplit('/');
    let (name, account) = (segments.next(), segments.next());
    let (Some(name), Some(account)) = (name, account) else {
        return Err(format!(
            "{api}: QueueUrl {url:?} is not .../<account>/<name>"
        ));
    };
    Ok(vec![Authorization::new(
        format!("sqs:{action}"),
        format!("arn:aws:sqs:{}:{account}:{name}", arns.region),
    )])
}

// ------------------------------------------------------------ DynamoDB ----

fn dynamodb(operation: &str, body: &Value, arns: &Arns) -> Result<Vec<Authorization>, String> {
    let api = format!("DynamoDB.{operation}");
    let table = |name: &str| arns.arn("dynamodb", &format!("table/{name}"));
    match operation {
        "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" | "DescribeTable" => {
            let name = field(body, "TableName", &api)?;
            Ok(vec![Authorization::new(
                format!("dynamodb:{operation}"),
                table(name),
            )])
        }
        "Query" | "Scan" => {
            let name = field(body, "TableName", &api)?;
            let resource = match body["IndexName"].as_str() {
                Some(index) => format!("{}/index/{index}", table(name)),
                None => table(name),
            };
            Ok(vec![Authorization::new(
                format!("dynamodb:{operation}"),
                resource,
            )])
        }
        "BatchGetItem" | "BatchWriteItem" => {
            let items = body["RequestItems"]
                .as_object()
                .ok_or_else(|| format!("{api}: no RequestItems"))?;
            Ok(items
                .keys()
                .map(|name| Authorization::new(format!("dynamodb:{operation}"), table(name)))
                .collect())
        }
        // Authorised per item, as the item's own action.
        "TransactWriteItems" | "TransactGetItems" => {
            let items = body["TransactItems"]
                .as_array()
                .ok_or_else(|| format!("{api}: no TransactItems"))?;
            items
                .iter()
                .map(|item| {
                    let (kind, inner) = item
                        .as_object()
                        .and_then(|o| o.iter().next())
                        .ok_or_else(|| format!("{api}: an empty TransactItem"))?;
                    let action = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        "ConditionCheck" => "ConditionCheckItem",
                        "Get" => "GetItem",
                        other => return Err(format!("{api}: unknown TransactItem {other}")),
                    };
                    let name = field(inner, "TableName", &api)?;
                    Ok(Authorization::new(
                        format!("dynamodb:{action}"),
                        table(name),
                    ))
                })
                .collect()
        }
        other => Err(format!("DynamoDB.{other}: no IAM mapping for this API")),
    }
}

// ----------------------------------------------------------------- ECS ----

fn ecs(operation: &str, body: &Value, arns: &Arns) -> Result<Vec<Authorization>, String> {
    let api = format!("ECS.{operation}");
    let cluster = body["cluster"].as_str().unwrap_or("default");
    let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
    let service = |name: &str| {
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            arns.arn("ecs", &format!("service/{cluster}/{name}"))
        }
    };
    match operation {
        "UpdateService" => Ok(vec![Authorization::new(
            "ecs:UpdateService",
            service(field(body, "service", &api)?),
        )]),
        "DescribeServices" => {
            let names = body["services"]
                .as_array()
                .ok_or_else(|| format!("{api}: no services"))?;
            names
                .iter()
                .map(|n| {
                    let n = n
                        .as_str()
                        .ok_or_else(|| format!("{api}: a service is not a string"))?;
                    Ok(Authorization::new("ecs:DescribeServices", service(n)))
                })
                .collect()
        }
        other => Err(format!("ECS.{other}: no IAM mapping for this API")),
    }
}

// ----------------------------------------------------- Secrets Manager ----

fn secrets_manager(
    operation: &str,
    body: &Value,
    arns: &Arns,
) -> Result<Vec<Authorization>, String> {
    let api = format!("secretsmanager.{operation}");
    match operation {
        "GetSecretValue" | "DescribeSecret" => {
            let id = field(body, "SecretId", &api)?;
            if !id.starts_with("arn:") {
                // IAM checks the full ARN, with the suffix AWS adds to the
                // name: a bare name cannot be matched to a policy here.
                return Err(format!(
                    "{api}: SecretId {id:?} is a name, not the ARN the policy names"
                ));
            }
            let _ = arns;
            Ok(vec![Authorization::new(
                format!("secretsmanager:{operation}"),
                id,
            )])
        }
        other => Err(format!(
            "secretsmanager.{other}: no IAM mapping for this API"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_counter::classify;

    const ACCOUNT: &str = "123456789012";

    fn signed(target: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261207/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00"
                .parse()
                .unwrap(),
        );
        if let Some(target) = target {
            headers.insert("x-amz-target", target.parse().unwrap());
        }
        headers
    }

    fn needed(
        method: Method,
        headers: &HeaderMap,
        path: &str,
        body: &str,
    ) -> Vec<(String, String)> {
        let api = classify(&method, headers, path);
        authorizations(&api, &method, headers, path, body.as_bytes(), ACCOUNT)
            .unwrap()
            .into_iter()
            .map(|a| (a.action, a.resource))
            .collect()
    }

    fn pair(action: &str, resource: &str) -> (String, String) {
        (action.to_string(), resource.to_string())
    }

    #[test]
    fn the_access_key_is_read_from_the_signature() {
        assert_eq!(access_key(&signed(None), "/"), Some("ASIAEXAMPLE".into()));
        let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAX%2F20261207%2Fus-east-1%2Fs3%2Faws4_request";
        assert_eq!(
            access_key(&HeaderMap::new(), presigned),
            Some("AKIAX".into())
        );
        assert_eq!(access_key(&HeaderMap::new(), "/b/k"), None);
    }

    #[test]
    fn sqs_calls_name_their_queue() {
        let headers = signed(Some("AmazonSQS.SendMessageBatch"));
        let body = r#"{"QueueUrl":"http://127.0.0.1:5000/123456789012/bottlesync-local-ecs","Entries":[]}"#;
        assert_eq!(
            needed(Method::POST, &headers, "/", body),
            [pair(
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-1:123456789012:bottlesync-local-ecs"
            )]
        );
    }

    #[test]
    fn dynamodb_batches_and_transactions_are_authorised_per_table_and_item() {
        let headers = signed(Some("DynamoDB_20120810.BatchGetItem"));
        let body = r#"{"RequestItems":{"ledger":{"Keys":[]}}}"#;
        assert_eq!(
            needed(Method::POST, &headers, "/", body),
            [pair(
                "dynamodb:BatchGetItem",
                "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
            )]
        );
        let headers = signed(Some("DynamoDB_20120810.TransactWriteItems"));
        let body = r#"{"TransactItems":[{"Put":{"TableName":"ledger"}},{"ConditionCheck":{"TableName":"ledger"}}]}"#;
        assert_eq!(
            needed(Method::POST, &headers, "/", body),
            [
                pair(
                    "dynamodb:PutItem",
                    "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
                ),
                pair(
                    "dynamodb:ConditionCheckItem",
                    "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
                ),
            ]
        );
    }

    #[test]
    fn s3_calls_name_bucket_object_and_prefix() {
        let headers = signed(None);
        assert_eq!(
            needed(
                Method::PUT,
                &headers,
                "/m/p/bottles/gtk%2B3-1.tahoe.bottle.tar.gz?x-id=PutObject",
                ""
            ),
            [pair(
                "s3:PutObject",
                "arn:aws:s3:::m/p/bottles/gtk+3-1.tahoe.bottle.tar.gz"
            )]
        );
        let mut copy = signed(None);
        copy.insert(
            "x-amz-copy-source",
            "m/p/2026-11-29/a.tar.gz".parse().unwrap(),
        );
        assert_eq!(
            needed(
                Method::PUT,
                &copy,
                "/m/p/bottles/a.tar.gz?x-id=CopyObject",
                ""
            ),
            [
                pair("s3:GetObject", "arn:aws:s3:::m/p/2026-11-29/a.tar.gz"),
                pair("s3:PutObject", "arn:aws:s3:::m/p/bottles/a.tar.gz"),
            ]
        );
        let api = classify(
            &Method::GET,
            &headers,
            "/m?list-type=2&prefix=p%2Fbottles%2F",
        );
        let list = authorizations(
            &api,
            &Method::GET,
            &headers,
            "/m?list-type=2&prefix=p%2Fbottles%2F",
            b"",
            ACCOUNT,
        )
        .unwrap();
        assert_eq!(list[0].action, "s3:ListBucket");
        assert_eq!(list[0].context["s3:prefix"], "p/bottles/");
        let delete =
            "<Delete><Object><Key>p/a&amp;b</Key></Object><Object><Key>p/c</Key></Object></Delete>";
        assert_eq!(
            needed(Method::POST, &headers, "/m?delete", delete),
            [
                pair("s3:DeleteObject", "arn:aws:s3:::m/p/a&b"),
                pair("s3:DeleteObject", "arn:aws:s3:::m/p/c")
            ]
        );
    }

    #[test]
    fn what_it_cannot_map_is_an_error_naming_the_api() {
        let headers = signed(None);
        let api = classify(&Method::PUT, &headers, "/m/k?acl");
        let error =
            authorizations(&api, &Method::PUT, &headers, "/m/k?acl", b"", ACCOUNT).unwrap_err();
        assert!(error.contains("?acl"), "{error}");
        let headers = signed(Some("AWSKMS.Decrypt"));
        let error = authorizations(
            "AWSKMS.Decrypt",
            &Method::POST,
            &headers,
            "/",
            b"{}",
            ACCOUNT,
        )
        .unwrap_err();
        assert!(error.contains("AWSKMS.Decrypt"), "{error}");
        let unsigned = authorizations(
            "SQS.SendMessage",
            &Method::POST,
            &HeaderMap::new(),
            "/",
            b"{}",
            ACCOUNT,
        );
        assert!(unsigned.unwrap_err().contains("unsigned"));
    }
}
