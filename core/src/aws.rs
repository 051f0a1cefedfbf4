//! AWS SDK clients, configured the same way for the CLI, Lambda and ECS.
//! `AWS_ENDPOINT_URL` (e.g. moto_server in tests) switches S3 to path-style
//! addressing, which S3-compatible endpoints need.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::RequestChecksumCalculation;

pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

fn custom_endpoint(service_variable: &str) -> bool {
    ["AWS_ENDPOINT_URL", service_variable]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|value| !value.is_empty()))
}

pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint("AWS_ENDPOINT_URL_S3"))
        // Checksums only where S3 requires them: aws-chunked bodies are
        // rejected by many S3-compatible servers. Bottles are verified by
        // their sha256 before commit, and single puts carry it.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}
