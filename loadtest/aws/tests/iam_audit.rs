//! The audited proxy against moto_server with the real SDK: each call is
//! recorded with its signing key and the IAM action and resource it needs,
//! bodies still reach moto, and a policy without the resource half (the
//! planner's ledger statement before BatchGetItem) is caught.

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use bottlesync_aws_harness::aws_counter::AwsRequestCounter;
use bottlesync_aws_harness::moto::{Moto, create_ledger_table};
use bottlesync_loadtest::iam_policy::{Decision, PolicyDocument};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_recorded_with_what_iam_authorises() {
    let moto = Moto::start().await;
    create_ledger_table(&moto.dynamodb(), "ledger").await;
    let queue = moto
        .sqs()
        .create_queue()
        .queue_name("work-large")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    moto.s3()
        .create_bucket()
        .bucket("mirror")
        .send()
        .await
        .unwrap();

    let main = AwsRequestCounter::start_audited(&moto.endpoint, "123456789012", None)
        .await
        .unwrap();
    let dynamodb_proxy =
        AwsRequestCounter::start_audited(&moto.dynamodb_endpoint, "123456789012", None)
            .await
            .unwrap();
    let config = moto.sdk_config();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .endpoint_url(main.url())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .endpoint_url(main.url())
            .force_path_style(true)
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(dynamodb_proxy.url())
            .build(),
    );

    sqs.send_message()
        .queue_url(&queue)
        .message_body("hand-off")
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("mirror")
        .key("homebrew/bottles/gtk+3-1.tahoe.bottle.tar.gz")
        .body(b"bottle".to_vec().into())
        .send()
        .await
        .unwrap();
    let keys = KeysAndAttributes::builder()
        .keys([("pk".to_string(), AttributeValue::S("run#1".into()))].into())
        .build()
        .unwrap();
    dynamodb
        .batch_get_item()
        .request_items("ledger", keys)
        .send()
        .await
        .unwrap();

    // The message went through, body and all.
    let received = moto
        .sqs()
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1);

    let mut calls = main.audited_calls();
    calls.extend(dynamodb_proxy.audited_calls());
    let needed: Vec<(String, String, String, u16)> = calls
        .iter()
        .flat_map(|call| {
            let authorizations = call.authorizations.clone().expect("every call is mapped");
            authorizations.into_iter().map(|a| {
                (
                    call.access_key.clone().unwrap(),
                    a.action,
                    a.resource,
                    call.status,
                )
            })
        })
        .collect();
    let testing = "testing".to_string();
    assert_eq!(
        needed,
        [
            (
                testing.clone(),
                "sqs:SendMessage".into(),
                "arn:aws:sqs:us-east-1:123456789012:work-large".into(),
                200
            ),
            (
                testing.clone(),
                "s3:PutObject".into(),
                "arn:aws:s3:::mirror/homebrew/bottles/gtk+3-1.tahoe.bottle.tar.gz".into(),
                200
            ),
            (
                testing,
                "dynamodb:BatchGetItem".into(),
                "arn:aws:dynamodb:us-east-1:123456789012:table/ledger".into(),
                200
            ),
        ]
    );

    // The planner's ledger statement as it was: moto answered 200, IAM would not.
    let before = PolicyDocument::parse(&serde_json::json!({ "Statement": [{
        "Sid": "Ledger", "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
        "Resource": ["arn:aws:dynamodb:us-east-1:123456789012:table/ledger"],
    }]}))
    .unwrap();
    let batch = &calls.last().unwrap().authorizations.as_ref().unwrap()[0];
    assert_eq!(before.evaluate(batch), Decision::ImplicitDeny);
}
