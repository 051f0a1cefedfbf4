//! The lossy proxy against moto_server with the real SDK: a lost answer's
//! write has landed, a held answer becomes the SDK's timeout, every fault
//! is counted, and a paused call never reaches moto.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bottlesync_aws_harness::aws_counter::AwsRequestCounter;
use bottlesync_aws_harness::aws_faults::FaultPlan;
use bottlesync_aws_harness::moto::{Moto, create_ledger_table};

/// A DynamoDB client through `proxy`, with `attempts` attempts of at most
/// `attempt_timeout` each.
fn dynamodb_via(
    moto: &Moto,
    proxy: &AwsRequestCounter,
    attempts: u32,
    attempt_timeout: Duration,
) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(&moto.sdk_config())
        .endpoint_url(proxy.url())
        .retry_config(
            aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(attempts),
        )
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn item_exists(moto: &Moto, pk: &str) -> bool {
    moto.dynamodb()
        .get_item()
        .table_name("t")
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .is_some()
}

async fn put(client: &aws_sdk_dynamodb::Client, pk: &str) -> Result<(), String> {
    client
        .put_item()
        .table_name("t")
        .item("pk", AttributeValue::S(pk.into()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_lands_the_write_and_its_retry_meets_it() {
    let moto = Moto::start().await;
    create_ledger_table(&moto.dynamodb(), "t").await;
    // Every answer lost.
    let mut plan = FaultPlan::dynamodb_and_sqs_writes(1, 1.0, Duration::from_secs(1));
    plan.lost_answer = 1.0;
    plan.held_answer = 0.0;
    let proxy = AwsRequestCounter::start_lossy(&moto.dynamodb_endpoint, plan)
        .await
        .unwrap();

    let once = dynamodb_via(&moto, &proxy, 1, Duration::from_secs(10));
    let err = put(&once, "a").await.unwrap_err();
    assert!(err.contains("InternalServerError"), "{err}");
    assert!(item_exists(&moto, "a").await, "the write landed");

    // The SDK retries the 500; the retry's condition fails on the first
    // attempt's own write (the fault the fleet must recognise).
    let retrying = dynamodb_via(&moto, &proxy, 2, Duration::from_secs(10));
    let err = put(&retrying, "b").await.unwrap_err();
    assert!(err.contains("ConditionalCheckFailed"), "{err}");
    assert!(item_exists(&moto, "b").await);

    let faults = proxy.faults();
    assert_eq!(faults["DynamoDB.PutItem"].lost_answers, 2, "{faults:?}");
    assert_eq!(proxy.counts()["DynamoDB.PutItem"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_answer_becomes_a_timeout_after_the_write_landed() {
    let moto = Moto::start().await;
    create_ledger_table(&moto.dynamodb(), "t").await;
    let mut plan = FaultPlan::dynamodb_and_sqs_writes(1, 1.0, Duration::from_secs(3));
    plan.lost_answer = 0.0;
    plan.held_answer = 1.0;
    let proxy = AwsRequestCounter::start_lossy(&moto.dynamodb_endpoint, plan)
        .await
        .unwrap();
    let client = dynamodb_via(&moto, &proxy, 1, Duration::from_millis(500));
    let err = put(&client, "c").await.unwrap_err();
    assert!(err.to_lowercase().contains("timeout"), "{err}");
    assert!(item_exists(&moto, "c").await, "the write landed");
    assert_eq!(proxy.faults()["DynamoDB.PutItem"].held_answers, 1);
    // Reads pass untouched.
    let read = client
        .get_item()
        .table_name("t")
        .key("pk", AttributeValue::S("c".into()))
        .send()
        .await
        .unwrap();
    assert!(read.item.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_call_waits_and_is_dropped_unforwarded_on_resume() {
    let moto = Moto::start().await;
    create_ledger_table(&moto.dynamodb(), "t").await;
    let plan = FaultPlan::dynamodb_and_sqs_writes(1, 0.0, Duration::from_secs(1));
    let proxy = AwsRequestCounter::start_lossy(&moto.dynamodb_endpoint, plan)
        .await
        .unwrap();
    proxy.pause_after("DynamoDB.PutItem", 1);
    let client = dynamodb_via(&moto, &proxy, 1, Duration::from_secs(30));
    put(&client, "first").await.unwrap();
    let second = tokio::spawn({
        let client = client.clone();
        async move { put(&client, "second").await }
    });
    while proxy.counts()["DynamoDB.PutItem"] < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!second.is_finished(), "the second put is held");
    proxy.resume();
    let err = second.await.unwrap().unwrap_err();
    assert!(err.contains("ServiceUnavailable"), "{err}");
    assert!(!item_exists(&moto, "second").await, "never forwarded");
    put(&client, "third").await.unwrap();
}
