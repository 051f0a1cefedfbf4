# enable_cdn: off by default (no distribution, null outputs); on, the root
# wires the cdn module to the mirror bucket and its prefix, merges the
# CloudFront grant into the bucket's one policy, and tells clients where to go.

# The provider checks ARNs even under a mock: the ARN-shaped defaults below.
mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b"] }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn                         = "arn:aws:s3:::cdn-mirror"
      bucket_regional_domain_name = "cdn-mirror.s3.us-east-1.amazonaws.com"
    }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/bottlesync-test-ledger" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/bottlesync-test" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:bottlesync-test-alarms" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bottlesync-test-slack-AbCdEf" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:mock" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:cluster/bottlesync-test" }
  }
  mock_resource "aws_ecs_service" {
    defaults = { id = "arn:aws:ecs:us-east-1:123456789012:service/bottlesync-test/bottlesync-test-worker" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/bottlesync-test-worker:1" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:mock" }
  }
  mock_resource "aws_appautoscaling_policy" {
    defaults = { arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:mock" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = {
      arn         = "arn:aws:cloudfront::123456789012:distribution/E2MIRRORTEST"
      domain_name = "d1mirror.cloudfront.net"
    }
  }
}

variables {
  s3_bucket_name = "cdn-mirror"
  worker_image   = "ghcr.io/example/bottlesync:1.0.0"
  # Any existing file: the mock provider never unzips it.
  planner_zip_path = "main.tf"
  worker_zip_path  = "main.tf"
}

run "cdn_is_off_by_default" {
  command = plan

  assert {
    condition     = length(module.cdn) == 0
    error_message = "no distribution unless enable_cdn"
  }
  assert {
    condition     = output.cdn_domain_name == null && output.homebrew_client_env == null
    error_message = "cdn_domain_name and homebrew_client_env are null when the CDN is off"
  }
}

run "enable_cdn_serves_bottles_and_api_through_cloudfront" {
  command = apply

  variables {
    enable_cdn = true
  }

  assert {
    condition     = length(module.cdn) == 1 && module.cdn[0].distribution_arn == "arn:aws:cloudfront::123456789012:distribution/E2MIRRORTEST"
    error_message = "one distribution"
  }
  assert {
    condition     = module.cdn[0].origin_access_control.id != null && module.cdn[0].origin_access_control.id != ""
    error_message = "an origin access control"
  }
  assert {
    condition     = output.cdn_domain_name == "d1mirror.cloudfront.net"
    error_message = "cdn_domain_name is the distribution's name"
  }
  assert {
    condition     = output.homebrew_client_env == "HOMEBREW_API_DOMAIN=https://d1mirror.cloudfront.net/api\nHOMEBREW_BOTTLE_DOMAIN=https://d1mirror.cloudfront.net/bottles\nHOMEBREW_NO_AUTO_UPDATE=1\nHOMEBREW_FORCE_API_AUTO_UPDATE=1"
    error_message = "homebrew_client_env: the four HOMEBREW_* lines, without the bucket prefix (it is the origin path)"
  }
}

run "the_distribution_serves_only_bottles_and_api_over_https" {
  command = apply

  variables {
    enable_cdn = true
  }

  assert {
    condition     = module.cdn[0].origin_access_control.signing_behavior == "always" && module.cdn[0].origin_access_control.signing_protocol == "sigv4"
    error_message = "an origin access control that always signs with sigv4 (replacing a viewer's Authorization header)"
  }
  assert {
    condition     = toset(keys(module.cdn[0].cache_behaviors)) == toset(["bottles/*/manifests/*", "bottles/*", "api/*", "*"])
    error_message = "behaviours for bottles/* (manifests apart) and api/*, and the default"
  }
  assert {
    condition = alltrue([for b in values(module.cdn[0].cache_behaviors) :
      b.viewer_protocol_policy == "https-only" && b.allowed_methods == tolist(["GET", "HEAD"])
    ])
    error_message = "every behaviour: HTTPS only, GET and HEAD only"
  }
  assert {
    condition = alltrue([for b in values(module.cdn[0].cache_behaviors) :
      b.forwarded_headers == "none" && b.forwarded_cookies == "none" && b.forwarded_query == "none" && b.origin_request_policy == null
    ])
    error_message = "no viewer header (so no Authorization: Bearer QQ==), cookie or query string reaches S3"
  }
  assert {
    condition = (
      module.cdn[0].cache_behaviors["bottles/*"].compress == false &&
      module.cdn[0].cache_behaviors["bottles/*"].default_ttl == 31536000 &&
      module.cdn[0].cache_behaviors["api/*"].compress == true &&
      module.cdn[0].cache_behaviors["api/*"].default_ttl == 300 &&
      module.cdn[0].cache_behaviors["bottles/*/manifests/*"].default_ttl == 300
    )
    error_message = "bottles: a year, never compressed; API files and manifests: 5 minutes, API compressed"
  }
}

run "rejects_aliases_without_a_certificate" {
  command = plan
  variables {
    enable_cdn  = true
    cdn_aliases = ["brew.example.com"]
  }
  expect_failures = [var.cdn_aliases]
}

# A customer-managed key needs statements for the services that use it with
# their own identity; the output gives them for each feature combination.
run "kms_key_policy_without_cdn" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  }

  assert {
    condition = toset([for s in jsondecode(output.kms_key_policy_json).Statement : s.Sid]) == toset([
      "AccountIamPolicies", "CloudWatchLogsOfThisStack", "CloudWatchAlarmsToTheTopic", "EventBridgeToTheTopicAndDeadLetters",
    ])
    error_message = "without the CDN: IAM delegation, Logs, alarms and EventBridge, no CloudFront"
  }
  assert {
    condition     = one([for s in jsondecode(output.kms_key_policy_json).Statement : s.Principal.Service if s.Sid == "CloudWatchLogsOfThisStack"]) == "logs.us-east-1.amazonaws.com"
    error_message = "CloudWatch Logs of the deployment's region"
  }
}

run "kms_key_policy_with_cdn" {
  # apply: the mock provider makes up the ARNs a plan leaves unknown.
  command = apply

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    enable_cdn  = true
  }

  assert {
    condition = (
      one([for s in jsondecode(output.kms_key_policy_json).Statement : s.Principal.Service if s.Sid == "CloudFrontReadsTheMirror"]) == "cloudfront.amazonaws.com" &&
      one([for s in jsondecode(output.kms_key_policy_json).Statement : s.Action if s.Sid == "CloudFrontReadsTheMirror"]) == ["kms:Decrypt"]
    )
    error_message = "with the CDN: CloudFront may decrypt"
  }
  assert {
    condition     = one([for s in jsondecode(output.kms_key_policy_json).Statement : s.Condition.StringEquals["AWS:SourceArn"] if s.Sid == "CloudFrontReadsTheMirror"]) == "arn:aws:cloudfront::123456789012:distribution/E2MIRRORTEST"
    error_message = "CloudFront of this distribution only"
  }
  assert {
    condition = one([for s in jsondecode(output.kms_key_policy_json).Statement : s.Condition.ArnLike["kms:EncryptionContext:aws:logs:arn"] if s.Sid == "CloudWatchLogsOfThisStack"]) == [
      "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/bottlesync-prod-*",
      "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/bottlesync-prod/*",
    ]
    error_message = "Logs may use the key for this stack's log groups only"
  }
}

run "no_kms_key_no_policy" {
  command = plan

  variables {
  }

  assert {
    condition     = output.kms_key_policy_json == null
    error_message = "AWS-managed encryption needs no key policy"
  }
}
